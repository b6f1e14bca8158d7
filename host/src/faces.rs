//! Detected faces kept for later calls (faceIds, each with its own time to live), the
//! recognition models behind the API's names, and the identification index built by training.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use face_core::RecognitionModel;
use uuid::Uuid;

use crate::engine::guest;
use crate::store::{Kind, StoredFace};

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

/// faceId -> embedding, with expiry and a bound on how many are kept.
#[derive(Debug)]
pub struct FaceIds {
    entries: Mutex<Entries>,
    capacity: usize,
}

impl FaceIds {
    pub fn new(capacity: usize) -> FaceIds {
        FaceIds { entries: Mutex::new(Entries::default()), capacity: capacity.max(1) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps `face` until it expires and returns its new id. At capacity, expired faces go
    /// first, then the ones closest to expiry.
    pub fn insert(&self, face: CachedFace) -> Uuid {
        let id = Uuid::new_v4();
        let mut e = self.lock();
        if e.map.len() >= self.capacity {
            e.remove_expired(Instant::now());
            while e.map.len() >= self.capacity {
                let Some((_, oldest)) = e.by_expiry.pop_first() else { break };
                e.map.remove(&oldest);
            }
        }
        e.by_expiry.insert((face.expires, id));
        e.map.insert(id, face);
        id
    }

    /// The face, if its id is known and has not expired.
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

/// A trained collection: its faces' unit vectors in one matrix, for brute-force cosine search.
#[derive(Debug)]
pub struct Index {
    pub model: RecognitionModel,
    /// When the training it holds succeeded (ms since the epoch); a cached index is only ever
    /// replaced by a newer one.
    pub trained_ms: i64,
    /// (person id for groups, persisted face id), one per row.
    pub rows: Vec<(Option<String>, String)>,
    vectors: Vec<f32>,
    dim: usize,
}

impl Index {
    /// Builds the index from stored faces of one model; faces of another model are skipped.
    pub fn build(model: RecognitionModel, trained_ms: i64, faces: &[StoredFace]) -> Index {
        let dim = model.dimensions();
        let mut rows = Vec::with_capacity(faces.len());
        let mut vectors = Vec::with_capacity(faces.len() * dim);
        for f in faces.iter().filter(|f| f.model == model.id() && f.embedding.len() == dim) {
            let norm = f.embedding.iter().map(|x| x * x).sum::<f32>().sqrt();
            if !(norm.is_finite() && norm > 0.0) {
                continue;
            }
            vectors.extend(f.embedding.iter().map(|x| x / norm));
            rows.push((f.person_id.clone(), f.face_id.clone()));
        }
        Index { model, trained_ms, rows, vectors, dim }
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Cosine similarity of `query` with every row.
    pub fn cosines(&self, query: &[f32]) -> Vec<f32> {
        let norm = query.iter().map(|x| x * x).sum::<f32>().sqrt();
        if query.len() != self.dim || !(norm.is_finite() && norm > 0.0) {
            return vec![0.0; self.rows.len()];
        }
        self.vectors
            .chunks_exact(self.dim)
            .map(|row| (row.iter().zip(query).map(|(a, b)| a * b).sum::<f32>() / norm).clamp(-1.0, 1.0))
            .collect()
    }

    /// Persons ranked by their best face's confidence, those at or above `threshold`, at most `max`.
    pub fn identify(&self, query: &[f32], threshold: f32, max: usize) -> Vec<(String, f32)> {
        let mut best: HashMap<&str, f32> = HashMap::new();
        for ((person, _), cos) in self.rows.iter().zip(self.cosines(query)) {
            let Some(person) = person else { continue };
            let c = face_core::confidence_from_cosine(self.model, cos);
            let e = best.entry(person.as_str()).or_insert(0.0);
            *e = e.max(c);
        }
        let mut ranked: Vec<(String, f32)> =
            best.into_iter().filter(|(_, c)| *c >= threshold).map(|(p, c)| (p.to_owned(), c)).collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        ranked.truncate(max);
        ranked
    }
}

/// The trained indexes in memory, by collection; loaded from the store on first use.
#[derive(Debug, Default)]
pub struct IndexCache(Mutex<HashMap<(Kind, String), Arc<Index>>>);

impl IndexCache {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<(Kind, String), Arc<Index>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, kind: Kind, id: &str) -> Option<Arc<Index>> {
        self.map().get(&(kind, id.to_owned())).cloned()
    }

    /// Caches `index` unless a newer training is cached already; returns the one cached.
    pub fn put(&self, kind: Kind, id: &str, index: Arc<Index>) -> Arc<Index> {
        let mut map = self.map();
        let slot = map.entry((kind, id.to_owned())).or_insert_with(|| index.clone());
        if slot.trained_ms < index.trained_ms {
            *slot = index;
        }
        slot.clone()
    }

    /// Drops the collection's index, so the next search reloads it from the store.
    pub fn forget(&self, kind: Kind, id: &str) {
        self.map().remove(&(kind, id.to_owned()));
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

    #[test]
    fn the_index_ranks_persons_by_their_best_face() {
        let unit = |i: usize| {
            let mut v = vec![0.0f32; 128];
            v[i] = 1.0;
            v
        };
        let mut close = unit(0);
        close[1] = 0.3;
        let stored = |face: &str, person: &str, embedding: Vec<f32>| StoredFace {
            face_id: face.into(),
            person_id: Some(person.into()),
            user_data: None,
            model: RecognitionModel::SFace.id().into(),
            embedding,
        };
        let faces = vec![
            stored("f1", "far", unit(5)),
            stored("f2", "near", close.clone()),
            stored("f3", "near", unit(7)),
            stored("f4", "exact", unit(0)),
            // Another model's face is left out.
            StoredFace { model: "faceapi_resnet".into(), ..stored("f5", "other", unit(0)) },
        ];
        let index = Index::build(RecognitionModel::SFace, 0, &faces);
        assert_eq!(index.len(), 4);
        let ranked = index.identify(&unit(0), 0.5, 5);
        let persons: Vec<&str> = ranked.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(persons, ["exact", "near"], "{ranked:?}");
        assert!(ranked[0].1 > ranked[1].1);
        assert_eq!(index.identify(&unit(0), 0.5, 1).len(), 1);
        assert!(index.identify(&unit(9), 0.5, 5).is_empty());
    }
}
