//! A detected face as detect answers it: rectangle, the 27 landmarks and the attribute groups,
//! spelt and ordered as the service sends them (its recorded answers: `NoGlasses`, `low`,
//! `goodExposure`; the spec's enums differ in case, which the official clients read either way).

use serde::Serialize;
use utoipa::ToSchema;

/// One face of a detect answer.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DetectedFace {
    /// With `returnFaceId=true` (the default): the id verify, identify, findsimilars and group
    /// take, kept for `faceIdTimeToLive` seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub face_id: Option<String>,
    /// With `returnRecognitionModel=true`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recognition_model: Option<String>,
    pub face_rectangle: FaceRectangle,
    /// With `returnFaceLandmarks=true`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub face_landmarks: Option<FaceLandmarks>,
    /// With `returnFaceAttributes`: the groups asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub face_attributes: Option<FaceAttributes>,
}

/// A face's box in pixels of the photo.
#[derive(Debug, Serialize, ToSchema)]
pub struct FaceRectangle {
    pub top: u32,
    pub left: u32,
    pub width: u32,
    pub height: u32,
}

/// A point in pixels of the photo.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub struct Coordinate {
    pub x: f64,
    pub y: f64,
}

/// `FaceLandmarks` with these fields, in this order, and its constructor from the points in
/// that order.
macro_rules! landmarks {
    ($($field:ident),* $(,)?) => {
        /// The 27 landmarks, in the service's order (face-core's `FaceLandmarks::NAMES`).
        #[derive(Debug, Serialize, ToSchema)]
        #[serde(rename_all = "camelCase")]
        pub struct FaceLandmarks {
            $(pub $field: Coordinate,)*
        }

        impl FaceLandmarks {
            /// The landmarks from their 27 points in the order of `face_core::FaceLandmarks::NAMES`.
            pub fn from_points(points: [Coordinate; 27]) -> FaceLandmarks {
                let [$($field),*] = points;
                FaceLandmarks { $($field),* }
            }
        }
    };
}

landmarks!(
    pupil_left,
    pupil_right,
    nose_tip,
    mouth_left,
    mouth_right,
    eyebrow_left_outer,
    eyebrow_left_inner,
    eye_left_outer,
    eye_left_top,
    eye_left_bottom,
    eye_left_inner,
    eyebrow_right_inner,
    eyebrow_right_outer,
    eye_right_inner,
    eye_right_top,
    eye_right_bottom,
    eye_right_outer,
    nose_root_left,
    nose_root_right,
    nose_left_alar_top,
    nose_right_alar_top,
    nose_left_alar_out_tip,
    nose_right_alar_out_tip,
    upper_lip_top,
    upper_lip_bottom,
    under_lip_top,
    under_lip_bottom,
);

/// The attribute groups asked for, in the order the service writes them (whatever the order
/// asked in); a group not asked for is absent.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FaceAttributes {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smile: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub head_pose: Option<HeadPose>,
    /// male or female.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gender: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub age: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub facial_hair: Option<FacialHair>,
    /// NoGlasses, ReadingGlasses, Sunglasses or SwimmingGoggles.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub glasses: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub emotion: Option<Emotion>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blur: Option<Blur>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exposure: Option<Exposure>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub noise: Option<Noise>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub makeup: Option<Makeup>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accessories: Option<Vec<Accessory>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub occlusion: Option<Occlusion>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hair: Option<Hair>,
}

/// Degrees.
#[derive(Debug, Serialize, ToSchema)]
pub struct HeadPose {
    pub pitch: f64,
    pub roll: f64,
    pub yaw: f64,
}

/// Confidences 0 to 1.
#[derive(Debug, Serialize, ToSchema)]
pub struct FacialHair {
    pub moustache: f64,
    pub beard: f64,
    pub sideburns: f64,
}

/// Confidences 0 to 1 that sum to 1.
#[derive(Debug, Serialize, ToSchema)]
pub struct Emotion {
    pub anger: f64,
    pub contempt: f64,
    pub disgust: f64,
    pub fear: f64,
    pub happiness: f64,
    pub neutral: f64,
    pub sadness: f64,
    pub surprise: f64,
}

/// low, medium or high, and a value from 0 to 1.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Blur {
    pub blur_level: &'static str,
    pub value: f64,
}

/// underExposure, goodExposure or overExposure, and a value from 0 to 1.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Exposure {
    pub exposure_level: &'static str,
    pub value: f64,
}

/// low, medium or high, and a value from 0 to 1.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Noise {
    pub noise_level: &'static str,
    pub value: f64,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Makeup {
    pub eye_makeup: bool,
    pub lip_makeup: bool,
}

/// headWear, glasses or mask, with a confidence.
#[derive(Debug, Serialize, ToSchema)]
pub struct Accessory {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub confidence: f64,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Occlusion {
    pub forehead_occluded: bool,
    pub eye_occluded: bool,
    pub mouth_occluded: bool,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Hair {
    pub bald: f64,
    pub invisible: bool,
    pub hair_color: Vec<HairColor>,
}

/// unknown, white, gray, blond, brown, red, black or other, with a confidence.
#[derive(Debug, Serialize, ToSchema)]
pub struct HairColor {
    pub color: &'static str,
    pub confidence: f64,
}
