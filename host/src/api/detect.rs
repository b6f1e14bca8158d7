//! Detect: the faces of a photo, with faceIds, landmarks and attributes, in the Face API's JSON.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use face_core::FaceLandmarks;
use serde_json::{Map, Value, json};

use super::error::{ApiError, ApiResult};
use super::input::{self, Query, detection_model, recognition_model};
use super::reply::ok_json;
use super::state::Shared;
use super::timing;
use crate::engine::guest;
use crate::faces::{CachedFace, FACE_ID_TTL, concrete_model, guest_model, ttl};

/// The attribute names `returnFaceAttributes` may list.
pub const ATTRIBUTES: [&str; 14] = [
    "age",
    "gender",
    "headPose",
    "smile",
    "facialHair",
    "glasses",
    "emotion",
    "hair",
    "makeup",
    "occlusion",
    "accessories",
    "blur",
    "exposure",
    "noise",
];

fn parse_attributes(q: &Query) -> ApiResult<Vec<&'static str>> {
    let Some(raw) = q.get("returnFaceAttributes").filter(|s| !s.trim().is_empty()) else { return Ok(vec![]) };
    let mut wanted = Vec::new();
    for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let name = ATTRIBUTES
            .into_iter()
            .find(|a| a.eq_ignore_ascii_case(part))
            .ok_or_else(|| ApiError::bad_argument(format!("Invalid argument returnFaceAttributes: {part:?}.")))?;
        if !wanted.contains(&name) {
            wanted.push(name);
        }
    }
    Ok(wanted)
}

fn point(p: &guest::Point) -> Value {
    json!({ "x": round1(p.x), "y": round1(p.y) })
}

fn round1(v: f32) -> f64 {
    (f64::from(v) * 10.0).round() / 10.0
}

fn rectangle(r: &guest::Rectangle) -> Value {
    json!({ "top": r.top, "left": r.left, "width": r.width, "height": r.height })
}

/// One face of a detect answer, as the Face API writes it.
pub fn face_json(
    f: &guest::Face,
    face_id: Option<uuid::Uuid>,
    recognition_model: Option<&str>,
    landmarks: bool,
    attributes: &[&str],
) -> ApiResult<Value> {
    let mut o = Map::new();
    if let Some(id) = face_id {
        o.insert("faceId".into(), json!(id.to_string()));
    }
    if let Some(model) = recognition_model {
        o.insert("recognitionModel".into(), json!(model));
    }
    o.insert("faceRectangle".into(), rectangle(&f.rectangle));
    if landmarks {
        let mut lm = Map::new();
        for (name, p) in FaceLandmarks::NAMES.iter().zip(&f.landmarks27) {
            lm.insert((*name).into(), point(p));
        }
        o.insert("faceLandmarks".into(), Value::Object(lm));
    }
    if !attributes.is_empty() {
        let a = f.attributes.as_ref().ok_or_else(|| ApiError::internal("the engine returned no attributes"))?;
        o.insert("faceAttributes".into(), face_attributes(a, attributes));
    }
    Ok(Value::Object(o))
}

/// POST /detect: faces, largest first, with faceIds kept for faceIdTimeToLive seconds.
pub async fn detect(State(state): State<Shared>, q: Query, headers: HeaderMap, body: Body) -> ApiResult<Response> {
    let return_face_id = q.bool("returnFaceId", true)?;
    let return_landmarks = q.bool("returnFaceLandmarks", false)?;
    let return_model = q.bool("returnRecognitionModel", false)?;
    let attributes = parse_attributes(&q)?;
    let recognition = recognition_model(q.get("recognitionModel"))?;
    let detection = detection_model(&q)?;
    let (default_ttl, min_ttl, max_ttl) = FACE_ID_TTL;
    let ttl_seconds = q.int("faceIdTimeToLive", default_ttl as i64, min_ttl as i64, max_ttl as i64)? as u64;
    if detection == "detection_02" {
        if !attributes.is_empty() {
            return Err(ApiError::bad_argument("'returnFaceAttributes' is not supported by detection_02."));
        }
        if return_landmarks {
            return Err(ApiError::bad_argument("'returnLandmarks' is not supported by detection_02."));
        }
    }
    let started = Instant::now();
    let image = input::image(&state, &headers, body).await?;
    let image_time = started.elapsed();
    let model = concrete_model(recognition).unwrap_or(face_core::RecognitionModel::SFace);
    let options = guest::DetectOptions {
        min_score: input::min_score(detection),
        max_faces: face_core::MAX_FACES as u32,
        landmarks: return_landmarks,
        recognition: return_face_id.then(|| guest_model(model)),
        attributes: !attributes.is_empty(),
    };
    let (image, admission) = state.admit_image(image)?;
    let (faces, times) = state.engine.detect_timed(image, options).await?;
    drop(admission);
    let written = Instant::now();
    let expires = ttl(ttl_seconds);
    let mut faces = faces;
    let mut kept = Vec::new();
    if return_face_id {
        for f in &mut faces {
            let Some(e) = f.embedding.take() else {
                return Err(ApiError::internal("the engine returned a face without its embedding"));
            };
            kept.push(CachedFace { recognition, model, embedding: e.vector.into(), expires });
        }
    }
    let mut ids = state.face_ids.insert_all(kept).await.map_err(ApiError::store)?.into_iter();
    let face_id_time = written.elapsed();
    let json_start = Instant::now();
    let mut out = Vec::with_capacity(faces.len());
    for f in &faces {
        let id = if return_face_id { ids.next() } else { None };
        out.push(face_json(f, id, return_model.then_some(recognition), return_landmarks, &attributes)?);
    }
    let mut response = ok_json(Value::Array(out))?;
    let guest_steps = times.steps.iter().fold(0u64, |sum, (_, us)| sum.saturating_add(*us));
    let mut entries = vec![timing::entry("image", image_time), timing::entry("queue", times.queue)];
    entries.extend(times.steps.iter().map(|(name, us)| timing::entry(name, Duration::from_micros(*us))));
    entries.push(timing::entry("sandbox", times.call.saturating_sub(Duration::from_micros(guest_steps))));
    entries.push(timing::entry("faceid", face_id_time));
    entries.push(timing::entry("json", json_start.elapsed()));
    timing::append(&mut response, &entries);
    Ok(response)
}

