//! The wasm-bindgen API of the npm package (wasm32-unknown-unknown). Values cross as plain JS
//! objects through serde-wasm-bindgen; errors are JS `Error`s whose `name` is the face-core
//! variant (`FileTooSmall`, `UnsupportedFormat`, `NoFace`, ...).

use face_core::{AttributeBytes, DetectOptions, Embedding, Engine, FindSimilarMode, ModelBytes};
use serde::Deserialize;
use wasm_bindgen::prelude::*;

#[wasm_bindgen(typescript_custom_section)]
const TYPES: &'static str = r#"
export interface Models { detector: Uint8Array; landmarks68: Uint8Array; sface: Uint8Array; faceapiRecognizer: Uint8Array; ageGender?: Uint8Array; expression?: Uint8Array; }
export type RecognitionModel = "sface_2021dec" | "faceapi_resnet";
export interface DetectOptions { minScore?: number; maxFaces?: number; landmarks?: boolean; recognition?: RecognitionModel | null; attributes?: boolean; }
export interface Measure { value: number; level: "low" | "medium" | "high"; }
export interface HeadPose { roll: number; yaw: number; pitch: number; }
export interface Emotion { anger: number; contempt: number; disgust: number; fear: number; happiness: number; neutral: number; sadness: number; surprise: number; }
export type Glasses = "noGlasses" | "readingGlasses" | "sunglasses" | "swimmingGoggles";
export interface FacialHair { moustache: number; beard: number; sideburns: number; }
export interface HairColor { color: "unknown" | "white" | "gray" | "blond" | "brown" | "red" | "black" | "other"; confidence: number; }
export interface Hair { bald: number; invisible: boolean; hairColor: HairColor[]; }
export interface Makeup { eyeMakeup: boolean; lipMakeup: boolean; }
export interface Occlusion { foreheadOccluded: boolean; eyeOccluded: boolean; mouthOccluded: boolean; }
export interface Accessory { type: "headWear" | "glasses" | "mask"; confidence: number; }
export interface Attributes { age: number; gender: "male" | "female"; genderConfidence: number; expressions: number[]; smile: number; blur: Measure; exposure: Measure; noise: Measure; headPose?: HeadPose | null; emotion: Emotion; glasses: Glasses; facialHair: FacialHair; hair: Hair; makeup: Makeup; occlusion: Occlusion; accessories: Accessory[]; }
export interface Point { x: number; y: number; }
export interface Rect { left: number; top: number; width: number; height: number; }
export interface Embedding { model: RecognitionModel; vector: number[]; }
export interface FaceLandmarks { pupilLeft: Point; pupilRight: Point; noseTip: Point; mouthLeft: Point; mouthRight: Point; eyebrowLeftOuter: Point; eyebrowLeftInner: Point; eyeLeftOuter: Point; eyeLeftTop: Point; eyeLeftBottom: Point; eyeLeftInner: Point; eyebrowRightInner: Point; eyebrowRightOuter: Point; eyeRightInner: Point; eyeRightTop: Point; eyeRightBottom: Point; eyeRightOuter: Point; noseRootLeft: Point; noseRootRight: Point; noseLeftAlarTop: Point; noseRightAlarTop: Point; noseLeftAlarOutTip: Point; noseRightAlarOutTip: Point; upperLipTop: Point; upperLipBottom: Point; underLipTop: Point; underLipBottom: Point; }
export interface Face { rectangle: Rect; detection: { rect: Rect; score: number; landmarks5: Point[] }; landmarks68?: Point[]; landmarks?: FaceLandmarks; embedding?: Embedding; attributes?: Attributes; }
export interface Verification { isIdentical: boolean; confidence: number; }
export interface Similar { index: number; confidence: number; }
export interface Grouping { groups: number[][]; messyGroup: number[]; }
"#;

fn js_error(e: face_core::Error) -> JsValue {
    let error = js_sys::Error::new(&e.to_string());
    error.set_name(e.kind());
    error.into()
}

fn argument_error(what: &str, e: impl std::fmt::Display) -> JsValue {
    let error = js_sys::Error::new(&format!("{what}: {e}"));
    error.set_name("InvalidArgument");
    error.into()
}

fn to_js<T: serde::Serialize>(value: &T) -> Result<JsValue, JsValue> {
    let serializer = serde_wasm_bindgen::Serializer::json_compatible();
    value.serialize(&serializer).map_err(|e| argument_error("result", e))
}

fn from_js<T: for<'de> Deserialize<'de>>(value: JsValue, what: &str) -> Result<T, JsValue> {
    serde_wasm_bindgen::from_value(value).map_err(|e| argument_error(what, e))
}

