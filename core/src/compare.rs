//! Comparing embeddings: verify confidence, find-similar ranking and grouping.
//!
//! Confidence is a monotonic map of cosine similarity onto [0, 1] that puts 0.5 exactly at the
//! model's published threshold, so `isIdentical` (confidence >= 0.5) is the model's own decision.
//! Cosine is first rescaled piecewise so that the threshold sits at 0 and the ends at -1 and 1,
//! then passed through a logistic of slope `CONFIDENCE_SLOPE`.

use serde::{Deserialize, Serialize};

use crate::embed::{Embedding, RecognitionModel};
use crate::error::{Error, Result};

/// Slope of the logistic on the rescaled cosine. At 6, SFace pairs at cosine 0.6 score 0.90,
/// pairs at 0.2 score 0.33.
pub const CONFIDENCE_SLOPE: f32 = 6.0;
/// The confidence at and above which two faces are the same person.
pub const IDENTICAL_CONFIDENCE: f32 = 0.5;
/// The most faces `group` accepts.
pub const MAX_GROUP_FACES: usize = 1000;

/// Cosine similarity; 0 when either vector is zero.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norms = a.iter().map(|x| x * x).sum::<f32>().sqrt() * b.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norms > 0.0 && norms.is_finite() { (dot / norms).clamp(-1.0, 1.0) } else { 0.0 }
}

/// Maps a cosine similarity to a confidence for `model`.
pub fn confidence_from_cosine(model: RecognitionModel, cos: f32) -> f32 {
    if cos.is_nan() {
        return 0.0;
    }
    let t = model.threshold();
    let z = if cos >= t { (cos - t) / (1.0 - t) } else { (cos - t) / (1.0 + t) };
    let c = 1.0 / (1.0 + (-CONFIDENCE_SLOPE * z).exp());
    // Guard exactness at the threshold against rounding.
    if cos >= t { c.max(IDENTICAL_CONFIDENCE) } else { c.min(IDENTICAL_CONFIDENCE - f32::EPSILON) }
}

/// The result of comparing two faces.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Verification {
    pub is_identical: bool,
    pub confidence: f32,
}

/// Compares two embeddings of the same model.
pub fn verify(a: &Embedding, b: &Embedding) -> Result<Verification> {
    same_model(a, b)?;
    let confidence = confidence_from_cosine(a.model, cosine(&a.vector, &b.vector));
    Ok(Verification { is_identical: confidence >= IDENTICAL_CONFIDENCE, confidence })
}

fn same_model(a: &Embedding, b: &Embedding) -> Result<()> {
    if a.model != b.model {
        return Err(Error::InvalidArgument {
            reason: format!(
                "embeddings come from different recognition models ({} and {}) and cannot be compared",
                a.model.id(),
                b.model.id()
            ),
        });
    }
    for e in [a, b] {
        if e.vector.len() != e.model.dimensions() || e.vector.iter().any(|v| !v.is_finite()) {
            return Err(Error::InvalidArgument {
                reason: format!(
                    "an embedding of {} must have {} finite values; this one has {}",
                    e.model.id(),
                    e.model.dimensions(),
                    e.vector.len()
                ),
            });
        }
    }
    Ok(())
}

/// How find-similar ranks candidates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum FindSimilarMode {
    /// Only candidates judged the same person, best first.
    MatchPerson,
    /// The most similar candidates whatever the threshold, best first.
    MatchFace,
}

/// One find-similar hit: the candidate's index in the input and its confidence.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Similar {
    pub index: usize,
    pub confidence: f32,
}

/// Ranks `candidates` by similarity to `query` and returns at most `max` hits.
pub fn find_similar(
    query: &Embedding,
    candidates: &[Embedding],
    mode: FindSimilarMode,
    max: usize,
) -> Result<Vec<Similar>> {
    let mut hits = Vec::with_capacity(candidates.len());
    for (index, c) in candidates.iter().enumerate() {
        same_model(query, c)?;
        let confidence = confidence_from_cosine(query.model, cosine(&query.vector, &c.vector));
        if mode == FindSimilarMode::MatchFace || confidence >= IDENTICAL_CONFIDENCE {
            hits.push(Similar { index, confidence });
        }
    }
    hits.sort_by(|a, b| b.confidence.total_cmp(&a.confidence).then(a.index.cmp(&b.index)));
    hits.truncate(max);
    Ok(hits)
}