fn level(l: guest::Level, names: [&str; 3]) -> &str {
    match l {
        guest::Level::Low => names[0],
        guest::Level::Medium => names[1],
        guest::Level::High => names[2],
    }
}

fn hair_color(c: guest::HairColorType) -> &'static str {
    use guest::HairColorType as H;
    match c {
        H::Unknown => "unknown",
        H::White => "white",
        H::Gray => "gray",
        H::Blond => "blond",
        H::Brown => "brown",
        H::Red => "red",
        H::Black => "black",
        H::Other => "other",
    }
}

/// The attribute groups in the order the service writes them (whatever the order asked in).
const SERVICE_ORDER: [&str; 14] = [
    "smile",
    "headPose",
    "gender",
    "age",
    "facialHair",
    "glasses",
    "emotion",
    "blur",
    "exposure",
    "noise",
    "makeup",
    "accessories",
    "occlusion",
    "hair",
];

/// The `faceAttributes` object with the attributes asked for, spelt and ordered as the service
/// sends them (its recorded answers: `NoGlasses`, `low`, `goodExposure`; the spec's own enums
/// differ in case, which the official clients read either way).
fn face_attributes(a: &guest::Attributes, wanted: &[&str]) -> Value {
    let round = |v: f32| (f64::from(v) * 1000.0).round() / 1000.0;
    let mut o = Map::new();
    for name in SERVICE_ORDER.iter().filter(|n| wanted.contains(n)) {
        let value = match *name {
            "age" => json!((f64::from(a.age) * 10.0).round() / 10.0),
            "gender" => json!(if matches!(a.gender, guest::Gender::Male) { "male" } else { "female" }),
            "smile" => json!(round(a.smile)),
            // The spec's headPose is always an object; a degenerate landmark fit (no pose) reads
            // as facing the camera rather than as a null the clients do not expect.
            "headPose" => {
                let p = a.head_pose.unwrap_or(guest::HeadPose { roll: 0.0, yaw: 0.0, pitch: 0.0 });
                json!({ "pitch": round1(p.pitch), "roll": round1(p.roll), "yaw": round1(p.yaw) })
            }
            "blur" => {
                json!({ "blurLevel": level(a.blur.level, ["low", "medium", "high"]), "value": round(a.blur.value) })
            }
            "exposure" => json!({
                "exposureLevel": level(a.exposure.level, ["underExposure", "goodExposure", "overExposure"]),
                "value": round(a.exposure.value),
            }),
            "noise" => {
                json!({ "noiseLevel": level(a.noise.level, ["low", "medium", "high"]), "value": round(a.noise.value) })
            }
            "emotion" => {
                let e = &a.emotion;
                json!({
                    "anger": round(e.anger),
                    "contempt": round(e.contempt),
                    "disgust": round(e.disgust),
                    "fear": round(e.fear),
                    "happiness": round(e.happiness),
                    "neutral": round(e.neutral),
                    "sadness": round(e.sadness),
                    "surprise": round(e.surprise),
                })
            }
            "glasses" => json!(match a.glasses {
                guest::Glasses::NoGlasses => "NoGlasses",
                guest::Glasses::ReadingGlasses => "ReadingGlasses",
                guest::Glasses::Sunglasses => "Sunglasses",
                guest::Glasses::SwimmingGoggles => "SwimmingGoggles",
            }),
            "facialHair" => json!({
                "moustache": round(a.facial_hair.moustache),
                "beard": round(a.facial_hair.beard),
                "sideburns": round(a.facial_hair.sideburns),
            }),
            "hair" => json!({
                "bald": round(a.hair.bald),
                "invisible": a.hair.invisible,
                "hairColor": a.hair.hair_color.iter().map(|c| json!({
                    "color": hair_color(c.color),
                    "confidence": round(c.confidence),
                })).collect::<Vec<_>>(),
            }),
            "makeup" => json!({ "eyeMakeup": a.makeup.eye_makeup, "lipMakeup": a.makeup.lip_makeup }),
            "occlusion" => json!({
                "foreheadOccluded": a.occlusion.forehead_occluded,
                "eyeOccluded": a.occlusion.eye_occluded,
                "mouthOccluded": a.occlusion.mouth_occluded,
            }),
            "accessories" => json!(
                a.accessories
                    .iter()
                    .map(|x| json!({
                        "type": match x.kind {
                            guest::AccessoryType::Headwear => "headWear",
                            guest::AccessoryType::Glasses => "glasses",
                            guest::AccessoryType::Mask => "mask",
                        },
                        "confidence": round(x.confidence),
                    }))
                    .collect::<Vec<_>>()
            ),
            _ => continue,
        };
        o.insert((*name).into(), value);
    }
    Value::Object(o)
}
