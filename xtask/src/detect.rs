//! `cargo xtask detect PHOTO...`: the engine on photos, printed as Face API detect JSON.

use anyhow::{Context, Result, bail};
use face_core::{DetectOptions, Face};
use serde_json::{Value, json};

pub fn detect(photos: &[String]) -> Result<()> {
    if photos.is_empty() {
        bail!("usage: cargo xtask detect PHOTO...");
    }
    let engine = crate::engine::load()?;
    let options = DetectOptions::default();
    let mut out = serde_json::Map::new();
    for photo in photos {
        let bytes = std::fs::read(photo).with_context(|| format!("reading {photo}"))?;
        let value = match engine.detect(&bytes, &options) {
            Ok(faces) => Value::Array(faces.iter().map(face_json).collect()),
            Err(e) => json!({ "error": { "message": e.to_string() } }),
        };
        out.insert(photo.clone(), value);
    }
    let text = serde_json::to_string_pretty(&Value::Object(out))?;
    std::io::Write::write_all(&mut std::io::stdout(), format!("{text}\n").as_bytes())?;
    Ok(())
}

/// The Face API's DetectedFace shape for one face (faceRectangle and faceLandmarks).
pub fn face_json(face: &Face) -> Value {
    let r = face.rectangle;
    let mut v = json!({
        "faceRectangle": { "top": r.top, "left": r.left, "width": r.width, "height": r.height },
    });
    if let Some(landmarks) = &face.landmarks {
        let mut l = serde_json::to_value(landmarks).expect("landmarks serialise");
        round_points(&mut l);
        v["faceLandmarks"] = l;
    }
    v
}

fn round_points(v: &mut Value) {
    match v {
        Value::Object(map) => map.values_mut().for_each(round_points),
        Value::Number(n) => {
            if let Some(f) = n.as_f64() {
                *v = json!((f * 10.0).round() / 10.0);
            }
        }
        _ => {}
    }
}
