//! face-wasm: thin adapters over face-core for WebAssembly hosts, with no logic of their own.
//!
//! - feature `component` (wasm32-wasip2): the guest face-server runs, exporting
//!   `wasm/wit/face.wit` with typed WIT records and an error variant.
//! - feature `js` (wasm32-unknown-unknown): the wasm-bindgen API of the npm package; values cross
//!   as JS objects, errors as JS `Error`s named after the face-core variant.
//! - without features: `detect_json` and `ErrorInfo`, the same call as JSON in and out, for hosts
//!   that bind by hand.

#[cfg(all(feature = "component", feature = "js"))]
compile_error!("features \"component\" and \"js\" build for different targets; enable one");

// wit-bindgen's generated export glue is `unsafe` by nature; nothing else in here is.
#[cfg(feature = "component")]
#[allow(unsafe_code)]
mod component;

// Likewise wasm-bindgen's glue.
#[cfg(feature = "js")]
#[allow(unsafe_code)]
mod js;

use face_core::{DetectOptions, Engine, Face};
use serde::{Deserialize, Serialize};

/// An engine error as it crosses a WebAssembly boundary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorInfo {
    /// The face-core variant: `FileTooSmall`, `UnsupportedFormat`, `CorruptImage`, ...
    pub kind: String,
    /// What went wrong and what to do, for people.
    pub message: String,
}

impl From<face_core::Error> for ErrorInfo {
    fn from(e: face_core::Error) -> Self {
        ErrorInfo { kind: e.kind().to_owned(), message: e.to_string() }
    }
}

/// Detects faces in `image` with options given as JSON (`{}` for the defaults; fields as in
/// `DetectOptions`, camelCase) and returns the faces as JSON.
pub fn detect_json(engine: &Engine, image: &[u8], options_json: &str) -> Result<String, ErrorInfo> {
    let options: DetectOptions = serde_json::from_str(options_json).map_err(|e| ErrorInfo {
        kind: "InvalidArgument".into(),
        message: format!("detect options are not valid JSON for DetectOptions: {e}"),
    })?;
    let faces: Vec<Face> = engine.detect(image, &options)?;
    Ok(serde_json::to_string(&faces).expect("faces serialise"))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use face_core::{Engine, ModelSet};

    use super::*;

    fn engine() -> Engine {
        // At run time (cargo test sets it), not compile time: clones share one target folder,
        // and a test binary built in another clone must read this clone's models.
        let dir = std::env::var_os("CARGO_MANIFEST_DIR")
            .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
            .join("../models");
        let models = ModelSet::read_with(|name| std::fs::read(dir.join(name))).expect("run `cargo xtask models` first");
        Engine::new(&models.bytes()).unwrap()
    }

    #[test]
    fn requests_and_errors_cross_the_boundary_as_json() {
        let engine = engine();
        let cache = std::env::var_os("FACE_CACHE")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/face"));
        let photo = std::fs::read(cache.join("testdata/obama.jpg")).expect("run `cargo xtask testdata` first");

        let json = detect_json(&engine, &photo, r#"{"recognition":"sface_2021dec"}"#).unwrap();
        let faces: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(faces.as_array().unwrap().len(), 1);
        assert_eq!(faces[0]["embedding"]["vector"].as_array().unwrap().len(), 128);
        assert!(faces[0]["landmarks"]["pupilLeft"]["x"].is_number());

        let err = detect_json(&engine, &[], "{}").unwrap_err();
        assert_eq!(err.kind, "FileTooSmall");
        let err = detect_json(&engine, &photo, r#"{"maxFaces":"many"}"#).unwrap_err();
        assert_eq!(err.kind, "InvalidArgument");
        let err = detect_json(&engine, &photo, r#"{"maxFaces":0}"#).unwrap_err();
        assert_eq!(err.kind, "InvalidArgument");
    }
}
