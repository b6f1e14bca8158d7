//! Loading the engine from models/.

use anyhow::{Context, Result};
use face_core::{Engine, ModelBytes};

use crate::util::models_dir;

/// The engine's model files, read from models/ (run `cargo xtask models` first).
pub struct ModelFiles {
    pub detector: Vec<u8>,
    pub landmarks68: Vec<u8>,
    pub sface: Vec<u8>,
    pub faceapi_recognizer: Vec<u8>,
}

impl ModelFiles {
    pub fn read() -> Result<ModelFiles> {
        let dir = models_dir();
        let read = |name: &str| {
            std::fs::read(dir.join(name))
                .with_context(|| format!("reading {}: run `cargo xtask models` first", dir.join(name).display()))
        };
        Ok(ModelFiles {
            detector: read("face_detection_yunet_2023mar.onnx")?,
            landmarks68: read("faceapi_landmark68.onnx")?,
            sface: read("face_recognition_sface_2021dec.onnx")?,
            faceapi_recognizer: read("faceapi_recognition.onnx")?,
        })
    }

    pub fn bytes(&self) -> ModelBytes<'_> {
        ModelBytes {
            detector: &self.detector,
            landmarks68: &self.landmarks68,
            sface: &self.sface,
            faceapi_recognizer: &self.faceapi_recognizer,
        }
    }
}

pub fn load() -> Result<Engine> {
    let files = ModelFiles::read()?;
    Ok(Engine::new(&files.bytes())?)
}
