//! Face attributes: age and gender (face-api.js AgeGenderNet), emotion and smile (face-api.js
//! FaceExpressionNet), and blur, exposure and noise measured on the face region.
//!
//! Glasses, facial hair, hair, makeup, occlusion, accessories and contempt are derived from the
//! landmarks and the colours around them: see `appearance`.
//!
//! Both nets see face-api.js's own crop: the box of the 68 points grown 20%, zero-padded to a
//! centred square, 112x112.
//!
//! Measurements on the face region (the detector's box, greyscale):
//! - exposure: mean luminance / 255; under below 0.25, good below 0.75, over above.
//! - blur: the variance of the Laplacian of the face resampled to 128x128, mapped to
//!   `value = 1 / (1 + var / 100)` (sharp faces have variances in the hundreds to thousands, so
//!   sharp is near 0 and a smooth face near 1); Low below 0.25, Medium below 0.75, High above.
//! - noise: Immerkaer's estimate of the standard deviation of additive noise (a 3x3 operator that
//!   cancels smooth image structure), mapped to `value = sigma / (sigma + 10)`; Low below 0.3,
//!   Medium below 0.7, High above.

use image::{GrayImage, RgbImage, imageops};
use serde::{Deserialize, Serialize};

use crate::appearance::{
    Accessory, Appearance, Emotion, FacialHair, Glasses, Hair, Makeup, Occlusion, appearance, emotion,
};
use crate::error::{Error, Result};
use crate::geometry::{Point, RectF};
use crate::headpose::{HeadPose, head_pose};
use crate::landmarks::recognizer_box;
use crate::model::Model;
use crate::tensor::crop_pad_square;

pub(crate) const INPUT: usize = 112;

/// The face-api.js expressions, in the net's output order.
pub const EXPRESSIONS: [&str; 7] = ["neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Gender {
    Male,
    Female,
}

/// A measurement and the level it falls in.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Measure {
    pub value: f32,
    pub level: Level,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Level {
    Low,
    Medium,
    High,
}

/// Per-face attributes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attributes {
    pub age: f32,
    pub gender: Gender,
    /// Probability of the gender reported.
    pub gender_confidence: f32,
    /// Probabilities in `EXPRESSIONS` order; they sum to 1.
    pub expressions: [f32; 7],
    /// The probability of a happy expression.
    pub smile: f32,
    pub blur: Measure,
    /// Mean luminance of the face, 0..1; level Low = under-, Medium = good, High = over-exposed.
    pub exposure: Measure,
    pub noise: Measure,
    /// Roll, yaw and pitch from the 68 landmarks (`None` only for a degenerate fit).
    pub head_pose: Option<HeadPose>,
    /// The Face API's eight emotions: the expression net's seven and contempt (see `appearance`).
    pub emotion: Emotion,
    pub glasses: Glasses,
    pub facial_hair: FacialHair,
    pub hair: Hair,
    pub makeup: Makeup,
    pub occlusion: Occlusion,
    pub accessories: Vec<Accessory>,
}

/// The two attribute nets.
#[derive(Debug, Clone)]
pub(crate) struct AttributeModels {
    pub age_gender: Model,
    pub expression: Model,
}

