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
    /// The int8 codes widened to i16, as the kernels read them.
    wide: Vec<i16>,
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
        Some(Query { wide: codes.iter().map(|&c| i16::from(c)).collect(), scale, bound: bound * 1.001 + 1e-6 })
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

    /// The centres of the inverted file of these rows (see the module's documentation): about
    /// `sqrt(rows)` unit vectors, back to back. Deterministic.
    fn centres(&self, threads: usize) -> Vec<f32> {
        let (dim, n) = (self.dim, self.len());
        let count = ((n as f64).sqrt() as usize).clamp(1, n);
        let row_vector = |r: usize| -> Vec<f32> {
            self.codes[r * dim..(r + 1) * dim].iter().map(|&c| f32::from(c) * self.scales[r]).collect()
        };
        // Start from evenly spaced rows; refine on a sample spread evenly over the rows.
        let size = (count * SAMPLE_PER_LIST).min(n);
        let sample: Vec<usize> = (0..size).map(|i| i * n / size).collect();
        let mut centres: Vec<f32> = (0..count).flat_map(|i| row_vector(i * n / count)).collect();
        for _ in 0..KMEANS_ROUNDS {
            let nearest = self.nearest(&centres, &sample, threads);
            let mut sums = vec![0f64; count * dim];
            let mut sizes = vec![0usize; count];
            for (&r, &l) in sample.iter().zip(&nearest) {
                sizes[l as usize] += 1;
                for (s, x) in sums[l as usize * dim..(l as usize + 1) * dim].iter_mut().zip(row_vector(r)) {
                    *s += f64::from(x);
                }
            }
            for ((c, s), &size) in centres.chunks_exact_mut(dim).zip(sums.chunks_exact(dim)).zip(&sizes) {
                let norm = s.iter().map(|x| x * x).sum::<f64>().sqrt();
                if size > 0 && norm > 0.0 {
                    c.iter_mut().zip(s).for_each(|(c, s)| *c = (s / norm) as f32);
                }
            }
        }
        centres
    }

    /// The inverted file with these centres, each row in the list of `nearest[row]`.
    fn lists_of(&self, centres: Vec<f32>, nearest: &[u32]) -> Lists {
        let (n, count) = (self.len(), centres.len() / self.dim);
        let mut starts = vec![0u32; count + 1];
        for &l in nearest {
            starts[l as usize + 1] += 1;
        }
        for l in 0..count {
            starts[l + 1] += starts[l];
        }
        let mut at: Vec<u32> = starts[..count].to_vec();
        let mut members = vec![(0u32, 0u32); n];
        let mut unit = 0;
        for (r, &l) in nearest.iter().enumerate() {
            if self.has_persons {
                while self.starts[unit + 1] as usize <= r {
                    unit += 1;
                }
            } else {
                unit = r;
            }
            members[at[l as usize] as usize] = (r as u32, unit as u32);
            at[l as usize] += 1;
        }
        Lists { centres, starts, members }
    }

    /// For each of `rows`, the index of its nearest centre (largest int8 dot product).
    fn nearest(&self, centres: &[f32], rows: &[usize], threads: usize) -> Vec<u32> {
        let dim = self.dim;
        let queries: Vec<Query> = centres
            .chunks_exact(dim)
            .map(|c| {
                let mut codes = Vec::with_capacity(dim);
                let scale = quantise(c, &mut codes).unwrap_or(1.0);
                Query { wide: codes.iter().map(|&c| i16::from(c)).collect(), scale, bound: 0.0 }
            })
            .collect();
        let refs: Vec<&Query> = queries.iter().collect();
        let kernel = kernel(dim);
        let per = rows.len().div_ceil(threads.max(1)).max(1);
        std::thread::scope(|s| {
            let handles: Vec<_> = rows
                .chunks(per)
                .map(|part| {
                    let refs = &refs;
                    s.spawn(move || {
                        let mut codes = Vec::with_capacity(dim * 64);
                        let mut out = vec![0i32; 64 * refs.len()];
                        let mut nearest = Vec::with_capacity(part.len());
                        for block in part.chunks(64) {
                            codes.clear();
                            for &r in block {
                                codes.extend_from_slice(&self.codes[r * dim..(r + 1) * dim]);
                            }
                            let out = &mut out[..block.len() * refs.len()];
                            kernel(&codes, refs, out);
                            nearest.extend(out.chunks_exact(refs.len()).map(|d| {
                                d.iter()
                                    .zip(refs.iter())
                                    .enumerate()
                                    .fold((f32::NEG_INFINITY, 0u32), |best, (l, (&d, q))| {
                                        let s = d as f32 * q.scale;
                                        if s > best.0 { (s, l as u32) } else { best }
                                    })
                                    .1
                            }));
                        }
                        nearest
                    })
                })
                .collect();
            handles.into_iter().flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))).collect()
        })
    }

    /// Per query, its best int8-scored row of each unit among the rows of its nearest lists
    /// (at least [`PREFILTER_SCAN`] rows), of the units that may be in its best `k` at or above
    /// `min_cos`; [`keep`] then applies both as for the scan. The queries are split across threads.
    fn prefiltered(&self, queries: &[&Query], min_cos: f32, k: usize, threads: usize) -> Vec<Vec<Scored>> {
        let per = queries.len().div_ceil(threads.max(1)).max(1);
        std::thread::scope(|s| {
            let handles: Vec<_> = queries
                .chunks(per)
                .map(|part| s.spawn(move || part.iter().map(|q| self.probe(q, min_cos, k)).collect::<Vec<_>>()))
                .collect();
            handles.into_iter().flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))).collect()
        })
    }

    /// One query of [`Index::prefiltered`]: the centres scored in f32, the nearest lists' rows
    /// in int8, each list as one kernel call over its run of codes.
    fn probe(&self, q: &Query, min_cos: f32, k: usize) -> Vec<Scored> {
        let (dim, lists) = (self.dim, &self.lists);
        let count = lists.starts.len() - 1;
        let v: Vec<f32> = q.wide.iter().map(|&c| f32::from(c) * q.scale).collect();
        let mut near: Vec<(f32, u32)> = lists
            .centres
            .chunks_exact(dim)
            .enumerate()
            .map(|(l, c)| (c.iter().zip(&v).map(|(a, b)| a * b).sum::<f32>(), l as u32))
            .collect();
        near.sort_unstable_by(|a, b| b.0.total_cmp(&a.0));
        let bar = min_cos - q.bound;
        let kernel = kernel(dim);
        let mut dots = Vec::new();
        let mut scanned = 0;
        let mut found: Vec<Scored> = Vec::new();
        for &(_, l) in near.iter().take(count) {
            if scanned >= PREFILTER_SCAN {
                break;
            }
            let run = lists.starts[l as usize] as usize..lists.starts[l as usize + 1] as usize;
            scanned += run.len();
            dots.resize(run.len(), 0);
            kernel(&self.codes[run.start * dim..run.end * dim], std::slice::from_ref(&q), &mut dots);
            for ((&(r, u), &d), &scale) in lists.members[run.clone()].iter().zip(&dots).zip(&self.scales[run]) {
                let score = d as f32 * scale * q.scale;
                if score >= bar && !self.is_dead(r as usize) {
                    found.push((score, u, r));
                }
            }
        }
        // Only the units that may be in the best `k` (as in `keep`): when the best `m` rows hold
        // `k` units, the k-th best of those is the k-th best unit, and no unit below it by more
        // than `2 bound` can be in the answer.
        let (k, mut m) = (k.max(1), 4 * k.max(1));
        while found.len() > m {
            found.select_nth_unstable_by(m - 1, |a, b| b.0.total_cmp(&a.0));
            let mut top: Vec<Scored> = found[..m].to_vec();
            top.sort_unstable_by(|a, b| a.1.cmp(&b.1).then(b.0.total_cmp(&a.0)));
            top.dedup_by_key(|c| c.1);
            if top.len() >= k {
                let (_, kth, _) = top.select_nth_unstable_by(k - 1, |a, b| b.0.total_cmp(&a.0));
                let floor = kth.0 - 2.0 * q.bound;
                found.retain(|c| c.0 >= floor);
                break;
            }
            m *= 4;
        }
        // A unit's best row only.
        found.sort_unstable_by(|a, b| a.1.cmp(&b.1).then(b.0.total_cmp(&a.0)));
        found.dedup_by_key(|c| c.1);
        found
    }

    /// The live rows of these units (candidates from [`Index::candidates`]).
    pub fn rows_of(&self, unit: u32) -> Vec<u32> {
        self.unit_rows(unit as usize).filter(|&r| !self.is_dead(r)).map(|r| r as u32).collect()
    }

    fn scan(&self, queries: &[&Query], units: std::ops::Range<usize>, min_cos: f32, k: usize) -> Vec<Vec<Scored>> {
        self.scan_with(queries, units, min_cos, k, kernel(self.dim))
    }

    /// Scores every live row of `units` against every query; per query keeps the units that
    /// may be in its best `k` at or above `min_cos` (a superset, pruned as the k-th best rises).
    fn scan_with(
        &self,
        queries: &[&Query],
        units: std::ops::Range<usize>,
        min_cos: f32,
        k: usize,
        kernel: &Kernel,
    ) -> Vec<Vec<Scored>> {
        let (dim, nq) = (self.dim, queries.len());
        // The rows of whole units are scored in blocks of about BLOCK rows, one kernel call each.
        const BLOCK: usize = 512;
        let mut dots = vec![0i32; (BLOCK + 248) * nq];
        let mut kept: Vec<Vec<Scored>> = vec![Vec::new(); nq];
        // Per query: the k best scores so far (a min-heap), whose least is a floor for the k-th best.
        let mut best: Vec<std::collections::BinaryHeap<std::cmp::Reverse<Ordered>>> =
            vec![std::collections::BinaryHeap::with_capacity(k + 1); nq];
        let mut unit_best = vec![(f32::NEG_INFINITY, 0u32); nq];
        let (mut bars, mut block_best) = (vec![0f32; nq], vec![0f32; nq]);
        let mut u = units.start;
        while u < units.end {
            let first = self.unit_rows(u).start;
            let mut last_unit = u;
            while last_unit + 1 < units.end && self.unit_rows(last_unit + 1).end - first <= BLOCK {
                last_unit += 1;
            }
            let rows = first..self.unit_rows(last_unit).end;
            if dots.len() < rows.len() * nq {
                dots.resize(rows.len() * nq, 0);
            }
            kernel(&self.codes[rows.start * dim..rows.end * dim], queries, &mut dots[..rows.len() * nq]);
            // Most blocks hold no candidate for any query: their best score is below every
            // query's bar, and their units need no look.
            for ((bar, q), heap) in bars.iter_mut().zip(queries).zip(&best) {
                let floor =
                    if heap.len() >= k { heap.peek().map_or(f32::NEG_INFINITY, |r| r.0.0) } else { f32::NEG_INFINITY };
                *bar = (min_cos - q.bound).max(floor - 2.0 * q.bound);
            }
            block_best.fill(f32::NEG_INFINITY);
            for (r, d) in rows.clone().zip(dots.chunks_exact(nq)) {
                let s_row = self.scales[r];
                for ((m, &d), q) in block_best.iter_mut().zip(d).zip(queries) {
                    *m = m.max(d as f32 * s_row * q.scale);
                }
            }
            if block_best.iter().zip(&bars).all(|(m, bar)| m < bar) {
                u = last_unit + 1;
                continue;
            }
            for unit in u..=last_unit {
                unit_best.iter_mut().for_each(|b| *b = (f32::NEG_INFINITY, 0));
                let mut any = false;
                for r in self.unit_rows(unit) {
                    if self.is_dead(r) {
                        continue;
                    }
                    any = true;
                    let s_row = self.scales[r];
                    let at = (r - rows.start) * nq;
                    for ((q, b), &d) in queries.iter().zip(unit_best.iter_mut()).zip(&dots[at..at + nq]) {
                        let score = d as f32 * s_row * q.scale;
                        if score > b.0 {
                            *b = (score, r as u32);
                        }
                    }
                }
                if !any {
                    continue;
                }
                for (((q, b), heap), kept) in queries.iter().zip(&unit_best).zip(best.iter_mut()).zip(kept.iter_mut()) {
                    if b.0 < min_cos - q.bound {
                        continue;
                    }
                    let floor = if heap.len() >= k {
                        heap.peek().map_or(f32::NEG_INFINITY, |r| r.0.0)
                    } else {
                        f32::NEG_INFINITY
                    };
                    if b.0 < floor - 2.0 * q.bound {
                        continue;
                    }
                    kept.push((b.0, unit as u32, b.1));
                    if heap.len() < k {
                        heap.push(std::cmp::Reverse(Ordered(b.0)));
                    } else if b.0 > floor {
                        heap.pop();
                        heap.push(std::cmp::Reverse(Ordered(b.0)));
                    }
                    if kept.len() > 4 * k + 1024 {
                        let f = heap.peek().map_or(f32::NEG_INFINITY, |r| r.0.0);
                        kept.retain(|c| c.0 >= f - 2.0 * q.bound);
                    }
                }
            }
            u = last_unit + 1;
        }
        kept
    }

    /// The index in its persisted form: a header, then the face ids, persons, run starts,
    /// scales and codes, little-endian.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.memory_bytes());
        let _ = self.write_parts(usize::MAX, &mut |_, part: &[u8]| {
            out.extend_from_slice(part);
            Ok::<(), ()>(())
        });
        out
    }

    /// [`Index::to_bytes`]'s bytes in parts of `part_size` (the last one shorter), each handed
    /// to `f` with its number as soon as it is full, so no second copy of a large index is made.
    pub fn write_parts<E>(&self, part_size: usize, f: &mut PartSink<'_, E>) -> Result<u32, E> {
        let mut w = Parts { buf: Vec::with_capacity(part_size.min(1 << 24)), size: part_size.max(1), next: 0, f };
        let model = self.model.id().as_bytes();
        w.put(MAGIC)?;
        w.put(&(model.len() as u32).to_le_bytes())?;
        w.put(model)?;
        w.put(&self.trained_ms.to_le_bytes())?;
        w.put(&[u8::from(self.has_persons)])?;
        w.put(&(self.faces.len() as u64).to_le_bytes())?;
        w.put(&(self.persons.len() as u64).to_le_bytes())?;
        for f in &self.faces {
            w.put(&f.to_le_bytes())?;
        }
        for p in &self.persons {
            w.put(&p.to_le_bytes())?;
        }
        for s in self.starts.iter().take(self.persons.len()) {
            w.put(&s.to_le_bytes())?;
        }
        // Rows in their own order: where each row's codes are, when stored by list.
        let at: Vec<u32> = if self.lists.members.is_empty() {
            (0..self.len() as u32).collect()
        } else {
            let mut at = vec![0u32; self.len()];
            self.lists.members.iter().enumerate().for_each(|(m, &(r, _))| at[r as usize] = m as u32);
            at
        };
        for &m in &at {
            w.put(&self.scales[m as usize].to_le_bytes())?;
        }
        let dim = self.dim;
        for rows in at.chunks(512) {
            let bytes: Vec<u8> = rows
                .iter()
                .flat_map(|&m| &self.codes[m as usize * dim..(m as usize + 1) * dim])
                .map(|&c| c as u8)
                .collect();
            w.put(&bytes)?;
        }
        // The lists, when there are any: the centres, then each row's list.
        let lists = &self.lists;
        if !lists.members.is_empty() {
            w.put(&(lists.starts.len() as u32 - 1).to_le_bytes())?;
            for c in &lists.centres {
                w.put(&c.to_le_bytes())?;
            }
            let mut list_of = vec![0u32; self.len()];
            for (l, run) in lists.starts.windows(2).enumerate() {
                for &(r, _) in &lists.members[run[0] as usize..run[1] as usize] {
                    list_of[r as usize] = l as u32;
                }
            }
            for l in &list_of {
                w.put(&l.to_le_bytes())?;
            }
        }
        w.finish()
    }

    /// Reads [`Index::to_bytes`]'s form back, checking every length and value.
    pub fn from_bytes(bytes: &[u8]) -> Result<Index, IndexError> {
        Index::from_reader(bytes.len() as u64, &mut std::io::Cursor::new(bytes))
    }

    /// Reads [`Index::to_bytes`]'s form from a stream of `len` bytes (a store's parts, one at a
    /// time), checking every length and value: the index is built as it is read, and nothing
    /// but it is kept, so loading a large index costs its own bytes, not twice them.
    pub fn from_reader(len: u64, stream: &mut dyn std::io::Read) -> Result<Index, IndexError> {
        let bad = |what: &str| IndexError(format!("the stored trained index is damaged ({what}); train again"));
        let mut r = Reader { stream, left: len };
        if r.take(8).ok_or_else(|| bad("header"))? != MAGIC {
            return Err(bad("not an index"));
        }
        let model_len = r.u32().ok_or_else(|| bad("header"))? as usize;
        let model = r.take(model_len).ok_or_else(|| bad("header"))?;
        let model = std::str::from_utf8(&model).map_err(|_| bad("model"))?;
        let model = RecognitionModel::from_id(model).ok_or_else(|| bad("model"))?;
        let trained_ms =
            i64::from_le_bytes(r.take(8).ok_or_else(|| bad("header"))?.try_into().map_err(|_| bad("header"))?);
        let has_persons = r.take(1).ok_or_else(|| bad("header"))?[0] == 1;
        let rows = r.u64().ok_or_else(|| bad("header"))? as usize;
        let persons = r.u64().ok_or_else(|| bad("header"))? as usize;
        let dim = model.dimensions();
        let need = rows.checked_mul(16 + 4 + dim).and_then(|n| n.checked_add(persons.checked_mul(20)?));
        // The lists, written from PREFILTER_ROWS rows, follow the codes; older indexes lack them.
        if need.is_none_or(|n| n as u64 > r.left) || (has_persons && persons > rows) || (!has_persons && persons != 0) {
            return Err(bad("lengths"));
        }
        let faces: Vec<u128> = r.take_values(rows).unwrap_or_default();
        let person_ids: Vec<u128> = r.take_values(persons).unwrap_or_default();
        let starts: Vec<u32> = r.take_values(persons).unwrap_or_default();
        let scales: Vec<f32> = r.take_values(rows).unwrap_or_default();
        // Read in place: the bytes' buffer becomes the codes' (same size and alignment).
        let codes: Vec<i8> = r.take(rows * dim).unwrap_or_default().into_iter().map(|b| b as i8).collect();
        if faces.len() != rows
            || person_ids.len() != persons
            || starts.len() != persons
            || scales.len() != rows
            || codes.len() != rows * dim
        {
            return Err(bad("lengths"));
        }
        let ordered = |v: &[u128]| v.windows(2).all(|w| w[0] < w[1]);
        if has_persons {
            let runs_ok = starts.first().is_none_or(|&s| s == 0)
                && starts.windows(2).all(|w| w[0] < w[1])
                && starts.last().is_none_or(|&s| (s as usize) < rows)
                && (rows == 0 || !starts.is_empty());
            if !ordered(&person_ids) || !runs_ok {
                return Err(bad("persons"));
            }
        } else if !ordered(&faces) {
            return Err(bad("faces"));
        }
        if scales.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
            return Err(bad("scales"));
        }
        let lists = if r.left == 0 {
            None
        } else {
            let count = r.u32().ok_or_else(|| bad("lists"))? as usize;
            let need = count.checked_mul(dim * 4).and_then(|n| n.checked_add(rows * 4));
            if rows < PREFILTER_ROWS || count == 0 || count > rows || need.is_none_or(|n| n as u64 != r.left) {
                return Err(bad("lists"));
            }
            let centres: Vec<f32> = r.take_values(count * dim).unwrap_or_default();
            let nearest: Vec<u32> = r.take_values(rows).unwrap_or_default();
            if centres.len() != count * dim
                || nearest.len() != rows
                || centres.iter().any(|c| !c.is_finite())
                || nearest.iter().any(|&l| l as usize >= count)
            {
                return Err(bad("lists"));
            }
            Some((centres, nearest))
        };
        Ok(Index::assemble(model, trained_ms, has_persons, faces, person_ids, starts, codes, scales, lists))
    }
}