fn options(value: JsValue) -> Result<DetectOptions, JsValue> {
    if value.is_undefined() || value.is_null() { Ok(DetectOptions::default()) } else { from_js(value, "options") }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Models {
    #[serde(with = "serde_bytes_vec")]
    detector: Vec<u8>,
    #[serde(with = "serde_bytes_vec")]
    landmarks68: Vec<u8>,
    #[serde(with = "serde_bytes_vec")]
    sface: Vec<u8>,
    #[serde(with = "serde_bytes_vec")]
    faceapi_recognizer: Vec<u8>,
    /// The attribute nets: both or neither.
    #[serde(default, with = "serde_bytes_opt")]
    age_gender: Option<Vec<u8>>,
    #[serde(default, with = "serde_bytes_opt")]
    expression: Option<Vec<u8>>,
}

mod serde_bytes_opt {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        Option::<serde_bytes::ByteBuf>::deserialize(d).map(|b| b.map(|b| b.into_vec()))
    }
}

/// Uint8Array arrives as bytes through serde-wasm-bindgen's byte-buffer support.
mod serde_bytes_vec {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        serde_bytes::ByteBuf::deserialize(d).map(|b| b.into_vec())
    }
}

/// The face engine, with its models loaded.
#[wasm_bindgen]
#[derive(Debug)]
pub struct FaceEngine {
    engine: Engine,
}

#[wasm_bindgen]
impl FaceEngine {
    /// Loads the models (bytes of each ONNX file).
    #[wasm_bindgen(js_name = fromModels)]
    pub fn from_models(
        #[wasm_bindgen(unchecked_param_type = "Models")] models: JsValue,
    ) -> Result<FaceEngine, JsValue> {
        let m: Models = from_js(models, "models")?;
        let attributes = match (&m.age_gender, &m.expression) {
            (Some(age_gender), Some(expression)) => Some(AttributeBytes { age_gender, expression }),
            (None, None) => None,
            _ => return Err(argument_error("models", "ageGender and expression come together: give both or neither")),
        };
        let engine = Engine::new(&ModelBytes {
            detector: &m.detector,
            landmarks68: &m.landmarks68,
            sface: &m.sface,
            faceapi_recognizer: &m.faceapi_recognizer,
            attributes,
        })
        .map_err(js_error)?;
        Ok(FaceEngine { engine })
    }

    /// Faces in an encoded image (JPEG, PNG, GIF, BMP), largest first.
    #[wasm_bindgen(unchecked_return_type = "Face[]")]
    pub fn detect(
        &self,
        image: &[u8],
        #[wasm_bindgen(unchecked_param_type = "DetectOptions | undefined")] options_js: JsValue,
    ) -> Result<JsValue, JsValue> {
        let faces = self.engine.detect(image, &options(options_js)?).map_err(js_error)?;
        to_js(&faces)
    }

    /// Faces in RGBA pixels (an `ImageData`'s `data`, `width`, `height`).
    #[wasm_bindgen(js_name = detectPixels, unchecked_return_type = "Face[]")]
    pub fn detect_pixels(
        &self,
        rgba: &[u8],
        width: u32,
        height: u32,
        #[wasm_bindgen(unchecked_param_type = "DetectOptions | undefined")] options_js: JsValue,
    ) -> Result<JsValue, JsValue> {
        let img = face_core::from_rgba(rgba, width, height, self.engine.limits()).map_err(js_error)?;
        let faces = self.engine.detect_image(&img, &options(options_js)?).map_err(js_error)?;
        to_js(&faces)
    }
}

/// Compares two embeddings of one model: `{ isIdentical, confidence }`.
#[wasm_bindgen(unchecked_return_type = "Verification")]
pub fn verify(
    #[wasm_bindgen(unchecked_param_type = "Embedding")] a: JsValue,
    #[wasm_bindgen(unchecked_param_type = "Embedding")] b: JsValue,
) -> Result<JsValue, JsValue> {
    let (a, b): (Embedding, Embedding) = (from_js(a, "first embedding")?, from_js(b, "second embedding")?);
    to_js(&face_core::verify(&a, &b).map_err(js_error)?)
}

/// Ranks candidates by similarity to the query; mode "matchPerson" or "matchFace".
#[wasm_bindgen(js_name = findSimilar, unchecked_return_type = "Similar[]")]
pub fn find_similar(
    #[wasm_bindgen(unchecked_param_type = "Embedding")] query: JsValue,
    #[wasm_bindgen(unchecked_param_type = "Embedding[]")] candidates: JsValue,
    #[wasm_bindgen(unchecked_param_type = "\"matchPerson\" | \"matchFace\"")] mode: JsValue,
    max: u32,
) -> Result<JsValue, JsValue> {
    let query: Embedding = from_js(query, "query")?;
    let candidates: Vec<Embedding> = from_js(candidates, "candidates")?;
    let mode: FindSimilarMode = from_js(mode, "mode")?;
    to_js(&face_core::find_similar(&query, &candidates, mode, max as usize).map_err(js_error)?)
}

/// Groups faces by identity (at most 1000).
#[wasm_bindgen(unchecked_return_type = "Grouping")]
pub fn group(#[wasm_bindgen(unchecked_param_type = "Embedding[]")] embeddings: JsValue) -> Result<JsValue, JsValue> {
    let embeddings: Vec<Embedding> = from_js(embeddings, "embeddings")?;
    to_js(&face_core::group(&embeddings).map_err(js_error)?)
}

/// The engine's version.
#[wasm_bindgen]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_owned()
}
