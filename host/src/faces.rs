//! Detected faces kept for later calls (faceIds, each with its own time to live) and the
//! recognition models behind the API's names. The trained index is in `index`.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use face_core::RecognitionModel;
use uuid::Uuid;

use crate::engine::guest;

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