/// Faces divided into groups of one person each, plus the faces like no other.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Grouping {
    /// Indices into the input, largest group first; each group in input order.
    pub groups: Vec<Vec<usize>>,
    pub messy_group: Vec<usize>,
}

/// Groups faces by identity with average-linkage agglomerative clustering: starting from one
/// cluster per face, the two clusters whose faces are most alike on average are merged while
/// that average confidence reaches 0.5, so one chance match between two people does not chain
/// their clusters together (single linkage does). Clusters of one face form the messy group.
pub fn group(faces: &[Embedding]) -> Result<Grouping> {
    if faces.len() > MAX_GROUP_FACES {
        return Err(Error::InvalidArgument {
            reason: format!("{} faces given; group takes at most {MAX_GROUP_FACES}", faces.len()),
        });
    }
    let n = faces.len();
    for i in 1..n {
        same_model(&faces[0], &faces[i])?;
    }
    if n == 1 {
        same_model(&faces[0], &faces[0])?;
    }
    // Sums of pairwise confidences between clusters (Lance-Williams for the average link).
    let mut sum = vec![0.0f64; n * n];
    for i in 0..n {
        for j in i + 1..n {
            let c = f64::from(confidence_from_cosine(faces[i].model, cosine(&faces[i].vector, &faces[j].vector)));
            sum[i * n + j] = c;
            sum[j * n + i] = c;
        }
    }
    let mut members: Vec<Vec<usize>> = (0..n).map(|i| vec![i]).collect();
    let mut alive: Vec<usize> = (0..n).collect();
    loop {
        let mut best: Option<(f64, usize, usize)> = None;
        for (x, &a) in alive.iter().enumerate() {
            for &b in &alive[x + 1..] {
                let avg = sum[a * n + b] / (members[a].len() * members[b].len()) as f64;
                if avg >= f64::from(IDENTICAL_CONFIDENCE) && best.is_none_or(|(v, _, _)| avg > v) {
                    best = Some((avg, a, b));
                }
            }
        }
        let Some((_, a, b)) = best else { break };
        // Merge b into a.
        for &c in &alive {
            if c != a && c != b {
                let merged = sum[a * n + c] + sum[b * n + c];
                sum[a * n + c] = merged;
                sum[c * n + a] = merged;
            }
        }
        let moved = std::mem::take(&mut members[b]);
        members[a].extend(moved);
        alive.retain(|&c| c != b);
    }
    let mut result = Grouping::default();
    for a in alive {
        let mut m = std::mem::take(&mut members[a]);
        m.sort_unstable();
        if m.len() == 1 {
            result.messy_group.push(m[0]);
        } else {
            result.groups.push(m);
        }
    }
    result.messy_group.sort_unstable();
    result.groups.sort_by(|a, b| b.len().cmp(&a.len()).then(a[0].cmp(&b[0])));
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(degrees: f32) -> Embedding {
        let mut vector = vec![0.0; 128];
        vector[0] = degrees.to_radians().cos();
        vector[1] = degrees.to_radians().sin();
        Embedding { model: RecognitionModel::SFace, vector }
    }

    #[test]
    fn one_chance_link_does_not_chain_two_people_together() {
        // A-B and B-C are each above the threshold, A-C far below: single linkage would make one
        // group of three; the average link keeps C apart.
        let faces = [at(0.0), at(53.6), at(120.0), at(1.0)];
        assert!(verify(&faces[1], &faces[2]).unwrap().is_identical);
        assert!(!verify(&faces[0], &faces[2]).unwrap().is_identical);
        let g = group(&faces).unwrap();
        assert_eq!(g.groups, vec![vec![0, 1, 3]]);
        assert_eq!(g.messy_group, vec![2]);
    }

    #[test]
    fn groups_are_ranked_by_size_and_listed_in_input_order() {
        let faces = [at(90.0), at(0.0), at(91.0), at(2.0), at(180.0), at(1.0)];
        let g = group(&faces).unwrap();
        assert_eq!(g.groups, vec![vec![1, 3, 5], vec![0, 2]]);
        assert_eq!(g.messy_group, vec![4]);
        assert_eq!(group(&[]).unwrap(), Grouping::default());
    }
}
