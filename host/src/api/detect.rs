//! Detect: the faces of a photo, with faceIds, landmarks and attributes, in the Face API's JSON.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;

use super::error::{ApiError, ApiResult};
use super::input::{self, Query};
use super::reply::ok_json;
use super::state::Shared;
use super::timing;
use super::wire::{
    Accessory, Blur, Coordinate, DetectQuery, DetectedFace, Emotion, Exposure, FaceAttributes, FaceLandmarks,
    FaceRectangle, FacialHair, Hair, HairColor, HeadPose, Makeup, Noise, Occlusion,
};
use crate::engine::guest;
use crate::faces::{CachedFace, concrete_model, guest_model, ttl};

fn point(p: &guest::Point) -> Coordinate {
    Coordinate { x: round1(p.x), y: round1(p.y) }
}

fn round1(v: f32) -> f64 {
    (f64::from(v) * 10.0).round() / 10.0
}

fn rectangle(r: &guest::Rectangle) -> FaceRectangle {
    FaceRectangle { top: r.top, left: r.left, width: r.width, height: r.height }
}

/// One face of a detect answer, as the Face API writes it.
pub fn detected_face(
    f: &guest::Face,
    face_id: Option<uuid::Uuid>,
    recognition_model: Option<&str>,
    landmarks: bool,
    attributes: &[&str],
) -> ApiResult<DetectedFace> {
    let face_landmarks = if landmarks {
        let points: Vec<Coordinate> = f.landmarks27.iter().map(point).collect();
        let points: [Coordinate; 27] = points
            .try_into()
            .map_err(|_| ApiError::internal("the engine returned landmarks without their 27 points"))?;
        Some(FaceLandmarks::from_points(points))
    } else {
        None
    };
    let face_attributes = if attributes.is_empty() {
        None
    } else {
        let a = f.attributes.as_ref().ok_or_else(|| ApiError::internal("the engine returned no attributes"))?;
        Some(face_attributes(a, attributes))
    };
    Ok(DetectedFace {
        face_id: face_id.map(|id| id.to_string()),
        recognition_model: recognition_model.map(str::to_owned),
        face_rectangle: rectangle(&f.rectangle),
        face_landmarks,
        face_attributes,
    })
}

/// POST /detect: faces, largest first, with faceIds kept for faceIdTimeToLive seconds.
pub async fn detect(State(state): State<Shared>, q: Query, headers: HeaderMap, body: Body) -> ApiResult<Response> {
    let DetectQuery {
        return_face_id,
        return_face_landmarks: return_landmarks,
        return_face_attributes: attributes,
        recognition_model: recognition,
        return_recognition_model: return_model,
        detection_model: detection,
        face_id_time_to_live: ttl_seconds,
    } = DetectQuery::read(&q)?;
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
        out.push(detected_face(f, id, return_model.then_some(recognition), return_landmarks, &attributes)?);
    }
    let mut response = ok_json(out)?;
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

/// The `faceAttributes` object with the attributes asked for.
fn face_attributes(a: &guest::Attributes, wanted: &[&str]) -> FaceAttributes {
    let round = |v: f32| (f64::from(v) * 1000.0).round() / 1000.0;
    let asked = |name: &str| wanted.contains(&name);
    FaceAttributes {
        smile: asked("smile").then(|| round(a.smile)),
        // The spec's headPose is always an object; a degenerate landmark fit (no pose) reads
        // as facing the camera rather than as a null the clients do not expect.
        head_pose: asked("headPose").then(|| {
            let p = a.head_pose.unwrap_or(guest::HeadPose { roll: 0.0, yaw: 0.0, pitch: 0.0 });
            HeadPose { pitch: round1(p.pitch), roll: round1(p.roll), yaw: round1(p.yaw) }
        }),
        gender: asked("gender").then_some(if matches!(a.gender, guest::Gender::Male) { "male" } else { "female" }),
        age: asked("age").then(|| (f64::from(a.age) * 10.0).round() / 10.0),
        facial_hair: asked("facialHair").then(|| FacialHair {
            moustache: round(a.facial_hair.moustache),
            beard: round(a.facial_hair.beard),
            sideburns: round(a.facial_hair.sideburns),
        }),
        glasses: asked("glasses").then_some(match a.glasses {
            guest::Glasses::NoGlasses => "NoGlasses",
            guest::Glasses::ReadingGlasses => "ReadingGlasses",
            guest::Glasses::Sunglasses => "Sunglasses",
            guest::Glasses::SwimmingGoggles => "SwimmingGoggles",
        }),
        emotion: asked("emotion").then(|| {
            let e = &a.emotion;
            Emotion {
                anger: round(e.anger),
                contempt: round(e.contempt),
                disgust: round(e.disgust),
                fear: round(e.fear),
                happiness: round(e.happiness),
                neutral: round(e.neutral),
                sadness: round(e.sadness),
                surprise: round(e.surprise),
            }
        }),
        blur: asked("blur")
            .then(|| Blur { blur_level: level(a.blur.level, ["low", "medium", "high"]), value: round(a.blur.value) }),
        exposure: asked("exposure").then(|| Exposure {
            exposure_level: level(a.exposure.level, ["underExposure", "goodExposure", "overExposure"]),
            value: round(a.exposure.value),
        }),
        noise: asked("noise").then(|| Noise {
            noise_level: level(a.noise.level, ["low", "medium", "high"]),
            value: round(a.noise.value),
        }),
        makeup: asked("makeup").then_some(Makeup { eye_makeup: a.makeup.eye_makeup, lip_makeup: a.makeup.lip_makeup }),
        accessories: asked("accessories").then(|| {
            a.accessories
                .iter()
                .map(|x| Accessory {
                    kind: match x.kind {
                        guest::AccessoryType::Headwear => "headWear",
                        guest::AccessoryType::Glasses => "glasses",
                        guest::AccessoryType::Mask => "mask",
                    },
                    confidence: round(x.confidence),
                })
                .collect()
        }),
        occlusion: asked("occlusion").then_some(Occlusion {
            forehead_occluded: a.occlusion.forehead_occluded,
            eye_occluded: a.occlusion.eye_occluded,
            mouth_occluded: a.occlusion.mouth_occluded,
        }),
        hair: asked("hair").then(|| Hair {
            bald: round(a.hair.bald),
            invisible: a.hair.invisible,
            hair_color: a
                .hair
                .hair_color
                .iter()
                .map(|c| HairColor { color: hair_color(c.color), confidence: round(c.confidence) })
                .collect(),
        }),
    }
}
