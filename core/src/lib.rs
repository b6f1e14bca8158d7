//! face-core: the face engine. Bytes in, values out.
//!
//! Decode (JPEG, PNG, GIF, BMP with EXIF orientation) -> detect (YuNet) -> landmarks (5 from the
//! detector, 68 from face-api.js's net, the Face API's 27 from those) -> align and embed (SFace,
//! face-api.js's recognizer) -> compare (verify, find-similar, group).
//!
//! The crate does no I/O, reads no clock, starts no thread and prints nothing: models arrive as
//! bytes and results leave as values, so it runs the same natively and in WebAssembly. One
//! exception natively: jpeg-decoder (the scaled decode of large JPEGs) decodes components on
//! worker threads it starts and joins within the call; on wasm32 it starts none.
//!
//! ```no_run
//! # fn main() -> Result<(), face_core::Error> {
//! # let (detector, landmarks68, sface, faceapi_recognizer, photo) = (vec![], vec![], vec![], vec![], vec![]);
//! let engine = face_core::Engine::new(&face_core::ModelBytes {
//!     detector: &detector,
//!     landmarks68: &landmarks68,
//!     sface: &sface,
//!     faceapi_recognizer: &faceapi_recognizer,
//!     attributes: None,
//! })?;
//! let options = face_core::DetectOptions {
//!     recognition: Some(face_core::RecognitionModel::SFace),
//!     ..Default::default()
//! };
//! let faces = engine.detect(&photo, &options)?;
//! if let [a, b, ..] = faces.as_slice() {
//!     let v = face_core::verify(a.embedding.as_ref().unwrap(), b.embedding.as_ref().unwrap())?;
//!     assert!((0.0..=1.0).contains(&v.confidence));
//! }
//! # Ok(()) }
//! ```

mod appearance;
mod attributes;
mod compare;
mod decode;
mod dequant;
mod detect;
mod embed;
mod engine;
mod error;
mod geometry;
mod headpose;
mod jpeg;
mod landmarks;
mod model;
mod rewrite;
mod tensor;
mod tract_ops;

/// Decoded pixels, as the engine takes them.
pub use image::RgbImage;

pub use crate::rewrite::onnxruntime_bytes;
pub use crate::{
    appearance::{
        Accessory, AccessoryType, Appearance, Cues, Emotion, FacialHair, Glasses, Hair, HairColor, HairColorType,
        Makeup, Occlusion, appearance, emotion,
    },
    attributes::{Attributes, EXPRESSIONS, Gender, Level, Measure},
    compare::{
        CONFIDENCE_SLOPE, FindSimilarMode, Grouping, IDENTICAL_CONFIDENCE, MAX_GROUP_FACES, Similar, Verification,
        confidence_from_cosine, cosine, find_similar, group, verify,
    },
    decode::{
        DecodeLimits, Decoded, SCALES as DECODE_SCALES, decode, decode_at_least, decode_choosing, decode_scaled,
        from_rgba,
    },
    detect::{DEFAULT_MIN_SCORE, Detection, input_shape_for_image as detector_input_shape},
    embed::{Embedding, RecognitionModel},
    engine::{
        AttributeBytes, DETECT_SIDE, DetectOptions, Engine, FACE_DETAIL, Face, MAX_FACES, ModelBytes, ModelSet,
        Rectangle, Step, face_square,
    },
    error::{Error, Result},
    geometry::{Point, RectF, Similarity},
    headpose::{HeadPose, head_pose},
    landmarks::{FaceLandmarks, LANDMARK_CROP_SCALE},
    model::{DETECTOR_SHAPES, MODELS, Model, ModelInfo, Runner, ShapedOutput, TractPlan, f32_from_bytes, f32_to_bytes},
};
