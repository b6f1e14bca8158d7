//! `cargo xtask detect PHOTO...`: the native engine on photos, its values printed as JSON (the
//! shape the npm package returns; the Face API's detect JSON is face-server's alone).

use anyhow::{Context, Result, bail};
use face_core::DetectOptions;
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
            Ok(faces) => serde_json::to_value(&faces)?,
            Err(e) => json!({ "error": { "kind": e.kind(), "message": e.to_string() } }),
        };
        out.insert(photo.clone(), value);
    }
    let text = serde_json::to_string_pretty(&Value::Object(out))?;
    std::io::Write::write_all(&mut std::io::stdout(), format!("{text}\n").as_bytes())?;
    Ok(())
}