pub(crate) fn attributes(
    models: &AttributeModels,
    img: &RgbImage,
    rect: &RectF,
    landmarks68: &[Point],
) -> Result<Attributes> {
    let (input, _) = crop_pad_square(img, recognizer_box(landmarks68), INPUT);
    let out = models.age_gender.run(&[1, 3, INPUT, INPUT], input.clone())?;
    let (age, gender) = match out.as_slice() {
        [age, gender] if age.len() == 1 && gender.len() == 2 => (age[0], [gender[0], gender[1]]),
        _ => {
            return Err(Error::Model {
                model: models.age_gender.name(),
                reason: "expected outputs age [1] and gender [2]".into(),
            });
        }
    };
    let out = models.expression.run(&[1, 3, INPUT, INPUT], input)?;
    let expressions: [f32; 7] = out.first().and_then(|e| <[f32; 7]>::try_from(e.as_slice()).ok()).ok_or_else(|| {
        Error::Model { model: models.expression.name(), reason: "expected 7 expression probabilities".into() }
    })?;
    if !age.is_finite() || gender.iter().chain(&expressions).any(|v| !v.is_finite()) {
        return Err(Error::Model { model: models.age_gender.name(), reason: "non-finite attribute output".into() });
    }
    let (gender, gender_confidence) =
        if gender[0] >= gender[1] { (Gender::Male, gender[0]) } else { (Gender::Female, gender[1]) };
    let face = grey_face(img, rect);
    let look = appearance(img, landmarks68).unwrap_or_else(Appearance::unseen);
    Ok(Attributes {
        age: age.max(0.0),
        gender,
        gender_confidence,
        expressions,
        smile: expressions[1],
        blur: level(blur(&face), 0.25, 0.75),
        exposure: level(exposure(&face), 0.25, 0.75),
        noise: level(noise(&face), 0.3, 0.7),
        head_pose: head_pose(landmarks68),
        emotion: emotion(&expressions, look.cues.mouth_asymmetry),
        glasses: look.glasses,
        facial_hair: look.facial_hair,
        hair: look.hair,
        makeup: look.makeup,
        occlusion: look.occlusion,
        accessories: look.accessories,
    })
}

fn level(value: f32, low_below: f32, medium_below: f32) -> Measure {
    let value = value.clamp(0.0, 1.0);
    let level = if value < low_below {
        Level::Low
    } else if value < medium_below {
        Level::Medium
    } else {
        Level::High
    };
    Measure { value, level }
}

/// The face region in grey, resampled to 128x128.
fn grey_face(img: &RgbImage, rect: &RectF) -> GrayImage {
    let (w, h) = (img.width() as f32, img.height() as f32);
    let x1 = rect.left.clamp(0.0, w - 1.0).floor();
    let y1 = rect.top.clamp(0.0, h - 1.0).floor();
    let x2 = (rect.left + rect.width).clamp(x1 + 1.0, w).ceil();
    let y2 = (rect.top + rect.height).clamp(y1 + 1.0, h).ceil();
    let crop = imageops::crop_imm(img, x1 as u32, y1 as u32, (x2 - x1) as u32, (y2 - y1) as u32).to_image();
    let grey = imageops::grayscale(&crop);
    imageops::resize(&grey, 128, 128, imageops::FilterType::Triangle)
}

fn exposure(face: &GrayImage) -> f32 {
    let sum: u64 = face.as_raw().iter().map(|&v| v as u64).sum();
    sum as f32 / face.as_raw().len().max(1) as f32 / 255.0
}

fn blur(face: &GrayImage) -> f32 {
    let (w, h) = face.dimensions();
    let p = |x: u32, y: u32| face.get_pixel(x, y)[0] as f32;
    let mut values = Vec::with_capacity(((w - 2) * (h - 2)) as usize);
    for y in 1..h - 1 {
        for x in 1..w - 1 {
            values.push(p(x - 1, y) + p(x + 1, y) + p(x, y - 1) + p(x, y + 1) - 4.0 * p(x, y));
        }
    }
    let n = values.len().max(1) as f32;
    let mean = values.iter().sum::<f32>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / n;
    1.0 / (1.0 + var / 100.0)
}

fn noise(face: &GrayImage) -> f32 {
    // Immerkaer (1996): sigma = sqrt(pi/2) / (6 (W-2)(H-2)) * sum |I * N|, N = [1 -2 1; -2 4 -2; 1 -2 1].
    let (w, h) = face.dimensions();
    let p = |x: u32, y: u32| face.get_pixel(x, y)[0] as f32;
    let mut sum = 0.0f32;
    for y in 1..h - 1 {
        for x in 1..w - 1 {
            let v = p(x - 1, y - 1) - 2.0 * p(x, y - 1) + p(x + 1, y - 1) - 2.0 * p(x - 1, y) + 4.0 * p(x, y)
                - 2.0 * p(x + 1, y)
                + p(x - 1, y + 1)
                - 2.0 * p(x, y + 1)
                + p(x + 1, y + 1);
            sum += v.abs();
        }
    }
    let sigma = (std::f32::consts::PI / 2.0).sqrt() * sum / (6.0 * ((w - 2) * (h - 2)) as f32);
    sigma / (sigma + 10.0)
}
