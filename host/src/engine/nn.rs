//! The host side of `wasi:nn`: the guest's tensor kernels run here, natively.
//!
//! Each model is loaded once per process, optimised for each input shape the engine feeds it
//! (face-core's `MODELS`), and shared by every instance (a `wasmtime_wasi_nn::Graph` is an
//! `Arc`); each guest call gets its own execution state. The guest can only load graphs by name (`load-by-name`, the names of
//! face-core's `MODELS`); `load` of guest-supplied bytes is refused, so model bytes never enter
//! guest memory and the guest cannot make the host parse a model of its choosing. Inputs are
//! checked against the graph's input name, shapes and type before anything runs. The call's
//! deadline is enforced here between nodes, since wasmtime's epochs do not reach host code.

use std::cell::Cell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, anyhow};
use face_core::{MODELS, ModelInfo, Runner, TractPlan};
use wasmtime_wasi_nn::backend::{BackendError, BackendExecutionContext, BackendGraph, BackendInner, Id, NamedTensor};
use wasmtime_wasi_nn::wit::{ExecutionTarget, GraphEncoding, TensorType};
use wasmtime_wasi_nn::{Backend, ExecutionContext, Graph, GraphRegistry, Tensor};

use super::ModelFiles;

thread_local! {
    /// The deadline of the guest call running on this thread, set by the pool around each call.
    static DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
    /// Whether a model run on this thread stopped at the deadline during the current call.
    static TIMED_OUT: Cell<bool> = const { Cell::new(false) };
}

/// Runs `call` with `deadline` as the host-side deadline of its model runs (none: no limit);
/// returns its result and whether a model run stopped at the deadline.
pub(crate) fn with_deadline<T>(deadline: Option<Instant>, call: impl FnOnce() -> T) -> (T, bool) {
    DEADLINE.with(|d| d.set(deadline));
    TIMED_OUT.with(|t| t.set(false));
    let out = call();
    DEADLINE.with(|d| d.set(None));
    (out, TIMED_OUT.with(|t| t.replace(false)))
}

fn keep_going() -> bool {
    match DEADLINE.with(Cell::get) {
        Some(deadline) if Instant::now() >= deadline => {
            TIMED_OUT.with(|t| t.set(true));
            false
        }
        _ => true,
    }
}

/// Where the guest's models run (`Engine:Backend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackendKind {
    /// tract on the host, through `wasi:nn` (the default).
    #[default]
    Tract,
    /// onnxruntime on the host, through `wasi:nn` (`libonnxruntime` loaded at start-up).
    Onnxruntime,
    /// tract inside the guest: the strictest isolation, and the baseline of the benchmarks.
    Guest,
}

impl BackendKind {
    pub const NAMES: [&'static str; 3] = ["tract", "onnxruntime", "guest"];

    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Tract => "tract",
            BackendKind::Onnxruntime => "onnxruntime",
            BackendKind::Guest => "guest",
        }
    }
}

impl std::str::FromStr for BackendKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "tract" => Ok(BackendKind::Tract),
            "onnxruntime" | "ort" => Ok(BackendKind::Onnxruntime),
            "guest" => Ok(BackendKind::Guest),
            _ => Err(format!("unknown engine backend {s:?}: use one of {}", BackendKind::NAMES.join(", "))),
        }
    }
}

/// The graphs one process serves, by name; every instance's registry shares them.
#[derive(Clone, Default)]
pub(crate) struct Graphs(Arc<HashMap<String, Graph>>);

impl std::fmt::Debug for Graphs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl Graphs {
    /// Loads every model in `files` for `backend` (none for the `guest` backend); `onnxruntime`
    /// is the library the `onnxruntime` backend loads.
    pub(crate) fn load(backend: BackendKind, files: &ModelFiles, onnxruntime: &Path) -> Result<Graphs> {
        let mut graphs = HashMap::new();
        let environment = match backend {
            BackendKind::Guest => return Ok(Graphs::default()),
            BackendKind::Onnxruntime => Some(ort_environment(onnxruntime)?),
            BackendKind::Tract => None,
        };
        for (info, path) in MODELS.iter().zip(files.all()) {
            let graph: Box<dyn BackendGraph> = match &environment {
                None => Box::new(TractGraph::load(info, path)?),
                Some(env) => Box::new(OrtGraph::load(env, info, path)?),
            };
            graphs.insert(info.name.to_owned(), Graph::from(graph));
        }
        Ok(Graphs(Arc::new(graphs)))
    }

