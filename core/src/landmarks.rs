//! 68-point landmarks from face-api.js's FaceLandmark68Net, and the 27 Face API landmarks
//! derived from them.

use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::detect::Detection;
use crate::error::{Error, Result};
use crate::geometry::{Point, RectF};
use crate::model::Model;
use crate::tensor::crop_pad_square;

pub(crate) const INPUT: usize = 112;
/// The landmark net sees a square around the detector's box, this many times its longer side.
/// YuNet's box runs from the brows to the chin; face-api.js was trained on looser boxes.
pub const LANDMARK_CROP_SCALE: f32 = 1.2;

/// Runs the 68-point net on the square around `det` and returns points in image pixels,
/// in the iBUG 300-W order (jaw 0-16, brows 17-26, nose 27-35, eyes 36-47, mouth 48-67).
pub(crate) fn landmarks68(model: &Model, img: &RgbImage, det: &Detection) -> Result<Vec<Point>> {
    let crop = det.rect.square(LANDMARK_CROP_SCALE);
    let (input, square) = crop_pad_square(img, crop, INPUT);
    let out = model.run(&[1, 3, INPUT, INPUT], input)?;
    let raw = out
        .first()
        .filter(|o| o.len() == 136)
        .ok_or_else(|| Error::Model { model: model.name(), reason: "expected one output of 136 values".into() })?;
    Ok(raw
        .chunks_exact(2)
        .map(|xy| Point::new(square.left + xy[0] * square.width, square.top + xy[1] * square.height))
        .collect())
}

/// The 27 landmarks of the Face API. "Left" and "right" are as seen in the image.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FaceLandmarks {
    pub pupil_left: Point,
    pub pupil_right: Point,
    pub nose_tip: Point,
    pub mouth_left: Point,
    pub mouth_right: Point,
    pub eyebrow_left_outer: Point,
    pub eyebrow_left_inner: Point,
    pub eye_left_outer: Point,
    pub eye_left_top: Point,
    pub eye_left_bottom: Point,
    pub eye_left_inner: Point,
    pub eyebrow_right_inner: Point,
    pub eyebrow_right_outer: Point,
    pub eye_right_inner: Point,
    pub eye_right_top: Point,
    pub eye_right_bottom: Point,
    pub eye_right_outer: Point,
    pub nose_root_left: Point,
    pub nose_root_right: Point,
    pub nose_left_alar_top: Point,
    pub nose_right_alar_top: Point,
    pub nose_left_alar_out_tip: Point,
    pub nose_right_alar_out_tip: Point,
    pub upper_lip_top: Point,
    pub upper_lip_bottom: Point,
    pub under_lip_top: Point,
    pub under_lip_bottom: Point,
}

impl FaceLandmarks {
    /// The landmark names in the Face API's order, as `to_array` lists the points.
    pub const NAMES: [&'static str; 27] = [
        "pupilLeft",
        "pupilRight",
        "noseTip",
        "mouthLeft",
        "mouthRight",
        "eyebrowLeftOuter",
        "eyebrowLeftInner",
        "eyeLeftOuter",
        "eyeLeftTop",
        "eyeLeftBottom",
        "eyeLeftInner",
        "eyebrowRightInner",
        "eyebrowRightOuter",
        "eyeRightInner",
        "eyeRightTop",
        "eyeRightBottom",
        "eyeRightOuter",
        "noseRootLeft",
        "noseRootRight",
        "noseLeftAlarTop",
        "noseRightAlarTop",
        "noseLeftAlarOutTip",
        "noseRightAlarOutTip",
        "upperLipTop",
        "upperLipBottom",
        "underLipTop",
        "underLipBottom",
    ];

    /// The points in the order of `NAMES`.
    pub fn to_array(&self) -> [Point; 27] {
        [
            self.pupil_left,
            self.pupil_right,
            self.nose_tip,
            self.mouth_left,
            self.mouth_right,
            self.eyebrow_left_outer,
            self.eyebrow_left_inner,
            self.eye_left_outer,
            self.eye_left_top,
            self.eye_left_bottom,
            self.eye_left_inner,
            self.eyebrow_right_inner,
            self.eyebrow_right_outer,
            self.eye_right_inner,
            self.eye_right_top,
            self.eye_right_bottom,
            self.eye_right_outer,
            self.nose_root_left,
            self.nose_root_right,
            self.nose_left_alar_top,
            self.nose_right_alar_top,
            self.nose_left_alar_out_tip,
            self.nose_right_alar_out_tip,
            self.upper_lip_top,
            self.upper_lip_bottom,
            self.under_lip_top,
            self.under_lip_bottom,
        ]
    }

    /// Maps the 68 iBUG points to the Face API's 27. Pupils are the centres of the eye contours;
    /// points the 68 do not carry (nose root, alar tops) are interpolated between neighbours.
    pub fn from_68(p: &[Point]) -> Option<FaceLandmarks> {
        if p.len() != 68 {
            return None;
        }
        let mid = |a: usize, b: usize| p[a].lerp(p[b], 0.5);
        Some(FaceLandmarks {
            pupil_left: Point::mean(&p[36..42]),
            pupil_right: Point::mean(&p[42..48]),
            nose_tip: p[30],
            mouth_left: p[48],
            mouth_right: p[54],
            eyebrow_left_outer: p[17],
            eyebrow_left_inner: p[21],
            eye_left_outer: p[36],
            eye_left_top: mid(37, 38),
            eye_left_bottom: mid(40, 41),
            eye_left_inner: p[39],
            eyebrow_right_inner: p[22],
            eyebrow_right_outer: p[26],
            eye_right_inner: p[42],
            eye_right_top: mid(43, 44),
            eye_right_bottom: mid(46, 47),
            eye_right_outer: p[45],
            nose_root_left: p[27].lerp(p[39], 0.3),
            nose_root_right: p[27].lerp(p[42], 0.3),
            nose_left_alar_top: p[31].lerp(p[29], 0.5),
            nose_right_alar_top: p[35].lerp(p[29], 0.5),
            nose_left_alar_out_tip: p[31],
            nose_right_alar_out_tip: p[35],
            upper_lip_top: p[51],
            upper_lip_bottom: p[62],
            under_lip_top: p[66],
            under_lip_bottom: p[57],
        })
    }
}

/// The box face-api.js crops for its recognizer: the points' bounding box grown by 20%.
pub(crate) fn recognizer_box(points: &[Point]) -> RectF {
    RectF::bounding(points).pad(0.2)
}
