//! `face-server bulk-load`: fills a collection from a file of faces, many to a transaction, the
//! way `cargo xtask scale` builds a million-face gallery without a million HTTP calls.
//!
//! The file: `FACEBULK`, then the kind (u8, its index in `Kind::ALL`), the collection id, its
//! `recognitionModel` name and the concrete model id (each a u16 length and UTF-8), the
//! embedding length (u32), then one record per face until the end: the person's UUID (16 bytes,
//! all zero for a list's face), the face's UUID (16 bytes) and the embedding (f32 each),
//! little-endian. The collection is created if it does not exist; a person the first time its
//! UUID appears. Quotas are the API's. Both stores take it ([`BulkSink`]): SQLite in its data
//! directory, PostgreSQL (`face-server bulk-load postgresql://...`) with one multi-row statement
//! per table and batch.

use std::collections::HashSet;
use std::io::Read;

use uuid::Uuid;

use crate::store::{Collection, CollectionStore, Kind, StoreError, StoreResult, StoredFace};

/// A store a bulk file loads into: it writes one batch in one transaction.
pub trait BulkSink: CollectionStore {
    /// Writes the batch's new persons (the first face of each carries its id) and its faces,
    /// in one transaction; refuses (writing nothing) a batch that takes the collection past the
    /// kind's limits.
    fn write_bulk(&self, kind: Kind, cid: &str, batch: &[(Option<String>, StoredFace)]) -> StoreResult<()>;
}

/// The limits of `kind` for a collection of `persons` persons and `faces` faces, checked after a
/// batch.
pub(crate) fn check_limits(kind: Kind, persons: u64, faces: u64) -> StoreResult<()> {
    if persons > kind.max_persons() || (!kind.has_persons() && faces > kind.max_faces()) {
        return Err(StoreError::Quota(format!("the bulk file passes the {} limits", kind.name())));
    }
    Ok(())
}

/// Faces per transaction.
const BATCH: usize = 20_000;

/// What a bulk load did.
#[derive(Debug, Clone, Copy, Default)]
pub struct Loaded {
    pub persons: u64,
    pub faces: u64,
}

fn bad(what: &str) -> StoreError {
    StoreError::Internal(format!("the bulk file is malformed: {what}"))
}

fn text(r: &mut dyn Read) -> StoreResult<String> {
    let mut n = [0u8; 2];
    r.read_exact(&mut n).map_err(|_| bad("a header field"))?;
    let mut s = vec![0u8; u16::from_le_bytes(n) as usize];
    r.read_exact(&mut s).map_err(|_| bad("a header field"))?;
    String::from_utf8(s).map_err(|_| bad("a header field is not UTF-8"))
}

/// Loads the faces of a bulk file (see the module's documentation) into `store`.
pub fn bulk_load(store: &dyn BulkSink, r: &mut dyn Read, progress: &mut dyn FnMut(Loaded)) -> StoreResult<Loaded> {
    bulk_load_in(store, r, BATCH, progress)
}

/// [`bulk_load`] with `batch` faces to a transaction.
pub(crate) fn bulk_load_in(
    store: &dyn BulkSink,
    r: &mut dyn Read,
    batch_size: usize,
    progress: &mut dyn FnMut(Loaded),
) -> StoreResult<Loaded> {
    let mut magic = [0u8; 8];
    r.read_exact(&mut magic).map_err(|_| bad("no header"))?;
    if &magic != b"FACEBULK" {
        return Err(bad("not a bulk file"));
    }
    let mut k = [0u8; 1];
    r.read_exact(&mut k).map_err(|_| bad("no kind"))?;
    let kind = *Kind::ALL.get(k[0] as usize).ok_or_else(|| bad("unknown kind"))?;
    let (cid, recognition, model) = (text(r)?, text(r)?, text(r)?);
    let mut d = [0u8; 4];
    r.read_exact(&mut d).map_err(|_| bad("no dimension"))?;
    let dim = u32::from_le_bytes(d) as usize;
    if store.collection(kind, &cid)?.is_none() {
        store.create_collection(&Collection {
            kind,
            id: cid.clone(),
            name: format!("bulk {cid}"),
            user_data: None,
            recognition_model: recognition,
            created_ms: crate::time::now_ms(),
        })?;
    }
    let mut persons: HashSet<u128> = HashSet::new();
    let mut done = Loaded::default();
    let mut record = vec![0u8; 32 + 4 * dim];
    loop {
        let mut batch: Vec<(Option<String>, StoredFace)> = Vec::with_capacity(batch_size);
        while batch.len() < batch_size.max(1) {
            match r.read_exact(&mut record) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
                Err(e) => return Err(StoreError::Internal(format!("reading the bulk file: {e}"))),
            }
            let person = u128::from_le_bytes(record[..16].try_into().map_err(|_| bad("a record"))?);
            let face = u128::from_le_bytes(record[16..32].try_into().map_err(|_| bad("a record"))?);
            let person_id = (person != 0).then(|| Uuid::from_u128(person).to_string());
            let new_person = (person != 0 && persons.insert(person)).then(|| person_id.clone()).flatten();
            let embedding: Vec<f32> =
                record[32..].chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
            batch.push((
                new_person,
                StoredFace {
                    face_id: Uuid::from_u128(face).to_string(),
                    person_id,
                    user_data: None,
                    model: model.clone(),
                    embedding,
                },
            ));
        }
        if batch.is_empty() {
            return Ok(done);
        }
        store.write_bulk(kind, &cid, &batch)?;
        done.persons += batch.iter().filter(|(p, _)| p.is_some()).count() as u64;
        done.faces += batch.len() as u64;
        progress(done);
    }
}
