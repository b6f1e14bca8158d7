//! The inverted file: k-means centres of a sample of the rows, every row assigned to its
//! nearest, and the search that scans only the lists nearest each query.

use super::*;

impl Index {
    /// The centres of the inverted file of these rows (see the module's documentation): about
    /// `sqrt(rows)` unit vectors, back to back. Deterministic.
    pub(super) fn centres(&self, threads: usize) -> Vec<f32> {
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
    pub(super) fn lists_of(&self, centres: Vec<f32>, nearest: &[u32]) -> Lists {
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
    pub(super) fn nearest(&self, centres: &[f32], rows: &[usize], threads: usize) -> Vec<u32> {
        let dim = self.dim;
        let queries: Vec<Query> = centres
            .chunks_exact(dim)
            .map(|c| {
                let mut codes = Vec::with_capacity(dim);
                let scale = quantise(c, &mut codes).unwrap_or(1.0);
                Query { codes, scale, bound: 0.0 }
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
    pub(super) fn prefiltered(&self, queries: &[&Query], min_cos: f32, k: usize, threads: usize) -> Vec<Vec<Scored>> {
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
    pub(super) fn probe(&self, q: &Query, min_cos: f32, k: usize) -> Vec<Scored> {
        let (dim, lists) = (self.dim, &self.lists);
        let count = lists.starts.len() - 1;
        let v: Vec<f32> = q.codes.iter().map(|&c| f32::from(c) * q.scale).collect();
        let mut near: Vec<(f32, u32)> =
            lists.centres.chunks_exact(dim).enumerate().map(|(l, c)| (dot8(c, &v), l as u32)).collect();
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
}

/// The dot product of two f32 vectors in eight running sums (which the compiler keeps in a
/// vector register), then added together: a one-sum loop waits on each addition in turn, which
/// made scoring a million-face index's thousand centres about 7% of every identify.
fn dot8(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a8.remainder().iter().zip(b8.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in a8.zip(b8) {
        for ((s, x), y) in acc.iter_mut().zip(x).zip(y) {
            *s += x * y;
        }
    }
    acc.iter().sum::<f32>() + tail
}