/// Moves, in place, row `from[m]` of `values` (rows of `width` values) to row `m`, for every
/// `m`: one cycle of the permutation at a time, with one row of scratch and a bit per row.
/// `false`, with `values` untouched, when `from` does not name every row exactly once.
fn permute_rows<T: Copy>(values: &mut [T], width: usize, from: &[u32]) -> bool {
    let n = from.len();
    if values.len() != n * width {
        return false;
    }
    let mut seen = vec![false; n];
    for &r in from {
        match seen.get_mut(r as usize) {
            Some(s) if !*s => *s = true,
            _ => return false,
        }
    }
    // `seen` now marks every row; cleared as each is put in place.
    let mut scratch: Vec<T> = Vec::with_capacity(width);
    for start in 0..n {
        if !seen[start] {
            continue;
        }
        scratch.clear();
        scratch.extend_from_slice(&values[start * width..(start + 1) * width]);
        let mut j = start;
        loop {
            seen[j] = false;
            let src = from[j] as usize;
            if src == start {
                values[j * width..(j + 1) * width].copy_from_slice(&scratch);
                break;
            }
            values.copy_within(src * width..(src + 1) * width, j * width);
            j = src;
        }
    }
    true
}

/// Cuts a stream of bytes into numbered parts.
/// Where [`Index::write_parts`] hands each part: its number and bytes.
pub type PartSink<'f, E> = dyn FnMut(u32, &[u8]) -> Result<(), E> + 'f;