    /// The `wasi:nn` state of one instance: these graphs by name, and no backend that would
    /// load guest bytes.
    pub(crate) fn context(&self) -> wasmtime_wasi_nn::wit::WasiNnCtx {
        wasmtime_wasi_nn::wit::WasiNnCtx::new([Backend::from(RefuseBytes)], Registry(self.clone()).into())
    }
}

struct Registry(Graphs);

impl GraphRegistry for Registry {
    fn get(&self, name: &str) -> Option<&Graph> {
        self.0.0.get(name)
    }

    fn get_mut(&mut self, _name: &str) -> Option<&mut Graph> {
        // The graphs are shared by every instance; none may be replaced from inside one.
        None
    }
}

/// The native face-core engine running its models on these graphs, as the guest does through
/// `wasi:nn` (for benchmarks and for checking the guest against native code, backend by backend).
pub(crate) fn native_engine(graphs: &Graphs) -> Result<face_core::Engine> {
    let engine = face_core::Engine::from_runners(
        |info| {
            let graph = graphs.0.get(info.name).ok_or_else(|| face_core::Error::Model {
                model: info.name,
                reason: "the backend has no such graph".into(),
            })?;
            let context = graph
                .init_execution_context()
                .map_err(|e| face_core::Error::Model { model: info.name, reason: e.to_string() })?;
            Ok(Arc::new(GraphRunner { info, context: std::sync::Mutex::new(context) }) as Arc<dyn Runner>)
        },
        true,
    );
    engine.map_err(|e| anyhow!("{e}"))
}

/// A host graph as a face-core model runner.
struct GraphRunner {
    info: &'static ModelInfo,
    context: std::sync::Mutex<ExecutionContext>,
}

impl Runner for GraphRunner {
    fn run(&self, shape: &[usize], data: Vec<f32>) -> Result<Vec<Vec<f32>>, String> {
        let dimensions = shape.iter().map(|&d| d as u32).collect();
        let data = face_core::f32_to_bytes(&data);
        let input =
            NamedTensor { name: self.info.input.into(), tensor: Tensor::new(dimensions, TensorType::Fp32, data) };
        let mut context = self.context.lock().map_err(|_| "the execution context lock is poisoned")?;
        let outputs = context.compute_with_io(vec![input]).map_err(message)?;
        outputs
            .into_iter()
            .map(|o| face_core::f32_from_bytes(&o.tensor.data).ok_or_else(|| "an output is not f32s".to_owned()))
            .collect()
    }
}

/// The ONNX "backend" the guest sees for `load`: it refuses, naming the way that works.
struct RefuseBytes;

impl BackendInner for RefuseBytes {
    fn encoding(&self) -> GraphEncoding {
        GraphEncoding::Onnx
    }

    fn load(&mut self, _builders: &[&[u8]], _target: ExecutionTarget) -> Result<Graph, BackendError> {
        Err(backend_error(format!(
            "face-server does not load models from guest bytes; load one of its graphs by name ({})",
            MODELS.map(|m| m.name).join(", ")
        )))
    }

    fn as_dir_loadable(&mut self) -> Option<&mut dyn wasmtime_wasi_nn::backend::BackendFromDir> {
        None
    }
}

/// Checks the inputs of one compute call against the graph's one input and the shapes the engine
/// feeds it; returns the input's shape and its bytes (a whole number of little-endian f32s).
fn checked_input(info: &ModelInfo, mut inputs: Vec<NamedTensor>) -> Result<([usize; 4], Vec<u8>), BackendError> {
    let invalid = |m: String| backend_error(format!("{}: {m}", info.name));
    if inputs.len() != 1 {
        return Err(invalid(format!("takes one input ({}), {} were given", info.input, inputs.len())));
    }
    let NamedTensor { name, tensor } = inputs.remove(0);
    if name != info.input {
        return Err(invalid(format!("has no input {name:?}; its input is {:?}", info.input)));
    }
    if tensor.ty != TensorType::Fp32 {
        return Err(invalid(format!("takes f32, the input is {:?}", tensor.ty)));
    }
    let shape: Vec<usize> = tensor.dimensions.iter().map(|&d| d as usize).collect();
    let Some(&shape) = info.shapes.iter().find(|s| s.as_slice() == shape) else {
        return Err(invalid(format!("takes shapes {:?}, the input has {shape:?}", info.shapes)));
    };
    let expected = shape.iter().product::<usize>() * 4;
    if tensor.data.len() != expected {
        return Err(invalid(format!("takes {expected} bytes of data, the input has {}", tensor.data.len())));
    }
    Ok((shape, tensor.data))
}

