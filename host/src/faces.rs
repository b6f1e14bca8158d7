//! Detected faces kept for later calls (faceIds, each with its own time to live) and the
//! recognition models behind the API's names. The trained index is in `index`.
//!
//! With `Storage:Scenario=Postgres` the faceIds are also written to the database, so that every
//! host sharing it finds them; each host keeps the ones it has seen in memory too.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use face_core::RecognitionModel;
use uuid::Uuid;

use crate::engine::guest;
use crate::store::{SharedFace, SharedFaceIds, StoreError};

/// The `recognitionModel` names of the API, each bound to one concrete model. `recognition_01`
/// is the SDK's default, so it gets the most accurate model (SFace); `recognition_03`, Azure's
/// recommended one, too; `recognition_02` is the face-api.js (dlib ResNet) recognizer. Faces
/// compare only within one name, as on Azure.
pub const RECOGNITION_MODELS: [&str; 3] = ["recognition_01", "recognition_02", "recognition_03"];

/// The concrete model behind an API name.
pub fn concrete_model(name: &str) -> Option<RecognitionModel> {
    match name {
        "recognition_01" | "recognition_03" => Some(RecognitionModel::SFace),
        "recognition_02" => Some(RecognitionModel::FaceApi),
        _ => None,
    }
}

/// The same model as the guest names it.
pub fn guest_model(model: RecognitionModel) -> guest::RecognitionModel {
    match model {
        RecognitionModel::SFace => guest::RecognitionModel::Sface,
        _ => guest::RecognitionModel::Faceapi,
    }
}

/// The API name `recognition_0N` in its canonical spelling, or `None` if unknown.
pub fn recognition_name(raw: &str) -> Option<&'static str> {
    RECOGNITION_MODELS.into_iter().find(|n| n.eq_ignore_ascii_case(raw.trim()))
}

/// A detected face kept for `faceIdTimeToLive` seconds.
#[derive(Debug, Clone)]
pub struct CachedFace {
    /// The API name it was detected with.
    pub recognition: &'static str,
    pub model: RecognitionModel,
    pub embedding: Arc<[f32]>,
    pub expires: Instant,
}

#[derive(Debug, Default)]
struct Entries {
    map: HashMap<Uuid, CachedFace>,
    /// The same ids ordered by expiry, to drop expired and oldest faces cheaply.
    by_expiry: BTreeSet<(Instant, Uuid)>,
}

impl Entries {
    fn remove_expired(&mut self, now: Instant) {
        while let Some(&(at, id)) = self.by_expiry.first() {
            if at > now {
                break;
            }
            self.by_expiry.pop_first();
            self.map.remove(&id);
        }
    }
}

/// faceId -> embedding, with expiry and a bound on how many are kept in memory; with a shared
/// database, also there.
#[derive(Debug)]
pub struct FaceIds {
    entries: Mutex<Entries>,
    capacity: usize,
    shared: Option<Arc<dyn SharedFaceIds>>,
}

impl FaceIds {
    pub fn new(capacity: usize) -> FaceIds {
        FaceIds { entries: Mutex::new(Entries::default()), capacity: capacity.max(1), shared: None }
    }

    /// With a shared store (several hosts), how many faceIds every host finds now; `None` with
    /// one host's faceIds, or when the database does not answer within 2 s.
    pub async fn shared_count(&self) -> Option<u64> {
        let shared = self.shared.clone()?;
        let counting = tokio::task::spawn_blocking(move || shared.count(crate::time::now_ms()));
        // /status answers in time even when the database is slow or away.
        let counted = tokio::time::timeout(std::time::Duration::from_secs(2), counting).await;
        counted.ok()?.ok()?.ok()
    }

    /// faceIds that every host of `shared`'s database finds.
    pub fn shared(capacity: usize, shared: Arc<dyn SharedFaceIds>) -> FaceIds {
        FaceIds { shared: Some(shared), ..FaceIds::new(capacity) }
    }

    /// Keeps these faces until they expire and returns their new ids, in order. With a shared
    /// database they are written there first, in one transaction: an id is answered only once
    /// every host can find it.
    pub async fn insert_all(&self, faces: Vec<CachedFace>) -> Result<Vec<Uuid>, StoreError> {
        let ids: Vec<Uuid> = faces.iter().map(|_| Uuid::new_v4()).collect();
        if let Some(shared) = self.shared.clone()
            && !faces.is_empty()
        {
            let (now, now_ms) = (Instant::now(), crate::time::now_ms());
            let rows: Vec<SharedFace> = ids
                .iter()
                .zip(&faces)
                .map(|(id, f)| SharedFace {
                    id: id.to_string(),
                    recognition: f.recognition.to_owned(),
                    model: f.model.id().to_owned(),
                    embedding: f.embedding.to_vec(),
                    expires_ms: now_ms + f.expires.saturating_duration_since(now).as_millis() as i64,
                })
                .collect();
            tokio::task::spawn_blocking(move || shared.put(&rows))
                .await
                .map_err(|e| StoreError::Internal(format!("the database task failed: {e}")))??;
        }
        for (id, face) in ids.iter().zip(faces) {
            self.keep(*id, face);
        }
        Ok(ids)
    }