struct Parts<'f, E> {
    buf: Vec<u8>,
    size: usize,
    next: u32,
    f: &'f mut PartSink<'f, E>,
}

impl<E> Parts<'_, E> {
    fn put(&mut self, mut bytes: &[u8]) -> Result<(), E> {
        while !bytes.is_empty() {
            let room = self.size - self.buf.len();
            let (now, later) = bytes.split_at(room.min(bytes.len()));
            self.buf.extend_from_slice(now);
            bytes = later;
            if self.buf.len() == self.size {
                (self.f)(self.next, &self.buf)?;
                self.next += 1;
                self.buf.clear();
            }
        }
        Ok(())
    }

    /// Hands over the last part; returns how many parts there were.
    fn finish(mut self) -> Result<u32, E> {
        if !self.buf.is_empty() || self.next == 0 {
            (self.f)(self.next, &self.buf)?;
            self.next += 1;
        }
        Ok(self.next)
    }
}

/// A stream of a known length, read in pieces of known sizes.
struct Reader<'a> {
    stream: &'a mut dyn std::io::Read,
    /// Bytes of the stream not read yet.
    left: u64,
}

impl Reader<'_> {
    /// The next `n` bytes; `None` if the stream has fewer (or fails).
    fn take(&mut self, n: usize) -> Option<Vec<u8>> {
        if n as u64 > self.left {
            return None;
        }
        let mut out = vec![0u8; n];
        self.stream.read_exact(&mut out).ok()?;
        self.left -= n as u64;
        Some(out)
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    /// The next `n` little-endian values, read straight into their vector (no second copy of a
    /// million ids); `None` if the stream has fewer.
    fn take_values<T: LeValue>(&mut self, n: usize) -> Option<Vec<T>> {
        let bytes = n.checked_mul(std::mem::size_of::<T>())?;
        if bytes as u64 > self.left {
            return None;
        }
        let mut out = vec![T::zeroed(); n];
        self.stream.read_exact(bytemuck::cast_slice_mut(&mut out)).ok()?;
        self.left -= bytes as u64;
        out.iter_mut().for_each(|v| *v = v.from_le());
        Some(out)
    }
}

