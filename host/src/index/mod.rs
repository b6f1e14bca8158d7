//! The trained index that identify and find-similar search, made for a million faces.
//!
//! - **Compact.** Each face is its unit vector quantised to int8 with a scale of its own
//!   (`v ≈ scale * code`, the largest component at ±127): 128 bytes and 4 for SFace, so 1,000,000
//!   faces take about 130 MB, plus 16 bytes per face id and 20 per person.
//! - **Exact answers below [`PREFILTER_ROWS`].** The int8 scores only choose candidates. For
//!   unit vectors the int8 score is within a bound `B` of the true cosine (see [`Query::bound`];
//!   about 0.02 for SFace), so every face that could be in the exact answer scores at least
//!   `threshold - B` and at least the k-th best score `- 2B`; those candidates are then scored
//!   again from their stored f32 embeddings, and the answer is the exact scan's.
//! - **Persons contiguous.** Rows are sorted by person (lists: by face), so a person's best face
//!   is a running maximum over one run of rows, and a person or face is found by binary search.
//! - **One pass for all queries.** Each row is read once and scored against every query face of
//!   the call; the threshold becomes a cosine once per call; the best k are kept by selection,
//!   never by sorting every row; above [`PARALLEL_ROWS`] rows the scan is split across threads.
//! - **Narrowed first from [`PREFILTER_ROWS`].** From 200,000 rows the faces are also split into
//!   about `sqrt(rows)` lists by their nearest centre (an inverted file: k-means on a sample of
//!   the rows, then every row assigned, in int8 with the scan's kernel). A search scores the
//!   centres, then only the rows of the nearest lists until at least [`PREFILTER_SCAN`] rows per
//!   query face (about 5% of a million). This part is approximate: a face outside the scanned
//!   lists is not found. `cargo xtask scale` measures identification top-1 against the exact f32
//!   scan at 1,000,000 faces.
//! - **Deletes mark rows dead** in the live index (a bit per row) instead of dropping it.
//! - **Persisted** in a compact binary form ([`Index::to_bytes`]), so a restart does not retrain.

use std::sync::atomic::{AtomicU64, Ordering};

use face_core::RecognitionModel;
use uuid::Uuid;

use crate::store::Kind;

mod cache;
mod format;
mod kernel;
mod lists;
mod scan;
#[cfg(test)]
mod tests;

pub use cache::IndexCache;
pub use format::PartSink;
use format::permute_rows;
use kernel::kernel;
use scan::keep;

/// Above this many rows a search splits the scan across the machine's threads.
pub const PARALLEL_ROWS: usize = 100_000;

/// From this many rows, searches are narrowed by sign first (see the module's documentation).
pub const PREFILTER_ROWS: usize = 200_000;

/// Rows scored per query face once searches are narrowed: the nearest lists' rows, at least these.
pub const PREFILTER_SCAN: usize = 49_152;

/// Lloyd iterations of the lists' centres, on a sample of [`SAMPLE_PER_LIST`] rows per list.
const KMEANS_ROUNDS: usize = 6;
const SAMPLE_PER_LIST: usize = 48;

/// The format's first eight bytes.
const MAGIC: &[u8; 8] = b"FACEIDX1";

/// One face as training reads it from the store.
#[derive(Debug, Clone, Copy)]
pub struct Row<'a> {
    pub face_id: &'a str,
    /// The owning person, for groups.
    pub person_id: Option<&'a str>,
    pub embedding: &'a [f32],
}

/// Why an index could not be built or read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexError(pub String);

impl std::fmt::Display for IndexError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for IndexError {}

fn id_of(raw: &str, what: &str) -> Result<u128, IndexError> {
    Uuid::parse_str(raw).map(|u| u.as_u128()).map_err(|_| {
        IndexError(format!(
            "the {what} id {raw:?} is not a UUID; the trained index holds only the ids this service makes"
        ))
    })
}

/// Collects rows for an index, in any order.
#[derive(Debug)]
pub struct Builder {
    model: RecognitionModel,
    dim: usize,
    has_persons: bool,
    keys: Vec<(u128, u128)>,
    codes: Vec<i8>,
    scales: Vec<f32>,
}

impl Builder {
    pub fn new(model: RecognitionModel, has_persons: bool) -> Builder {
        Builder { model, dim: model.dimensions(), has_persons, keys: Vec::new(), codes: Vec::new(), scales: Vec::new() }
    }

