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

/// Groups faces by identity: faces are linked when their confidence reaches 0.5 and a group is
/// a connected set of links. Faces linked to nothing form the messy group.
pub fn group(faces: &[Embedding]) -> Result<Grouping> {
    if faces.len() > MAX_GROUP_FACES {
        return Err(Error::InvalidArgument {
            reason: format!("{} faces given; group takes at most {MAX_GROUP_FACES}", faces.len()),
        });
    }
    let mut parent: Vec<usize> = (0..faces.len()).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    for i in 0..faces.len() {
        for j in i + 1..faces.len() {
            if verify(&faces[i], &faces[j])?.is_identical {
                let (ri, rj) = (root(&mut parent, i), root(&mut parent, j));
                if ri != rj {
                    parent[ri.max(rj)] = ri.min(rj);
                }
            }
        }
    }
    let mut by_root: Vec<Vec<usize>> = vec![Vec::new(); faces.len()];
    for i in 0..faces.len() {
        let r = root(&mut parent, i);
        by_root[r].push(i);
    }
    let mut result = Grouping::default();
    for members in by_root.into_iter().filter(|m| !m.is_empty()) {
        if members.len() == 1 {
            result.messy_group.push(members[0]);
        } else {
            result.groups.push(members);
        }
    }
    result.groups.sort_by(|a, b| b.len().cmp(&a.len()).then(a[0].cmp(&b[0])));
    Ok(result)
}