    /// The faces of these ids that are known and have not expired (`None` for the others): from
    /// memory, or else (with a shared database) from the database, in one query.
    pub async fn get_all(&self, ids: &[String]) -> Result<Vec<Option<CachedFace>>, StoreError> {
        let mut found: Vec<Option<CachedFace>> = ids.iter().map(|id| self.get(id)).collect();
        let Some(shared) = self.shared.clone() else { return Ok(found) };
        let missing: Vec<String> = ids
            .iter()
            .zip(&found)
            .filter(|(_, f)| f.is_none())
            .filter_map(|(id, _)| Uuid::parse_str(id).ok().map(|u| u.to_string()))
            .collect();
        if missing.is_empty() {
            return Ok(found);
        }
        let now_ms = crate::time::now_ms();
        let rows = tokio::task::spawn_blocking(move || shared.get(&missing, now_ms))
            .await
            .map_err(|e| StoreError::Internal(format!("the database task failed: {e}")))??;
        let now = Instant::now();
        for row in rows {
            let (Some(recognition), Some(model), Ok(id)) =
                (recognition_name(&row.recognition), RecognitionModel::from_id(&row.model), Uuid::parse_str(&row.id))
            else {
                continue;
            };
            let face = CachedFace {
                recognition,
                model,
                embedding: row.embedding.into(),
                expires: now + Duration::from_millis((row.expires_ms - now_ms).max(0) as u64),
            };
            for (want, slot) in ids.iter().zip(found.iter_mut()) {
                if slot.is_none() && Uuid::parse_str(want).is_ok_and(|w| w == id) {
                    *slot = Some(face.clone());
                }
            }
            self.keep(id, face);
        }
        Ok(found)
    }

    /// Drops expired faces (from the shared database too); returns how many this host keeps.
    pub async fn sweep_all(&self) -> usize {
        if let Some(shared) = self.shared.clone() {
            let now_ms = crate::time::now_ms();
            match tokio::task::spawn_blocking(move || shared.sweep(now_ms)).await {
                Ok(Ok(n)) if n > 0 => tracing::debug!(count = n, "expired faceIds deleted from the database"),
                Ok(Err(e)) => tracing::warn!(error = %e, "expired faceIds were not deleted from the database"),
                _ => {}
            }
        }
        self.sweep()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps `face` in memory until it expires and returns its new id. At capacity, expired
    /// faces go first, then the ones closest to expiry.
    pub fn insert(&self, face: CachedFace) -> Uuid {
        let id = Uuid::new_v4();
        self.keep(id, face);
        id
    }

    fn keep(&self, id: Uuid, face: CachedFace) {
        let mut e = self.lock();
        if e.map.len() >= self.capacity {
            e.remove_expired(Instant::now());
            while e.map.len() >= self.capacity {
                let Some((_, oldest)) = e.by_expiry.pop_first() else { break };
                e.map.remove(&oldest);
            }
        }
        if let Some(old) = e.map.insert(id, face.clone()) {
            e.by_expiry.remove(&(old.expires, id));
        }
        e.by_expiry.insert((face.expires, id));
    }

    /// The face, if its id is known in memory and has not expired.
    pub fn get(&self, id: &str) -> Option<CachedFace> {
        let id = Uuid::parse_str(id).ok()?;
        self.lock().map.get(&id).filter(|f| f.expires > Instant::now()).cloned()
    }

    /// Drops expired faces; returns how many are kept.
    pub fn sweep(&self) -> usize {
        let mut e = self.lock();
        e.remove_expired(Instant::now());
        e.map.len()
    }

    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Default time to live of a faceId, and its bounds (seconds).
pub const FACE_ID_TTL: (u64, u64, u64) = (86_400, 60, 86_400);

pub fn ttl(seconds: u64) -> Instant {
    Instant::now() + Duration::from_secs(seconds)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cached(expires: Instant) -> CachedFace {
        CachedFace {
            recognition: "recognition_01",
            model: RecognitionModel::SFace,
            embedding: vec![1.0; 128].into(),
            expires,
        }
    }

    #[test]
    fn face_ids_expire_and_the_capacity_holds() {
        let ids = FaceIds::new(2);
        let past = Instant::now() - Duration::from_secs(1);
        let gone = ids.insert(cached(past));
        assert!(ids.get(&gone.to_string()).is_none(), "an expired faceId is not found");
        let a = ids.insert(cached(ttl(60)));
        let b = ids.insert(cached(ttl(120)));
        assert!(ids.get(&a.to_string()).is_some() && ids.get(&b.to_string()).is_some());
        // Full: the face closest to expiry goes first.
        let c = ids.insert(cached(ttl(90)));
        assert!(ids.get(&a.to_string()).is_none());
        assert!(ids.get(&b.to_string()).is_some() && ids.get(&c.to_string()).is_some());
        assert_eq!(ids.len(), 2);
        assert!(ids.get("not-a-uuid").is_none());
    }

    #[test]
    fn recognition_names_map_to_models() {
        assert_eq!(recognition_name("Recognition_02"), Some("recognition_02"));
        assert_eq!(recognition_name("recognition_04"), None);
        assert_eq!(concrete_model("recognition_01"), Some(RecognitionModel::SFace));
        assert_eq!(concrete_model("recognition_02"), Some(RecognitionModel::FaceApi));
    }
}