    /// Adds a face; a face of the wrong length or without a direction is left out (`Ok(false)`).
    pub fn push(&mut self, row: Row<'_>) -> Result<bool, IndexError> {
        if row.embedding.len() != self.dim {
            return Ok(false);
        }
        let face = id_of(row.face_id, "persisted face")?;
        let person = match (self.has_persons, row.person_id) {
            (true, Some(p)) => id_of(p, "person")?,
            (true, None) => return Err(IndexError(format!("the face {} of a group has no person", row.face_id))),
            (false, _) => 0,
        };
        let Some(scale) = quantise(row.embedding, &mut self.codes) else { return Ok(false) };
        self.scales.push(scale);
        self.keys.push((person, face));
        Ok(true)
    }

    /// The index: rows sorted by person, then face.
    pub fn build(self, trained_ms: i64) -> Index {
        let Builder { model, dim, has_persons, keys, codes, scales } = self;
        let mut order: Vec<u32> = (0..keys.len() as u32).collect();
        order.sort_unstable_by_key(|&i| keys[i as usize]);
        let mut sorted_codes = Vec::with_capacity(codes.len());
        let mut sorted_scales = Vec::with_capacity(scales.len());
        let mut faces = Vec::with_capacity(keys.len());
        let (mut persons, mut starts) = (Vec::new(), Vec::new());
        for (row, &i) in order.iter().enumerate() {
            let i = i as usize;
            sorted_codes.extend_from_slice(&codes[i * dim..(i + 1) * dim]);
            sorted_scales.push(scales[i]);
            faces.push(keys[i].1);
            if has_persons && persons.last() != Some(&keys[i].0) {
                persons.push(keys[i].0);
                starts.push(row as u32);
            }
        }
        drop(codes);
        Index::assemble(model, trained_ms, has_persons, faces, persons, starts, sorted_codes, sorted_scales, None)
    }
}

/// Quantises `v` (any length) as its unit vector to int8, appending the codes; returns the scale,
/// or `None` when `v` has no direction or is not finite.
fn quantise(v: &[f32], codes: &mut Vec<i8>) -> Option<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    let peak = v.iter().fold(0.0f32, |m, x| m.max(x.abs())) / norm;
    if !(norm.is_finite() && norm > 0.0 && peak.is_finite() && peak > 0.0) {
        return None;
    }
    let scale = peak / 127.0;
    codes.extend(v.iter().map(|x| (x / norm / scale).round().clamp(-127.0, 127.0) as i8));
    Some(scale)
}

/// A trained collection: see the module's documentation.
#[derive(Debug)]
pub struct Index {
    pub model: RecognitionModel,
    /// When the training it holds succeeded (ms since the epoch); a cached index is only ever
    /// replaced by a newer one.
    pub trained_ms: i64,
    dim: usize,
    has_persons: bool,
    /// Per row, sorted by (person, face).
    faces: Vec<u128>,
    /// Per row in the order above; with lists, in the lists' order instead (see [`Lists`]).
    codes: Vec<i8>,
    scales: Vec<f32>,
    /// The largest scale, for the error bound.
    max_scale: f32,
    /// Groups: the persons, sorted, and where each one's rows start (one more entry, the end).
    persons: Vec<u128>,
    starts: Vec<u32>,
    /// One bit per row: deleted since the training.
    dead: Vec<AtomicU64>,
    /// The lists (empty below [`PREFILTER_ROWS`]), see [`Lists`].
    lists: Lists,
}

/// An inverted file: the rows split by their nearest centre. The index's codes and scales are
/// then stored list after list, so that a list is scanned as one run of memory.
#[derive(Debug, Default)]
struct Lists {
    /// The centres, unit vectors back to back.
    centres: Vec<f32>,
    /// Per list, where its members start (one more entry, the end).
    starts: Vec<u32>,
    /// (row, unit) of every member, list after list: member `m`'s codes are `codes[m * dim..]`.
    members: Vec<(u32, u32)>,
}

/// One query face, quantised.
struct Query {
    /// The int8 codes, in -127..=127.
    codes: Vec<i8>,
    scale: f32,
    /// The most the int8 score can differ from the true cosine, for any row of the index.
    bound: f32,
}

/// A candidate: (int8 score, unit, row of its best face).
type Scored = (f32, u32, u32);

