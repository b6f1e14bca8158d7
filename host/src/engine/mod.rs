//! The face engine, run as a WebAssembly guest in wasmtime.
//!
//! One `wasmtime::Engine` is configured once (component model, epoch interruption, the pooling
//! allocator when the address space allows it). The guest component is compiled once and cached
//! on disk, keyed by the engine's compatibility hash and the guest's bytes, so later starts only
//! deserialise it. A bounded pool of warm instances serves calls: each call runs off the async
//! runtime, under a memory cap and a deadline; a trap or a timeout discards that instance and the
//! pool makes a fresh one. The models run where `backend` says: on the host through `wasi:nn`
//! (`nn`), loaded once per process and shared by every instance, or inside each instance.

pub mod checked;
mod compiled;
mod nn;
mod pool;
pub mod testing;

pub use compiled::{Source as GuestSource, precompiled_paths};
pub use nn::BackendKind;

use std::path::PathBuf;
use std::time::Duration;

pub use pool::{CallError, CallTimes, EnginePool, PoolStats};

wasmtime::component::bindgen!({ path: "../wasm/wit", world: "face-engine" });

/// The guest's types, as the host sees them.
pub use face::engine::types as guest;

/// An engine call under way.
pub type EngineFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, CallError>> + Send + 'a>>;

/// What the API asks of a face engine: the pool of guest instances ([`EnginePool`]) when it
/// serves, a deterministic one without guest or models ([`testing::TestEngine`]) in tests of
/// the API's resources.
pub trait Analyser: Send + Sync + std::fmt::Debug {
    /// Detects faces, with where the call's time went.
    fn detect_timed(
        &self,
        image: Vec<u8>,
        options: guest::DetectOptions,
    ) -> EngineFuture<'_, (Vec<guest::Face>, CallTimes)>;

    /// The face inside `target`, embedded with `model`.
    fn embed(
        &self,
        image: Vec<u8>,
        target: guest::Rect,
        model: guest::RecognitionModel,
    ) -> EngineFuture<'_, guest::Face>;

    /// Counters for health and metrics.
    fn stats(&self) -> PoolStats;
}

impl dyn Analyser {
    /// Detects faces.
    pub async fn detect(&self, image: Vec<u8>, options: guest::DetectOptions) -> Result<Vec<guest::Face>, CallError> {
        self.detect_timed(image, options).await.map(|(faces, _)| faces)
    }
}

impl Analyser for EnginePool {
    fn detect_timed(
        &self,
        image: Vec<u8>,
        options: guest::DetectOptions,
    ) -> EngineFuture<'_, (Vec<guest::Face>, CallTimes)> {
        Box::pin(EnginePool::detect_timed(self, image, options))
    }

    fn embed(
        &self,
        image: Vec<u8>,
        target: guest::Rect,
        model: guest::RecognitionModel,
    ) -> EngineFuture<'_, guest::Face> {
        Box::pin(EnginePool::embed(self, image, target, model))
    }

    fn stats(&self) -> PoolStats {
        EnginePool::stats(self)
    }
}

impl From<guest::RecognitionModel> for face_core::RecognitionModel {
    fn from(m: guest::RecognitionModel) -> face_core::RecognitionModel {
        match m {
            guest::RecognitionModel::Sface => face_core::RecognitionModel::SFace,
            guest::RecognitionModel::Faceapi => face_core::RecognitionModel::FaceApi,
        }
    }
}

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
    /// An instance is replaced by a fresh one after this many calls (0: never), so state a
    /// long-lived guest accumulates cannot grow without bound.
    pub recycle_calls: u64,
    /// ... or once its linear memory has grown past this many bytes (wasm memory never shrinks).
    pub recycle_memory: usize,
    /// Where compiled guests are cached; an entry is loaded only when it matches the sha256
    /// recorded beside the guest (see `compiled`).
    pub cache_dir: PathBuf,
    /// Where the models run.
    pub backend: BackendKind,
    /// The onnxruntime library the `onnxruntime` backend loads.
    pub onnxruntime: PathBuf,
    /// Write `/tmp/perf-<pid>.map` naming the guest's compiled functions, so `perf record` and
    /// `perf report` show guest frames by name (`Engine:PerfMap=true`; off by default).
    pub perf_map: bool,
}

/// The onnxruntime library's file name in the model folder (`cargo xtask models` unpacks it there).
pub const ONNXRUNTIME_FILE: &str = "libonnxruntime.so";

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
    /// Every file, in face-core's `MODELS` order.
    pub fn all(&self) -> [&PathBuf; 6] {
        [&self.detector, &self.landmarks68, &self.sface, &self.faceapi_recognizer, &self.age_gender, &self.expression]
    }

    /// The files `cargo xtask models` writes into `dir` (face-core's `MODELS`, in field order).
    pub fn in_dir(dir: impl Into<PathBuf>) -> ModelFiles {
        let dir = dir.into();
        let [detector, landmarks68, sface, faceapi_recognizer, age_gender, expression] =
            face_core::MODELS.map(|m| dir.join(m.file));
        ModelFiles { detector, landmarks68, sface, faceapi_recognizer, age_gender, expression }
    }
}

/// Compiles `guest` for the engine every pool uses and writes it beside the guest with the
/// record of its sha256 (`face-server compile-guest`; `cargo xtask guest` and `package` run it).
pub fn precompile_guest(guest: &std::path::Path) -> anyhow::Result<PathBuf> {
    let mut config = EngineConfig::new(guest, ModelFiles::in_dir("."), ".");
    config.pool_size = 1;
    compiled::precompile(&pool::engine(&config)?, guest)
}

/// face-core run natively with its models on `config.backend`'s host graphs (tract or
/// onnxruntime; `guest` gives plain tract): what the guest computes, without the sandbox. For
/// benchmarks and equality checks.
pub fn native_engine(config: &EngineConfig) -> anyhow::Result<face_core::Engine> {
    let backend = match config.backend {
        BackendKind::Guest => BackendKind::Tract,
        other => other,
    };
    nn::native_engine(&nn::Graphs::load(backend, &config.models, &config.onnxruntime)?)
}

impl EngineConfig {
    /// Defaults: one instance per core, 1 GiB per instance, 30 s per call.
    pub fn new(guest: impl Into<PathBuf>, models: ModelFiles, cache_dir: impl Into<PathBuf>) -> EngineConfig {
        let onnxruntime = models.detector.with_file_name(ONNXRUNTIME_FILE);
        EngineConfig {
            onnxruntime,
            guest: guest.into(),
            models,
            pool_size: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            memory_limit: 1 << 30,
            deadline: Duration::from_secs(30),
            recycle_calls: 10_000,
            recycle_memory: 768 << 20,
            cache_dir: cache_dir.into(),
            backend: BackendKind::default(),
            perf_map: false,
        }
    }
}