fn output_tensor(name: String, shape: &[usize], values: &[f32]) -> NamedTensor {
    let data = face_core::f32_to_bytes(values);
    let dimensions = shape.iter().map(|&d| d as u32).collect();
    NamedTensor { name, tensor: Tensor::new(dimensions, TensorType::Fp32, data) }
}

/// A backend failure with its message, for the guest (as a wasi:nn error's data).
fn backend_error(message: String) -> BackendError {
    BackendError::BackendAccess(wasmtime::format_err!("{message}"))
}

/// A backend error's whole message (the wrapped error's chain, not only its outer line).
fn message(e: BackendError) -> String {
    match e {
        BackendError::BackendAccess(e) => format!("{e:#}"),
        other => other.to_string(),
    }
}

fn unsupported(what: &str) -> BackendError {
    backend_error(format!("{what} is not supported: pass the inputs to compute"))
}

/// A model as a tract plan, shared by every instance.
struct TractGraph {
    info: &'static ModelInfo,
    plan: TractPlan,
}

impl TractGraph {
    fn load(info: &'static ModelInfo, path: &Path) -> Result<TractGraph> {
        let bytes = std::fs::read(path)
            .with_context(|| format!("reading model {}: run `cargo xtask models`", path.display()))?;
        let plan =
            TractPlan::load(&bytes, info.shapes).map_err(|e| anyhow!("loading model {}: {e}", path.display()))?;
        Ok(TractGraph { info, plan })
    }
}

impl BackendGraph for TractGraph {
    fn init_execution_context(&self) -> Result<ExecutionContext, BackendError> {
        Ok(ExecutionContext::from(
            Box::new(TractContext { info: self.info, plan: self.plan.clone() }) as Box<dyn BackendExecutionContext>
        ))
    }
}

struct TractContext {
    info: &'static ModelInfo,
    plan: TractPlan,
}

impl BackendExecutionContext for TractContext {
    fn set_input(&mut self, _id: Id, _tensor: &Tensor) -> Result<(), BackendError> {
        Err(unsupported("set-input"))
    }

    fn get_output(&mut self, _id: Id) -> Result<Tensor, BackendError> {
        Err(unsupported("get-output"))
    }

    fn compute(&mut self, inputs: Option<Vec<NamedTensor>>) -> Result<Option<Vec<NamedTensor>>, BackendError> {
        let (shape, bytes) = checked_input(self.info, inputs.ok_or_else(|| unsupported("compute without inputs"))?)?;
        // tract takes its input as an owned f32 buffer: the one copy after the lift out of the guest.
        let data = face_core::f32_from_bytes(&bytes).ok_or_else(|| backend_error("the input is not f32s".into()))?;
        drop(bytes);
        let outputs = self
            .plan
            .run_shaped(&shape, data, &mut keep_going)
            .map_err(|e| backend_error(format!("{}: {e}", self.info.name)))?;
        Ok(Some(
            outputs
                .iter()
                .enumerate()
                .map(|(i, (shape, values))| output_tensor(i.to_string(), shape, values))
                .collect(),
        ))
    }
}

/// The process's one onnxruntime environment, from `library` (loaded once; later calls reuse it).
fn ort_environment(library: &Path) -> Result<ort::environment::Environment> {
    static ENVIRONMENT: std::sync::Mutex<Option<ort::environment::Environment>> = std::sync::Mutex::new(None);
    let mut env = ENVIRONMENT.lock().map_err(|_| anyhow!("the onnxruntime environment lock is poisoned"))?;
    if let Some(env) = env.as_ref() {
        return Ok(env.clone());
    }
    if !library.is_file() {
        return Err(anyhow!(
            "the onnxruntime library {} does not exist: run `cargo xtask models` (it unpacks the pinned \
             onnxruntime wheel) and pass Engine:OnnxRuntime=<path to libonnxruntime.so>",
            library.display()
        ));
    }
    let built = ort::init_from(library)
        .map_err(|e| anyhow!("loading onnxruntime from {}: {e}", library.display()))?
        .with_name("face-server")
        .build()
        .map_err(|e| anyhow!("starting onnxruntime from {}: {e}", library.display()))?;
    *env = Some(built.clone());
    Ok(built)
}