impl Index {
    #[allow(clippy::too_many_arguments)]
    fn assemble(
        model: RecognitionModel,
        trained_ms: i64,
        has_persons: bool,
        faces: Vec<u128>,
        persons: Vec<u128>,
        mut starts: Vec<u32>,
        codes: Vec<i8>,
        scales: Vec<f32>,
        stored_lists: Option<(Vec<f32>, Vec<u32>)>,
    ) -> Index {
        if has_persons {
            starts.push(faces.len() as u32);
        }
        let max_scale = scales.iter().fold(0.0f32, |m, s| m.max(*s));
        let dead = (0..faces.len().div_ceil(64)).map(|_| AtomicU64::new(0)).collect();
        let mut index = Index {
            model,
            trained_ms,
            dim: model.dimensions(),
            has_persons,
            faces,
            codes,
            scales,
            max_scale,
            persons,
            starts,
            dead,
            lists: Lists::default(),
        };
        if index.len() >= PREFILTER_ROWS {
            let (centres, nearest) = match stored_lists {
                Some(stored) => stored,
                None => {
                    // Half the cores: a training shares the machine with the requests it serves.
                    let cores = std::thread::available_parallelism().map(|t| t.get()).unwrap_or(1);
                    let threads = (cores / 2).clamp(1, 8);
                    let centres = index.centres(threads);
                    let all: Vec<usize> = (0..index.len()).collect();
                    let nearest = index.nearest(&centres, &all, threads);
                    (centres, nearest)
                }
            };
            index.lists = index.lists_of(centres, &nearest);
            let dim = index.dim;
            // The codes list by list, moved in place: a load or a training holds them once, not
            // twice (128 MB at a million faces).
            let from: Vec<u32> = index.lists.members.iter().map(|&(r, _)| r).collect();
            // (`lists_of` places every row once, so both succeed.)
            let moved = permute_rows(&mut index.codes, dim, &from) && permute_rows(&mut index.scales, 1, &from);
            debug_assert!(moved, "the inverted lists do not hold each row once");
        }
        index
    }

