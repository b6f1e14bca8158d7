//! Face embeddings: SFace on a 5-point ArcFace alignment, face-api.js's recognizer on its own
//! crop around the 68 points. Both are L2-normalised.

use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::detect::Detection;
use crate::error::{Error, Result};
use crate::geometry::{Point, Similarity};
use crate::landmarks::recognizer_box;
use crate::model::Model;
use crate::tensor::{crop_pad_square, warp_similarity};

/// A concrete face recognition model. Embeddings of different models never compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum RecognitionModel {
    /// SFace 2021dec (OpenCV Zoo), 128-d, LFW 99.40%.
    #[serde(rename = "sface_2021dec")]
    SFace,
    /// face-api.js FaceRecognitionNet (dlib ResNet port), 128-d, LFW 99.38%.
    #[serde(rename = "faceapi_resnet")]
    FaceApi,
}

impl RecognitionModel {
    pub const ALL: [RecognitionModel; 2] = [RecognitionModel::SFace, RecognitionModel::FaceApi];

    /// Stable identifier recorded next to stored embeddings.
    pub fn id(self) -> &'static str {
        match self {
            RecognitionModel::SFace => "sface_2021dec",
            RecognitionModel::FaceApi => "faceapi_resnet",
        }
    }

    pub fn from_id(id: &str) -> Option<RecognitionModel> {
        Self::ALL.into_iter().find(|m| m.id() == id)
    }

    /// Embedding length.
    pub fn dimensions(self) -> usize {
        128
    }

    /// Cosine similarity of L2-normalised embeddings at the model's published decision threshold.
    /// SFace: OpenCV's cosine threshold 0.363. face-api.js: euclidean distance 0.6 between raw
    /// descriptors, whose norm is 1.45 (median over face-api.js's own sample crops, range
    /// 1.34-1.59); on unit vectors that is a distance of 0.6 / 1.45, and d^2 = 2 - 2 cos gives
    /// cos = 1 - (0.6 / 1.45)^2 / 2 = 0.914.
    pub fn threshold(self) -> f32 {
        match self {
            RecognitionModel::SFace => 0.363,
            RecognitionModel::FaceApi => {
                let d = 0.6 / FACEAPI_DESCRIPTOR_NORM;
                1.0 - d * d / 2.0
            }
        }
    }
}

/// An L2-normalised face embedding and the model that made it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Embedding {
    pub model: RecognitionModel,
    pub vector: Vec<f32>,
}

/// The ArcFace 112x112 five-point template SFace was trained on.
const ARCFACE_TEMPLATE: [Point; 5] = [
    Point::new(38.2946, 51.6963),
    Point::new(73.5318, 51.5014),
    Point::new(56.0252, 71.7366),
    Point::new(41.5493, 92.3655),
    Point::new(70.7299, 92.2041),
];
/// Typical norm of a raw face-api.js descriptor (see `RecognitionModel::threshold`).
const FACEAPI_DESCRIPTOR_NORM: f32 = 1.45;
pub(crate) const SFACE_INPUT: usize = 112;
pub(crate) const FACEAPI_INPUT: usize = 150;

/// The 112x112 RGB crop SFace expects, aligned on the detector's five points.
pub(crate) fn sface_input(img: &RgbImage, det: &Detection) -> Result<Vec<f32>> {
    let to_crop = Similarity::estimate(&det.landmarks5, &ARCFACE_TEMPLATE).ok_or_else(|| Error::Model {
        model: "sface_2021dec",
        reason: "the detector's five landmarks coincide; the face cannot be aligned".into(),
    })?;
    Ok(warp_similarity(img, &to_crop, SFACE_INPUT))
}

pub(crate) fn sface(model: &Model, img: &RgbImage, det: &Detection) -> Result<Embedding> {
    let input = sface_input(img, det)?;
    finish(model, RecognitionModel::SFace, &[1, 3, SFACE_INPUT, SFACE_INPUT], input)
}

pub(crate) fn faceapi(model: &Model, img: &RgbImage, landmarks68: &[Point]) -> Result<Embedding> {
    let (input, _) = crop_pad_square(img, recognizer_box(landmarks68), FACEAPI_INPUT);
    finish(model, RecognitionModel::FaceApi, &[1, 3, FACEAPI_INPUT, FACEAPI_INPUT], input)
}

fn finish(model: &Model, which: RecognitionModel, shape: &[usize], input: Vec<f32>) -> Result<Embedding> {
    let out = model.run(shape, input)?;
    let raw = out.into_iter().next().filter(|o| o.len() == which.dimensions()).ok_or_else(|| Error::Model {
        model: model.name(),
        reason: format!("expected an output of {} values", which.dimensions()),
    })?;
    if raw.iter().any(|v| !v.is_finite()) {
        return Err(Error::Model { model: model.name(), reason: "the embedding has non-finite values".into() });
    }
    Ok(Embedding { model: which, vector: l2_normalise(raw) })
}

pub(crate) fn l2_normalise(mut v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 && norm.is_finite() {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}