/// A model as onnxruntime sessions. onnxruntime's `Run` is not safe to call from several threads
/// on one session (the `ort` crate's finding), so each call takes a session of its own from the
/// model's idle list and puts it back after: a model has as many sessions as calls ever ran on it
/// at once (at most the pool size), and a model no request uses keeps the one made at start-up.
/// The sessions of one model share their prepacked weights; each is made from the model file,
/// so no copy of the file stays in memory.
struct OrtGraph {
    sessions: Arc<OrtSessions>,
}

struct OrtSessions {
    info: &'static ModelInfo,
    environment: ort::environment::Environment,
    path: PathBuf,
    prepacked: ort::session::builder::PrepackedWeights,
    idle: std::sync::Mutex<Vec<ort::session::Session>>,
}

impl OrtGraph {
    fn load(environment: &ort::environment::Environment, info: &'static ModelInfo, path: &Path) -> Result<OrtGraph> {
        let sessions = OrtSessions {
            info,
            environment: environment.clone(),
            path: path.to_owned(),
            prepacked: ort::session::builder::PrepackedWeights::new(),
            idle: Default::default(),
        };
        // One session now: a model onnxruntime cannot load stops start-up here, not at the first call.
        let session =
            sessions.session().map_err(|e| anyhow!("loading model {} into onnxruntime: {e}", path.display()))?;
        sessions.put(session);
        Ok(OrtGraph { sessions: Arc::new(sessions) })
    }
}

impl OrtSessions {
    /// A new session: one intra-op thread (the pool size sets the parallelism), fully optimised.
    fn session(&self) -> Result<ort::session::Session, String> {
        use ort::session::builder::GraphOptimizationLevel;
        if !self.path.is_file() {
            return Err(format!("{} does not exist: run `cargo xtask models`", self.path.display()));
        }
        ort::session::Session::builder(&self.environment)
            .and_then(|b| Ok(b.with_intra_threads(1)?.with_inter_threads(1)?))
            .and_then(|b| Ok(b.with_optimization_level(GraphOptimizationLevel::All)?))
            .and_then(|b| Ok(b.with_prepacked_weights(&self.prepacked)?))
            .and_then(|mut b| b.commit_from_file(&self.path))
            .map_err(|e| e.to_string())
    }

    /// An idle session, or a new one when every session is running.
    fn take(&self) -> Result<ort::session::Session, String> {
        match self.idle.lock().ok().and_then(|mut idle| idle.pop()) {
            Some(session) => Ok(session),
            None => self.session(),
        }
    }

    fn put(&self, session: ort::session::Session) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(session);
        }
    }
}

impl BackendGraph for OrtGraph {
    fn init_execution_context(&self) -> Result<ExecutionContext, BackendError> {
        Ok(ExecutionContext::from(
            Box::new(OrtContext { sessions: self.sessions.clone() }) as Box<dyn BackendExecutionContext>
        ))
    }
}

struct OrtContext {
    sessions: Arc<OrtSessions>,
}

impl BackendExecutionContext for OrtContext {
    fn set_input(&mut self, _id: Id, _tensor: &Tensor) -> Result<(), BackendError> {
        Err(unsupported("set-input"))
    }

    fn get_output(&mut self, _id: Id) -> Result<Tensor, BackendError> {
        Err(unsupported("get-output"))
    }

