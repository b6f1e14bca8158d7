//! The small statistics and label files of `cargo xtask eval`: LABELS.csv rows and ROC AUC.

use std::path::Path;

use anyhow::{Context, Result};

/// The rows of a CSV file with a header line, each as its fields.
pub fn csv_rows(path: &Path) -> Result<Vec<Vec<String>>> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(path)
        .with_context(|| format!("reading {}", path.display()))?;
    reader
        .records()
        .map(|r| Ok(r.with_context(|| format!("reading {}", path.display()))?.iter().map(str::to_owned).collect()))
        .collect()
}

/// ROC AUC by the Mann-Whitney statistic (ties count half).
pub fn auc(scored: &[(f32, bool, bool)]) -> f64 {
    let pos: Vec<f32> = scored.iter().filter(|s| s.1).map(|s| s.0).collect();
    let neg: Vec<f32> = scored.iter().filter(|s| !s.1).map(|s| s.0).collect();
    let mut wins = 0.0;
    for p in &pos {
        for n in &neg {
            wins += if p > n {
                1.0
            } else if p == n {
                0.5
            } else {
                0.0
            };
        }
    }
    wins / (pos.len() * neg.len()).max(1) as f64
}

/// The median (the upper one of an even count); NaN when empty.
pub fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The value at fraction `p` of sorted values (nearest rank); NaN when empty.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}