/// A value stored little-endian: read as its bytes, then put in this machine's order.
trait LeValue: bytemuck::Pod {
    #[expect(
        clippy::wrong_self_convention,
        reason = "named after the integers' own `from_le`, which also maps a value"
    )]
    fn from_le(self) -> Self;
}

impl LeValue for u32 {
    fn from_le(self) -> Self {
        u32::from_le(self)
    }
}

impl LeValue for u128 {
    fn from_le(self) -> Self {
        u128::from_le(self)
    }
}

impl LeValue for f32 {
    fn from_le(self) -> Self {
        f32::from_bits(u32::from_le(self.to_bits()))
    }
}

/// Int8 dot products of rows with queries, as [`dots`] defines them.
type Kernel = dyn Fn(&[i8], &[&Query], &mut [i32]) + Sync;

/// The fastest of [`dots`] and [`dots_avx2`] this CPU runs for queries of length `dim`.
fn kernel(dim: usize) -> &'static Kernel {
    #[cfg(target_arch = "x86_64")]
    if dim.is_multiple_of(16) && dim <= 1024 && std::arch::is_x86_feature_detected!("avx2") {
        return &|rows, qs, out| {
            // SAFETY: the CPU has AVX2 (checked above); the callers pass queries of the index's
            // length `dim`, a multiple of 16 of at most 1024 (checked above), whole rows of it
            // and an `out` of rows times queries: all `dots_avx2` needs.
            #[allow(unsafe_code)]
            unsafe {
                dots_avx2(rows, qs, out)
            }
        };
    }
    let _ = dim;
    &dots
}