    fn compute(&mut self, inputs: Option<Vec<NamedTensor>>) -> Result<Option<Vec<NamedTensor>>, BackendError> {
        let info = self.sessions.info;
        let failed = |e: String| backend_error(format!("{}: {e}", info.name));
        let (shape, bytes) = checked_input(info, inputs.ok_or_else(|| unsupported("compute without inputs"))?)?;
        let shape: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
        // onnxruntime reads the lifted bytes in place (the allocator aligns them for f32); only an
        // unaligned buffer, or a big-endian host, copies.
        let copied;
        let in_place = bytemuck::try_cast_slice(&bytes).ok().filter(|_| cfg!(target_endian = "little"));
        let values: &[f32] = match in_place {
            Some(values) => values,
            None => {
                copied = face_core::f32_from_bytes(&bytes).ok_or_else(|| failed("the input is not f32s".into()))?;
                &copied
            }
        };
        let input = ort::value::TensorRef::from_array_view((shape, values)).map_err(|e| failed(e.to_string()))?;
        let options = Arc::new(ort::session::RunOptions::new().map_err(|e| failed(e.to_string()))?);
        let mut session = self.sessions.take().map_err(failed)?;
        let deadline = DEADLINE.with(Cell::get);
        let watch = deadline.map(|d| watchdog::watch(d, &options));
        let result = match session.run_with_options(ort::inputs![info.input => input], &options) {
            _ if watch.is_some_and(|w| w.finish()) => {
                TIMED_OUT.with(|t| t.set(true));
                Err(failed("stopped: the deadline passed".into()))
            }
            Err(e) => Err(failed(e.to_string())),
            Ok(outputs) => outputs
                .iter()
                .enumerate()
                .map(|(i, (_, value))| {
                    let (shape, values) = value.try_extract_tensor::<f32>().map_err(|e| failed(e.to_string()))?;
                    let shape: Vec<usize> = shape.iter().map(|&d| d.max(0) as usize).collect();
                    Ok(output_tensor(i.to_string(), &shape, values))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
        };
        self.sessions.put(session);
        result
    }
}

/// Stops onnxruntime runs at their deadline: one thread, started on first use, that terminates
/// the runs whose deadline has passed (onnxruntime checks the flag between nodes).
mod watchdog {
    use std::sync::{Arc, Condvar, Mutex, Weak};
    use std::time::Instant;

    use ort::session::RunOptions;

    struct Entry {
        id: u64,
        deadline: Instant,
        options: Weak<RunOptions>,
        stopped: Arc<std::sync::atomic::AtomicBool>,
    }

    struct Watch {
        entries: Mutex<(u64, Vec<Entry>)>,
        changed: Condvar,
    }

    fn watch_list() -> &'static Watch {
        static WATCH: std::sync::OnceLock<&'static Watch> = std::sync::OnceLock::new();
        WATCH.get_or_init(|| {
            let watch: &'static Watch =
                Box::leak(Box::new(Watch { entries: Mutex::new((0, Vec::new())), changed: Condvar::new() }));
            let _ = std::thread::Builder::new().name("ort-deadlines".into()).spawn(move || run(watch));
            watch
        })
    }

    fn run(watch: &'static Watch) {
        let Ok(mut guard) = watch.entries.lock() else { return };
        loop {
            let now = Instant::now();
            guard.1.retain(|e| {
                if e.deadline > now {
                    return true;
                }
                if let Some(options) = e.options.upgrade() {
                    if options.terminate().is_ok() {
                        e.stopped.store(true, std::sync::atomic::Ordering::SeqCst);
                    }
                }
                false
            });
            let next = guard.1.iter().map(|e| e.deadline).min();
            guard = match next {
                Some(d) => match watch.changed.wait_timeout(guard, d.saturating_duration_since(Instant::now())) {
                    Ok((g, _)) => g,
                    Err(_) => return,
                },
                None => match watch.changed.wait(guard) {
                    Ok(g) => g,
                    Err(_) => return,
                },
            };
        }
    }

    /// One watched run; `finish` unregisters it and says whether it was stopped.
    pub(super) struct Watched {
        id: u64,
        stopped: Arc<std::sync::atomic::AtomicBool>,
    }

    impl Watched {
        pub(super) fn finish(self) -> bool {
            if let Ok(mut guard) = watch_list().entries.lock() {
                guard.1.retain(|e| e.id != self.id);
            }
            self.stopped.load(std::sync::atomic::Ordering::SeqCst)
        }
    }

    pub(super) fn watch(deadline: Instant, options: &Arc<RunOptions>) -> Watched {
        let watch = watch_list();
        let stopped = Arc::new(std::sync::atomic::AtomicBool::new(false));
        if deadline <= Instant::now() && options.terminate().is_ok() {
            // Already late: the run stops before its first node.
            stopped.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        let mut guard = watch.entries.lock().unwrap_or_else(|e| e.into_inner());
        guard.0 += 1;
        let id = guard.0;
        guard.1.push(Entry { id, deadline, options: Arc::downgrade(options), stopped: stopped.clone() });
        drop(guard);
        watch.changed.notify_one();
        Watched { id, stopped }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use super::*;

    fn models() -> ModelFiles {
        let dir = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from).expect("cargo test sets it");
        ModelFiles::in_dir(dir.join("../models"))
    }

    fn tensor(shape: &[u32], ty: TensorType, bytes: usize) -> Tensor {
        Tensor::new(shape.to_vec(), ty, vec![0; bytes])
    }

    fn detector_input() -> NamedTensor {
        let [n, c, h, w] = MODELS[0].shapes[0];
        NamedTensor {
            name: MODELS[0].input.into(),
            tensor: tensor(&[n as u32, c as u32, h as u32, w as u32], TensorType::Fp32, n * c * h * w * 4),
        }
    }

    /// What a guest could ask of each host backend, and what it gets.
    fn refusals(backend: BackendKind) {
        let files = models();
        let graphs = Graphs::load(backend, &files, &files.detector.with_file_name(super::super::ONNXRUNTIME_FILE))
            .expect("graphs load");
        let mut registry = Registry(graphs.clone());
        assert!(registry.get("no_such_model").is_none(), "an unknown graph is not found");
        assert!(registry.get_mut(MODELS[0].name).is_none(), "no graph can be replaced from a guest");
        let load = RefuseBytes.load(&[b"any onnx bytes".as_slice()], ExecutionTarget::Cpu);
        let err = message(load.err().expect("load of guest bytes is refused"));
        assert!(err.contains("by name") && err.contains(MODELS[0].name), "{err}");

        let graph = registry.get(MODELS[0].name).expect("the detector is served");
        let mut context = graph.init_execution_context().expect("a context");
        let bad = |named: Vec<NamedTensor>, context: &mut ExecutionContext| {
            message(context.compute_with_io(named).err().expect("bad input is refused"))
        };
        let mut wrong_name = detector_input();
        wrong_name.name = "pixels".into();
        assert!(bad(vec![wrong_name], &mut context).contains("has no input \"pixels\""));
        let mut wrong_type = detector_input();
        wrong_type.tensor.ty = TensorType::U8;
        assert!(bad(vec![wrong_type], &mut context).contains("takes f32"));
        let mut wrong_shape = detector_input();
        wrong_shape.tensor.dimensions = vec![1, 3, 320, 320];
        assert!(bad(vec![wrong_shape], &mut context).contains("takes shape"));
        let mut short = detector_input();
        short.tensor.data.truncate(100);
        assert!(bad(vec![short], &mut context).contains("bytes of data"));
        assert!(bad(vec![detector_input(), detector_input()], &mut context).contains("takes one input"));
        assert!(bad(vec![], &mut context).contains("takes one input"));

        // A good input runs; past the deadline, the run stops and says so.
        let outputs = context.compute_with_io(vec![detector_input()]).expect("a good input runs");
        assert_eq!(outputs.len(), 12, "YuNet has 12 outputs");
        assert!(outputs.iter().all(|o| o.tensor.ty == TensorType::Fp32));
        let (result, timed_out) = with_deadline(Instant::now().checked_sub(Duration::from_millis(1)), || {
            context.compute_with_io(vec![detector_input()]).map(|_| ())
        });
        assert!(timed_out, "{backend:?}: the deadline is noticed");
        assert!(message(result.expect_err("stopped at the deadline")).contains("deadline"));
        // The flag is per call: the next call runs.
        let (result, timed_out) = with_deadline(Some(Instant::now() + Duration::from_secs(30)), || {
            context.compute_with_io(vec![detector_input()])
        });
        assert!(result.is_ok() && !timed_out);
    }

    #[test]
    fn tract_backend_refuses_what_it_should_and_stops_at_the_deadline() {
        refusals(BackendKind::Tract);
    }

    #[test]
    fn onnxruntime_backend_refuses_what_it_should_and_stops_at_the_deadline() {
        refusals(BackendKind::Onnxruntime);
    }

    #[test]
    fn backend_names_parse() {
        for name in BackendKind::NAMES {
            assert_eq!(name.parse::<BackendKind>().unwrap().name(), name);
        }
        let err = "cuda".parse::<BackendKind>().unwrap_err();
        assert!(err.contains("tract, onnxruntime, guest"), "{err}");
    }
}
