//! The exhaustive scan: every live row of a range of units scored against every query, and
//! the candidates kept by their int8 bounds.

use super::*;

impl Index {
    /// Scores every live row of `units` against every query; per query keeps the units that
    /// may be in its best `k` at or above `min_cos` (a superset, pruned as the k-th best rises).
    pub(super) fn scan(
        &self,
        queries: &[&Query],
        units: std::ops::Range<usize>,
        min_cos: f32,
        k: usize,
    ) -> Vec<Vec<Scored>> {
        let kernel = kernel(self.dim);
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
pub(super) fn keep(mut all: Vec<Scored>, min_cos: f32, k: usize, bound: f32) -> Vec<Scored> {
    all.retain(|c| c.0 >= min_cos - bound);
    if all.len() > k {
        let (_, kth, _) = all.select_nth_unstable_by(k - 1, |a, b| b.0.total_cmp(&a.0));
        let floor = kth.0 - 2.0 * bound;
        all.retain(|c| c.0 >= floor);
    }
    all
}