/// The dot products of each int8 row in `rows` (rows of the queries' length, back to back) with
/// every query: `out[row * queries + i] = row . queries[i]`. The arithmetic wraps so that
/// overflow checks (on in the dev profile) do not slow it; it cannot overflow, as
/// 127 * 127 * 16384 < 2^31 for any embedding this service makes.
fn dots(rows: &[i8], queries: &[&Query], out: &mut [i32]) {
    let dim = queries.first().map_or(1, |q| q.wide.len()).max(1);
    for (row, out) in rows.chunks_exact(dim).zip(out.chunks_exact_mut(queries.len())) {
        for (q, o) in queries.iter().zip(out.iter_mut()) {
            *o = row
                .iter()
                .zip(&q.wide)
                .fold(0i32, |s, (&a, &b)| s.wrapping_add(i32::from(a).wrapping_mul(i32::from(b))));
        }
    }
}

/// [`dots`] with AVX2: each row is widened to i16 once, then each query costs one multiply-add
/// (`vpmaddwd`, 16 products) and one add per 16 components.
///
/// # Safety
/// The CPU must have AVX2; every query must have the same length, a multiple of 16 and at most
/// 1024; `rows` must be whole rows of that length and `out` at least rows times queries long.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[allow(unsafe_code)]
unsafe fn dots_avx2(rows: &[i8], queries: &[&Query], out: &mut [i32]) {
    use std::arch::x86_64::*;
    let Some(dim) = queries.first().map(|q| q.wide.len()) else { return };
    let blocks = (dim / 16).min(64);
    let mut wide = [_mm256_setzero_si256(); 64];
    for (row, out) in rows.chunks_exact(dim).zip(out.chunks_exact_mut(queries.len())) {
        for (b, w) in wide.iter_mut().enumerate().take(blocks) {
            // SAFETY: block b is row[16 b..16 b + 16], inside `row`.
            *w = _mm256_cvtepi8_epi16(unsafe { _mm_loadu_si128(row.as_ptr().add(16 * b).cast()) });
        }
        // Four queries at a time: four independent sums, reduced together by three
        // horizontal adds into the four results.
        let mut fours = queries.chunks_exact(4);
        let mut o4 = out.chunks_exact_mut(4);
        for (q, o) in (&mut fours).zip(&mut o4) {
            let mut acc = [_mm256_setzero_si256(); 4];
            for (b, w) in wide.iter().enumerate().take(blocks) {
                for (a, q) in acc.iter_mut().zip(q) {
                    // SAFETY: the query is as long as the row: block b is inside it.
                    let v = unsafe { _mm256_loadu_si256(q.wide.as_ptr().add(16 * b).cast()) };
                    *a = _mm256_add_epi32(*a, _mm256_madd_epi16(*w, v));
                }
            }
            let h = _mm256_hadd_epi32(_mm256_hadd_epi32(acc[0], acc[1]), _mm256_hadd_epi32(acc[2], acc[3]));
            let s = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256::<1>(h));
            // SAFETY: `o` is four i32s, the 16 bytes written.
            unsafe { _mm_storeu_si128(o.as_mut_ptr().cast(), s) };
        }
        for (q, o) in fours.remainder().iter().zip(o4.into_remainder()) {
            let mut acc = _mm256_setzero_si256();
            for (b, w) in wide.iter().enumerate().take(blocks) {
                // SAFETY: the query is as long as the row: block b is inside it.
                let v = unsafe { _mm256_loadu_si256(q.wide.as_ptr().add(16 * b).cast()) };
                acc = _mm256_add_epi32(acc, _mm256_madd_epi16(*w, v));
            }
            let s = _mm_add_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256::<1>(acc));
            let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01_00_11_10>(s));
            let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s));
            *o = _mm_cvtsi128_si32(s);
        }
    }
}

/// An f32 that orders totally, for the heaps.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Ordered(f32);

impl Eq for Ordered {}

