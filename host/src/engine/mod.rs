//! The face engine, run as a WebAssembly guest in wasmtime.
//!
//! One `wasmtime::Engine` is configured once (component model, epoch interruption, the pooling
//! allocator when the address space allows it). The guest component is compiled once and cached
//! on disk, keyed by the engine's compatibility hash and the guest's bytes, so later starts only
//! deserialise it. A bounded pool of warm instances, each initialised once with the model bytes,
//! serves calls: each call runs off the async runtime, under a memory cap and a deadline; a trap
//! or a timeout discards that instance and the pool makes a fresh one.

mod pool;

use std::path::PathBuf;
use std::time::Duration;

pub use pool::{CallError, EnginePool, PoolStats};

wasmtime::component::bindgen!({ path: "../wasm/wit", world: "face-engine" });

/// The guest's types, as the host sees them.
pub use face::engine::types as guest;

/// How the pool is built.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The guest component (face-wasm built for wasm32-wasip2 with feature "component").
    pub guest: PathBuf,
    /// The model files.
    pub models: ModelFiles,
    /// Warm instances kept, and most calls at once. Default: one per core.
    pub pool_size: usize,
    /// Most linear memory one instance may hold (models included), bytes.
    pub memory_limit: usize,
    /// Longest a call may run.
    pub deadline: Duration,
    /// Where compiled guests are cached.
    pub cache_dir: PathBuf,
}

/// The model files an instance is initialised with.
#[derive(Debug, Clone)]
pub struct ModelFiles {
    pub detector: PathBuf,
    pub landmarks68: PathBuf,
    pub sface: PathBuf,
    pub faceapi_recognizer: PathBuf,
    pub age_gender: PathBuf,
    pub expression: PathBuf,
}

impl ModelFiles {
    /// Every file, in `NAMES` order.
    pub fn all(&self) -> [&PathBuf; 6] {
        [&self.detector, &self.landmarks68, &self.sface, &self.faceapi_recognizer, &self.age_gender, &self.expression]
    }

    /// The file names `cargo xtask models` writes, in field order: face-core's `ModelSet::FILES`
    /// then `ModelSet::ATTRIBUTE_FILES` (a test checks it).
    pub const NAMES: [&'static str; 6] = [
        "face_detection_yunet_2023mar.onnx",
        "faceapi_landmark68.onnx",
        "face_recognition_sface_2021dec.onnx",
        "faceapi_recognition.onnx",
        "faceapi_age_gender.onnx",
        "faceapi_expression.onnx",
    ];

    /// The files `cargo xtask models` writes into `dir`.
    pub fn in_dir(dir: impl Into<PathBuf>) -> ModelFiles {
        let dir = dir.into();
        let [detector, landmarks68, sface, faceapi_recognizer, age_gender, expression] =
            Self::NAMES.map(|f| dir.join(f));
        ModelFiles { detector, landmarks68, sface, faceapi_recognizer, age_gender, expression }
    }
}

impl EngineConfig {
    /// Defaults: one instance per core, 1 GiB per instance, 30 s per call.
    pub fn new(guest: impl Into<PathBuf>, models: ModelFiles, cache_dir: impl Into<PathBuf>) -> EngineConfig {
        EngineConfig {
            guest: guest.into(),
            models,
            pool_size: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            memory_limit: 1 << 30,
            deadline: Duration::from_secs(30),
            cache_dir: cache_dir.into(),
        }
    }
}
