//! The timing loop the bench examples share.

use std::time::Instant;

/// The median milliseconds of `runs` calls of `f` (at least one), after `warm` calls untimed.
pub fn median_ms(warm: usize, runs: usize, mut f: impl FnMut()) -> f64 {
    for _ in 0..warm {
        f();
    }
    let mut times: Vec<f64> = (0..runs.max(1))
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}