impl PartialOrd for Ordered {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Ordered {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// The candidates that may be in the exact best `k` at or above `min_cos`, given int8 scores
/// within `bound` of the truth: at least `min_cos - bound`, and at least the k-th best `- 2 bound`.
fn keep(mut all: Vec<Scored>, min_cos: f32, k: usize, bound: f32) -> Vec<Scored> {
    all.retain(|c| c.0 >= min_cos - bound);
    if all.len() > k {
        let (_, kth, _) = all.select_nth_unstable_by(k - 1, |a, b| b.0.total_cmp(&a.0));
        let floor = kth.0 - 2.0 * bound;
        all.retain(|c| c.0 >= floor);
    }
    all
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

/// The trained indexes in memory, by collection; loaded from the store on first use.
#[derive(Debug, Default)]
pub struct IndexCache {
    cached: std::sync::Mutex<std::collections::HashMap<(Kind, String), std::sync::Arc<Index>>>,
    /// Counts forgets and clears: a load that began before one does not cache what it read
    /// ([`IndexCache::put_since`]), since the collection may be gone or made anew.
    epoch: AtomicU64,
    /// The newest training another host told of, per collection, while it may not be cached.
    heard: std::sync::Mutex<std::collections::HashMap<(Kind, String), i64>>,
    /// One lock per collection being loaded, so concurrent searches share one load.
    loading: std::sync::Mutex<LoadLocks>,
}

/// [`IndexCache`]'s load lock of each collection.
type LoadLocks = std::collections::HashMap<(Kind, String), std::sync::Arc<tokio::sync::Mutex<()>>>;

impl IndexCache {
    fn map(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<(Kind, String), std::sync::Arc<Index>>> {
        self.cached.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The lock a load of the collection's index holds.
    pub fn load_lock(&self, kind: Kind, id: &str) -> std::sync::Arc<tokio::sync::Mutex<()>> {
        let mut loading = self.loading.lock().unwrap_or_else(|p| p.into_inner());
        // Locks nobody holds or waits for are dropped as others are made.
        loading.retain(|_, l| std::sync::Arc::strong_count(l) > 1);
        loading.entry((kind, id.to_owned())).or_default().clone()
    }

    pub fn get(&self, kind: Kind, id: &str) -> Option<std::sync::Arc<Index>> {
        self.map().get(&(kind, id.to_owned())).cloned()
    }

    /// Caches `index` unless a newer training is cached already; returns the one cached.
    pub fn put(&self, kind: Kind, id: &str, index: std::sync::Arc<Index>) -> std::sync::Arc<Index> {
        Self::newest(&mut self.map(), kind, id, index)
    }

    fn newest(
        map: &mut std::collections::HashMap<(Kind, String), std::sync::Arc<Index>>,
        kind: Kind,
        id: &str,
        index: std::sync::Arc<Index>,
    ) -> std::sync::Arc<Index> {
        let slot = map.entry((kind, id.to_owned())).or_insert_with(|| index.clone());
        if slot.trained_ms < index.trained_ms {
            *slot = index;
        }
        slot.clone()
    }

    /// Drops the collection's index (the collection is gone or replaced).
    pub fn forget(&self, kind: Kind, id: &str) {
        let mut map = self.map();
        self.epoch.fetch_add(1, Ordering::SeqCst);
        map.remove(&(kind, id.to_owned()));
    }

    /// Drops every cached index (each is read again on its next use); returns how many.
    pub fn clear(&self) -> usize {
        let mut map = self.map();
        self.epoch.fetch_add(1, Ordering::SeqCst);
        let n = map.len();
        map.clear();
        n
    }

    /// Read before a load; [`IndexCache::put_since`] caches its result only if nothing was
    /// forgotten meanwhile.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// [`IndexCache::put`], unless an index was forgotten since `epoch`: then `index` is
    /// returned for the call that loaded it, and not cached.
    pub fn put_since(&self, epoch: u64, kind: Kind, id: &str, index: std::sync::Arc<Index>) -> std::sync::Arc<Index> {
        let mut map = self.map();
        if self.epoch.load(Ordering::SeqCst) != epoch {
            return index;
        }
        Self::newest(&mut map, kind, id, index)
    }

    /// Records that a training of the collection at `trained_ms` succeeded (another host's).
    pub fn heard(&self, kind: Kind, id: &str, trained_ms: i64) {
        let mut heard = self.heard.lock().unwrap_or_else(|p| p.into_inner());
        let newest = heard.entry((kind, id.to_owned())).or_insert(trained_ms);
        *newest = (*newest).max(trained_ms);
    }

    /// Whether a training newer than `trained_ms` was heard of for the collection.
    pub fn newer_heard(&self, kind: Kind, id: &str, trained_ms: i64) -> bool {
        let heard = self.heard.lock().unwrap_or_else(|p| p.into_inner());
        heard.get(&(kind, id.to_owned())).is_some_and(|&t| t > trained_ms)
    }

    /// Marks a deleted face dead in the cached index, if one is cached.
    pub fn kill_face(&self, kind: Kind, id: &str, person_id: Option<&str>, face_id: &str) {
        if let Some(index) = self.get(kind, id) {
            index.kill_face(person_id, face_id);
        }
    }

    /// Marks a deleted person's faces dead in the cached index, if one is cached.
    pub fn kill_person(&self, kind: Kind, id: &str, person_id: &str) {
        if let Some(index) = self.get(kind, id) {
            index.kill_person(person_id);
        }
    }

    /// Bytes the cached indexes hold.
    pub fn memory_bytes(&self) -> usize {
        self.map().values().map(|i| i.memory_bytes()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A seeded pseudo-random unit vector.
    fn vector(seed: u64, dim: usize) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let v: Vec<f32> = (0..dim)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s % 20_001) as f32 / 10_000.0 - 1.0
            })
            .collect();
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.into_iter().map(|x| x / n).collect()
    }

    fn uuid(n: u64) -> String {
        Uuid::from_u128(u128::from(n) * 7919 + 1).to_string()
    }

    /// `n` persons with `per` faces each around a centre of their own.
    fn group(n: u64, per: u64) -> Vec<(String, String, Vec<f32>)> {
        let mut out = Vec::new();
        for p in 0..n {
            let centre = vector(p, 128);
            for f in 0..per {
                let noise = vector(1_000_000 + p * per + f, 128);
                let v: Vec<f32> = centre.iter().zip(&noise).map(|(c, e)| c + 0.6 * e).collect();
                out.push((uuid(p), uuid(1_000_000 + p * per + f), v));
            }
        }
        out
    }

    fn exact_best(faces: &[(String, String, Vec<f32>)], q: &[f32], k: usize) -> Vec<(String, f32)> {
        let mut best = std::collections::HashMap::<&str, f32>::new();
        for (p, _, v) in faces {
            let c = face_core::cosine(v, q);
            let e = best.entry(p).or_insert(-2.0);
            *e = e.max(c);
        }
        let mut ranked: Vec<(String, f32)> = best.into_iter().map(|(p, c)| (p.to_owned(), c)).collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        ranked.truncate(k);
        ranked
    }

    #[test]
    fn the_lists_keep_the_best_person_of_a_large_group() {
        // Just past the size where searches are narrowed to the nearest lists. Every face shares
        // one offset, as real embeddings share a mean.
        let offset = vector(99, 128);
        let shift = |v: &[f32]| -> Vec<f32> { v.iter().zip(&offset).map(|(x, o)| x + 0.8 * o).collect() };
        let persons = PREFILTER_ROWS as u64 / 4;
        let mut faces = group(persons, 4);
        for face in &mut faces {
            face.2 = shift(&face.2);
        }
        let rows = faces.iter().map(|(p, f, v)| Row { face_id: f, person_id: Some(p), embedding: v });
        let index = Index::from_faces(RecognitionModel::SFace, 1, true, rows).unwrap();
        let lists = &index.lists;
        assert_eq!(lists.members.len(), index.len());
        assert_eq!(lists.starts.len(), (index.len() as f64).sqrt() as usize + 1);
        assert_eq!(lists.centres.len(), (lists.starts.len() - 1) * 128);
        // Twenty query faces, each a new photo of a known person (its centre plus noise of its
        // own: about cos 0.7 to that person's faces), all in one call.
        let queries: Vec<Vec<f32>> = (0..20u64)
            .map(|seed| {
                let noise = vector(7_000_000 + seed, 128);
                let centre = vector(seed * 9_973 % persons, 128);
                shift(&centre.iter().zip(&noise).map(|(c, e)| c + 0.6 * e).collect::<Vec<f32>>())
            })
            .collect();
        let refs: Vec<&[f32]> = queries.iter().map(Vec::as_slice).collect();
        let by_id: std::collections::HashMap<&str, &[f32]> =
            faces.iter().map(|(_, f, v)| (f.as_str(), v.as_slice())).collect();
        // The caller's exact re-ranking of the candidates: the best person and cosine.
        let best = |cands: &[u32], q: &[f32]| {
            cands
                .iter()
                .flat_map(|&u| index.rows_of(u))
                .map(|r| {
                    let (person, face) = index.ids(r);
                    (person.unwrap(), face_core::cosine(by_id[face.as_str()], q))
                })
                .max_by(|a, b| a.1.total_cmp(&b.1))
        };
        let cands = index.candidates(&refs, 0.3, 1);
        for (q, cands) in queries.iter().zip(&cands) {
            let exact = exact_best(&faces, q, 1);
            assert_eq!(best(cands, q).expect("a candidate").0, exact[0].0, "top-1 person");
            assert!(cands.len() < 50, "{} candidates", cands.len());
        }
        // The lists are stored with the index, and an index stored without them (as before
        // they existed) splits the same way when read.
        let bytes = index.to_bytes();
        let lists_len = 4 + lists.centres.len() * 4 + index.len() * 4;
        let back = Index::from_bytes(&bytes).unwrap();
        let older = Index::from_bytes(&bytes[..bytes.len() - lists_len]).unwrap();
        for other in [&back, &older] {
            assert_eq!(other.lists.members, lists.members);
            assert_eq!(other.lists.centres, lists.centres);
            assert_eq!((&other.codes, &other.scales), (&index.codes, &index.scales));
            assert_eq!(other.candidates(&refs, 0.3, 1), cands);
        }
        assert_eq!(older.to_bytes(), bytes);
        assert!(Index::from_bytes(&bytes[..bytes.len() - 1]).is_err(), "a damaged list is refused");
        // A LargeFaceList of the same faces, searched for its best 20 as find-similar does. These
        // vectors are spread evenly over the sphere, the lists' hardest case (real embeddings
        // cluster): the exact best face is found for at least 19 of the 20 queries, and at least
        // 80% of the faces clearly like a query (cos > 0.6, mostly its person's) are found.
        let rows = faces.iter().map(|(_, f, v)| Row { face_id: f, person_id: None, embedding: v });
        let list = Index::from_faces(RecognitionModel::SFace, 1, false, rows).unwrap();
        assert_eq!(list.lists.members.len(), list.len());
        let (mut best_found, mut alike_found, mut alike_all) = (0, 0, 0);
        for (q, query) in queries.iter().zip(list.candidates(&refs, -1.0, 20)) {
            let found: Vec<String> = query.iter().map(|&u| list.ids(u).1).collect();
            let cos = |v: &[f32]| face_core::cosine(v, q);
            let best = faces.iter().max_by(|a, b| cos(&a.2).total_cmp(&cos(&b.2))).unwrap();
            best_found += usize::from(found.contains(&best.1));
            let alike: Vec<&String> = faces.iter().filter(|(_, _, v)| cos(v) > 0.6).map(|(_, f, _)| f).collect();
            alike_all += alike.len();
            alike_found += alike.iter().filter(|f| found.contains(f)).count();
        }
        assert!(best_found >= 19, "the best face found for {best_found} of 20 queries");
        assert!(alike_found * 5 >= alike_all * 4, "{alike_found} of {alike_all} faces alike found");
        // A deleted person is never found.
        let gone = exact_best(&faces, &queries[0], 1)[0].0.clone();
        assert!(index.kill_person(&gone));
        let after = index.candidates(&refs[..1], -1.0, 1);
        let found = best(&after[0], &queries[0]).expect("a candidate");
        assert_ne!(found.0, gone);
        let live: Vec<_> = faces.iter().filter(|(p, _, _)| *p != gone).cloned().collect();
        assert_eq!(found.0, exact_best(&live, &queries[0], 1)[0].0, "top-1 once the best is deleted");
    }

    #[test]
    fn candidates_hold_the_exact_best_persons() {
        let faces = group(300, 4);
        let rows = faces.iter().map(|(p, f, v)| Row { face_id: f, person_id: Some(p), embedding: v });
        let index = Index::from_faces(RecognitionModel::SFace, 1, true, rows).unwrap();
        assert_eq!(index.len(), 1200);
        for seed in 0..20 {
            let q = vector(5_000_000 + seed, 128);
            let q: Vec<f32> = q.iter().zip(&faces[(seed * 37) as usize].2).map(|(a, b)| a + b).collect();
            let cands = index.candidates(&[&q], -1.0, 5);
            let exact = exact_best(&faces, &q, 5);
            let held: Vec<String> = cands[0].iter().map(|&u| index.ids(index.rows_of(u)[0]).0.unwrap()).collect();
            for (p, _) in &exact {
                assert!(held.contains(p), "seed {seed}: {p} missing from {} candidates", held.len());
            }
            assert!(held.len() < 60, "the bound keeps the candidates few: {}", held.len());
        }
    }

    #[test]
    fn dead_rows_are_never_found_and_the_bytes_round_trip() {
        let faces = group(20, 3);
        let rows = faces.iter().map(|(p, f, v)| Row { face_id: f, person_id: Some(p), embedding: v });
        let index = Index::from_faces(RecognitionModel::SFace, 42, true, rows).unwrap();
        let (p0, f0, v0) = &faces[0];
        let top = |ix: &Index| {
            ix.candidates(&[v0], 0.5, 1)[0].iter().map(|&u| ix.ids(ix.rows_of(u)[0]).0.unwrap()).collect::<Vec<_>>()
        };
        assert_eq!(top(&index), [p0.as_str()]);
        assert!(index.kill_face(Some(p0), f0));
        assert_eq!(index.live(), 59);
        assert!(index.kill_person(p0));
        assert!(!index.kill_person(&uuid(999)));
        assert!(!top(&index).contains(p0), "a deleted person is not found");
        let back = Index::from_bytes(&index.to_bytes()).unwrap();
        assert_eq!((back.len(), back.trained_ms, back.live()), (60, 42, 60), "deaths are not part of the training");
        assert_eq!(top(&back), [p0.as_str()]);
        let mut damaged = index.to_bytes();
        damaged.truncate(damaged.len() - 1);
        assert!(Index::from_bytes(&damaged).is_err());
        assert!(Index::from_bytes(b"FACEIDX1").is_err());
        // Streamed from parts of 100 bytes as a store hands them over: the same index.
        let mut parts: Vec<Vec<u8>> = Vec::new();
        index
            .write_parts(100, &mut |_, p: &[u8]| {
                parts.push(p.to_vec());
                Ok::<(), ()>(())
            })
            .unwrap();
        let len = parts.iter().map(Vec::len).sum::<usize>() as u64;
        let mut stream = crate::store::PartsReader::new(parts.len(), |i| Ok(parts[i].clone()));
        let streamed = Index::from_reader(len, &mut stream).unwrap();
        assert_eq!(streamed.to_bytes(), back.to_bytes());
        // A stream shorter than its stated length, or one whose part fails, is refused.
        let mut short = crate::store::PartsReader::new(parts.len() - 1, |i| Ok(parts[i].clone()));
        assert!(Index::from_reader(len, &mut short).is_err());
        let mut failing = crate::store::PartsReader::new(parts.len(), |i| {
            if i == 3 { Err(crate::store::StoreError::Unavailable("cut".into())) } else { Ok(parts[i].clone()) }
        });
        assert!(Index::from_reader(len, &mut failing).is_err());
        assert!(failing.error.is_some(), "the store's error is kept for the caller");
    }

    #[test]
    fn rows_are_permuted_in_place_or_not_at_all() {
        let mut v: Vec<i8> = (0..12).collect();
        // Rows of 3: row m takes old row from[m].
        assert!(permute_rows(&mut v, 3, &[2, 0, 3, 1]));
        assert_eq!(v, [6, 7, 8, 0, 1, 2, 9, 10, 11, 3, 4, 5]);
        let mut w: Vec<f32> = vec![0.5, 1.5, 2.5];
        assert!(permute_rows(&mut w, 1, &[0, 1, 2]), "the identity");
        assert_eq!(w, [0.5, 1.5, 2.5]);
        for bad in [&[0u32, 0, 1][..], &[0, 1, 3], &[0, 1]] {
            let mut u: Vec<i8> = vec![1, 2, 3];
            assert!(!permute_rows(&mut u, 1, bad), "{bad:?}");
            assert_eq!(u, [1, 2, 3], "untouched");
        }
    }

    #[test]
    fn the_threshold_becomes_a_cosine() {
        for c in [0.1f32, 0.5, 0.9] {
            let cos = cosine_for(RecognitionModel::SFace, c);
            assert!(face_core::confidence_from_cosine(RecognitionModel::SFace, cos + 1e-4) >= c);
            assert!(face_core::confidence_from_cosine(RecognitionModel::SFace, cos - 1e-3) < c);
        }
        assert_eq!(cosine_for(RecognitionModel::SFace, 0.0), -1.0);
    }
}