    /// An index of these faces, for a FaceList searched as it is now.
    pub fn from_faces<'a>(
        model: RecognitionModel,
        trained_ms: i64,
        has_persons: bool,
        rows: impl IntoIterator<Item = Row<'a>>,
    ) -> Result<Index, IndexError> {
        let mut b = Builder::new(model, has_persons);
        for row in rows {
            b.push(row)?;
        }
        Ok(b.build(trained_ms))
    }

    /// Rows, live or dead.
    pub fn len(&self) -> usize {
        self.faces.len()
    }

    pub fn is_empty(&self) -> bool {
        self.faces.is_empty()
    }

    /// Rows not deleted since the training.
    pub fn live(&self) -> usize {
        self.len() - self.dead.iter().map(|w| w.load(Ordering::Relaxed).count_ones() as usize).sum::<usize>()
    }

    /// Bytes held in memory.
    pub fn memory_bytes(&self) -> usize {
        self.faces.len() * 16
            + self.codes.len()
            + self.scales.len() * 4
            + self.persons.len() * 16
            + self.starts.len() * 4
            + self.dead.len() * 8
            + self.lists.centres.len() * 4
            + self.lists.starts.len() * 4
            + self.lists.members.len() * 8
    }

    fn is_dead(&self, row: usize) -> bool {
        self.dead[row / 64].load(Ordering::Relaxed) & (1 << (row % 64)) != 0
    }

    fn kill_row(&self, row: usize) {
        self.dead[row / 64].fetch_or(1 << (row % 64), Ordering::Relaxed);
    }

    /// The rows of unit `u`: a person's faces, or one face of a list.
    fn unit_rows(&self, u: usize) -> std::ops::Range<usize> {
        if self.has_persons { self.starts[u] as usize..self.starts[u + 1] as usize } else { u..u + 1 }
    }

    fn units(&self) -> usize {
        if self.has_persons { self.persons.len() } else { self.faces.len() }
    }

    /// Marks a deleted person's faces dead; `false` when the person is not in the index.
    pub fn kill_person(&self, person_id: &str) -> bool {
        let Ok(p) = Uuid::parse_str(person_id).map(|u| u.as_u128()) else { return false };
        let Ok(u) = self.persons.binary_search(&p) else { return false };
        self.unit_rows(u).for_each(|r| self.kill_row(r));
        true
    }

    /// Marks a deleted face dead; `false` when it is not in the index.
    pub fn kill_face(&self, person_id: Option<&str>, face_id: &str) -> bool {
        let Ok(f) = Uuid::parse_str(face_id).map(|u| u.as_u128()) else { return false };
        let rows = if self.has_persons {
            let Some(Ok(p)) = person_id.map(|p| Uuid::parse_str(p).map(|u| u.as_u128())) else { return false };
            let Ok(u) = self.persons.binary_search(&p) else { return false };
            self.unit_rows(u)
        } else {
            0..self.faces.len()
        };
        let Ok(i) = self.faces[rows.clone()].binary_search(&f) else { return false };
        self.kill_row(rows.start + i);
        true
    }

    /// The face id of a row and, for groups, its person's id.
    pub fn ids(&self, row: u32) -> (Option<String>, String) {
        let row = row as usize;
        let person = self.has_persons.then(|| {
            let u = self.starts.partition_point(|&s| s as usize <= row) - 1;
            Uuid::from_u128(self.persons[u]).to_string()
        });
        (person, Uuid::from_u128(self.faces[row]).to_string())
    }

    fn query(&self, v: &[f32]) -> Option<Query> {
        if v.len() != self.dim {
            return None;
        }
        let mut codes = Vec::with_capacity(self.dim);
        let scale = quantise(v, &mut codes)?;
        // For unit vectors v = s_v c_v + e_v and q = s_q c_q + e_q with |e| <= s / 2 per
        // component: |v.q - s_v s_q c_v.c_q| <= (s_q / 2) |s_v c_v|_1 + (s_v / 2) |q|_1, and
        // |s_v c_v|_1 <= |v|_1 + d s_v / 2 <= sqrt(d) + d s_v / 2.
        let d = self.dim as f32;
        let q_l1 = codes.iter().map(|&c| (f32::from(c) * scale).abs()).sum::<f32>() + d * scale / 2.0;
        let s = self.max_scale;
        let bound = scale / 2.0 * (d.sqrt() + d * s / 2.0) + s / 2.0 * q_l1;
        Some(Query { codes, scale, bound: bound * 1.001 + 1e-6 })
    }

    /// For each query (in order), the candidates for its best `k` units at or above the cosine
    /// `min_cos`: every unit whose exact best cosine could be among them, with the row of its
    /// best face by int8 score. The caller scores them exactly ([`Index::rows_of`]). From
    /// [`PREFILTER_ROWS`] rows, only the rows of the lists scanned are candidates.
    pub fn candidates(&self, queries: &[&[f32]], min_cos: f32, k: usize) -> Vec<Vec<u32>> {
        let prepared: Vec<Option<Query>> = queries.iter().map(|q| self.query(q)).collect();
        let live: Vec<&Query> = prepared.iter().flatten().collect();
        let mut out = vec![Vec::new(); queries.len()];
        if live.is_empty() || k == 0 || self.is_empty() {
            return out;
        }
        let units = self.units();
        let threads = if self.len() >= PARALLEL_ROWS {
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).min(8)
        } else {
            1
        };
        let per = units.div_ceil(threads);
        let parts: Vec<Vec<Vec<Scored>>> = if !self.lists.starts.is_empty() {
            vec![self.prefiltered(&live, min_cos, k, threads)]
        } else if threads == 1 {
            vec![self.scan(&live, 0..units, min_cos, k)]
        } else {
            std::thread::scope(|s| {
                let handles: Vec<_> = (0..threads)
                    .map(|t| {
                        let live = &live;
                        s.spawn(move || self.scan(live, t * per..((t + 1) * per).min(units), min_cos, k))
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap_or_default()).collect()
            })
        };
        let mut live_i = 0;
        for (slot, q) in out.iter_mut().zip(&prepared) {
            let Some(q) = q else { continue };
            let merged: Vec<Scored> = parts.iter().flat_map(|p| p[live_i].iter().copied()).collect();
            *slot = keep(merged, min_cos, k, q.bound).into_iter().map(|(_, u, _)| u).collect();
            live_i += 1;
        }
        out
    }

    /// The live rows of these units (candidates from [`Index::candidates`]).
    pub fn rows_of(&self, unit: u32) -> Vec<u32> {
        self.unit_rows(unit as usize).filter(|&r| !self.is_dead(r)).map(|r| r as u32).collect()
    }
}

/// The cosine at which `model`'s confidence reaches `confidence` (the least cosine with at least
/// that confidence), found once per call so the scan compares cosines.
pub fn cosine_for(model: RecognitionModel, confidence: f32) -> f32 {
    if confidence <= 0.0 {
        return -1.0;
    }
    let (mut lo, mut hi) = (-1.0f32, 1.0f32);
    if face_core::confidence_from_cosine(model, hi) < confidence {
        return f32::INFINITY;
    }
    for _ in 0..60 {
        let mid = (lo + hi) / 2.0;
        if face_core::confidence_from_cosine(model, mid) >= confidence { hi = mid } else { lo = mid }
    }
    lo
}
