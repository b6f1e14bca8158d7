//! Face attributes: age and gender (face-api.js AgeGenderNet), emotion and smile (face-api.js
//! FaceExpressionNet), and blur, exposure and noise measured on the face region.
//!
//! Glasses, facial hair, hair, makeup, occlusion, accessories and contempt are derived from the
//! landmarks and the colours around them: see `appearance`.
//!
//! Both nets see face-api.js's own crop: the box of the 68 points grown 20%, zero-padded to a
//! centred square, 112x112.
//!
//! Measurements on the face square (`engine::face_square`, the rectangle the service reports),
//! calibrated to Azure's recorded answer for the official SDK's photo (blur 0.0, exposure 0.72,
//! noise 0.03) and checked by `cargo xtask eval` (the values there, and that each rises along its
//! distortion ladder):
//! - exposure: the face's mean luminance `m` (0..1) read as `m^0.75`, so that a well-lit portrait
//!   (m about 0.64) reads as the service's 0.72; under below 0.25, good below 0.75, over above.
//! - blur: the variance `v` of the Laplacian of the face resampled to 64x64 (a fixed scale, so a
//!   small sharp face and a large one read alike), mapped to `ln(600 / v) / ln(60)` clamped to
//!   0..1: a studio portrait (v about 600) is 0, a face under a Gaussian of one pixel per 90 of
//!   face about 0.5, a smooth face (v under 10) 1; Low below 0.25, Medium below 0.75, High above.
//! - noise: Immerkaer's estimate `s` of the standard deviation of additive noise (a 3x3 operator
//!   that cancels smooth image structure) at the image's own resolution, over the smoother half of
//!   the face (the half with the lower Sobel gradient, so edges and texture do not count as noise;
//!   at most 256x256 positions, evenly spaced), mapped to `1 - exp(-max(0, s - 2) / 8)`: JPEG
//!   grain of a clean photo (s about 2) is 0, uniform noise of +-6 about 0.16, +-12 about 0.45,
//!   +-24 about 0.77; Low below 0.3, Medium below 0.7, High above.

use image::{GrayImage, RgbImage, imageops};
use serde::{Deserialize, Serialize};

use crate::appearance::{
    Accessory, Appearance, Emotion, FacialHair, Glasses, Hair, Makeup, Occlusion, appearance, emotion,
    weigh_facial_hair,
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
    /// The face's mean luminance read as the service does (see above), 0..1; level Low = under-,
    /// Medium = good, High = over-exposed.
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
    let p_male = gender[0];
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
        noise: level(noise(img, rect), 0.3, 0.7),
        head_pose: head_pose(landmarks68),
        emotion: emotion(&expressions, look.cues.mouth_asymmetry),
        glasses: look.glasses,
        facial_hair: weigh_facial_hair(look.facial_hair, p_male, age),
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

/// The face square in grey, resampled to 64x64 (the crop is a view: a large face is filtered down
/// without a copy at its own size).
fn grey_face(img: &RgbImage, rect: &RectF) -> GrayImage {
    let (x, y, w, h) = pixels(img, rect);
    let crop = imageops::crop_imm(img, x, y, w, h);
    imageops::grayscale(&imageops::resize(&*crop, 64, 64, imageops::FilterType::Triangle))
}

/// The part of `rect` inside the image, in whole pixels, at least one (the whole image for a
/// rectangle that is not finite).
fn pixels(img: &RgbImage, rect: &RectF) -> (u32, u32, u32, u32) {
    let (w, h) = (img.width() as f32, img.height() as f32);
    let (right, bottom) = (rect.left + rect.width, rect.top + rect.height);
    if ![rect.left, rect.top, right, bottom].iter().all(|v| v.is_finite()) {
        return (0, 0, img.width().max(1), img.height().max(1));
    }
    let x1 = rect.left.clamp(0.0, w - 1.0).floor();
    let y1 = rect.top.clamp(0.0, h - 1.0).floor();
    let x2 = right.clamp(x1 + 1.0, w).ceil();
    let y2 = bottom.clamp(y1 + 1.0, h).ceil();
    (x1 as u32, y1 as u32, (x2 - x1) as u32, (y2 - y1) as u32)
}

fn exposure(face: &GrayImage) -> f32 {
    let sum: u64 = face.as_raw().iter().map(|&v| v as u64).sum();
    (sum as f32 / face.as_raw().len().max(1) as f32 / 255.0).powf(0.75)
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
    ((600.0 / var.max(1e-3)).ln() / 60f32.ln()).clamp(0.0, 1.0)
}

fn noise(img: &RgbImage, rect: &RectF) -> f32 {
    // Immerkaer (1996): sigma = sqrt(pi/2) / 6 * mean |I * N|, N = [1 -2 1; -2 4 -2; 1 -2 1], here
    // over the positions whose Sobel gradient is in the lower half.
    let (x0, y0, w, h) = pixels(img, rect);
    if w < 3 || h < 3 || img.width() < 3 || img.height() < 3 {
        return 0.0;
    }
    let luma = |x: u32, y: u32| {
        let [r, g, b] = img.get_pixel(x, y).0;
        0.2126 * r as f32 + 0.7152 * g as f32 + 0.0722 * b as f32
    };
    let step = (w.max(h) / 256).max(1);
    let (x_end, y_end) = ((x0 + w - 1).min(img.width() - 1), (y0 + h - 1).min(img.height() - 1));
    let mut seen = Vec::new();
    let mut y = (y0 + 1).max(1);
    while y < y_end {
        let mut x = (x0 + 1).max(1);
        while x < x_end {
            let q = |dx: i32, dy: i32| luma((x as i32 + dx) as u32, (y as i32 + dy) as u32);
            let (nw, n, ne, w_, c, e, sw, s, se) =
                (q(-1, -1), q(0, -1), q(1, -1), q(-1, 0), q(0, 0), q(1, 0), q(-1, 1), q(0, 1), q(1, 1));
            let gx = (ne + 2.0 * e + se) - (nw + 2.0 * w_ + sw);
            let gy = (sw + 2.0 * s + se) - (nw + 2.0 * n + ne);
            let response = nw - 2.0 * n + ne - 2.0 * w_ + 4.0 * c - 2.0 * e + sw - 2.0 * s + se;
            seen.push((gx.abs() + gy.abs(), response.abs()));
            x += step;
        }
        y += step;
    }
    if seen.is_empty() {
        return 0.0;
    }
    seen.sort_by(|a, b| a.0.total_cmp(&b.0));
    let smooth = &seen[..seen.len().div_ceil(2)];
    let mean = smooth.iter().map(|s| s.1).sum::<f32>() / smooth.len() as f32;
    let sigma = (std::f32::consts::PI / 2.0).sqrt() * mean / 6.0;
    1.0 - (-(sigma - 2.0).max(0.0) / 8.0).exp()
}
