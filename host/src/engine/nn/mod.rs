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
use wasmtime_wasi_nn::backend::{BackendError, BackendGraph, BackendInner, NamedTensor};
use wasmtime_wasi_nn::wit::{ExecutionTarget, GraphEncoding, TensorType};
use wasmtime_wasi_nn::{Backend, ExecutionContext, Graph, GraphRegistry, Tensor};

use super::ModelFiles;

mod onnxruntime;
mod tract;

use onnxruntime::{OrtGraph, ort_environment};
use tract::TractGraph;

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
    fn a_tract_call_hands_the_guest_back_clean_vector_registers() {
        // The fence of the `tract` backend's cliff (see `tract::clear_upper_vector_state`): after
        // a model call the upper halves of the vector registers are not in use, so the guest's
        // SSE code runs at full speed. Not a timing: the processor's own XINUSE flags.
        let files = models();
        let graphs = Graphs::load(BackendKind::Tract, &files, Path::new("unused")).expect("graphs load");
        let registry = Registry(graphs);
        for info in &MODELS[..3] {
            let graph = registry.get(info.name).expect("the model is served");
            let mut context = graph.init_execution_context().expect("a context");
            let [n, c, h, w] = info.shapes[0];
            let input = NamedTensor {
                name: info.input.into(),
                tensor: tensor(&[n as u32, c as u32, h as u32, w as u32], TensorType::Fp32, n * c * h * w * 4),
            };
            context.compute_with_io(vec![input]).expect("the model runs");
            assert_ne!(tract::upper_vector_state_in_use(), Some(true), "{}: tract left them in use", info.name);
        }
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
