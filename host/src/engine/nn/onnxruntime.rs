//! The onnxruntime backend: sessions from the pinned wheel's libonnxruntime, loaded at run
//! time, an idle session list per model, and a watchdog that ends a run at the call's deadline.

use std::path::Path;

use anyhow::Result;
use face_core::ModelInfo;
use wasmtime_wasi_nn::backend::{BackendError, BackendExecutionContext, BackendGraph, Id, NamedTensor};
use wasmtime_wasi_nn::{ExecutionContext, Tensor};

use super::*;

/// The process's one onnxruntime environment, from `library` (loaded once; later calls reuse it).
pub(super) fn ort_environment(library: &Path) -> Result<ort::environment::Environment> {
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
/// so no copy of the file stays in memory. A file with constant int8 weights (the registry's
/// SFace) is folded into f32 as each session is made (face-core's fold, the weights tract runs),
/// and only that session's builder holds the folded bytes.
pub(super) struct OrtGraph {
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
    pub(super) fn load(
        environment: &ort::environment::Environment,
        info: &'static ModelInfo,
        path: &Path,
    ) -> Result<OrtGraph> {
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
        let bytes = std::fs::read(&self.path).map_err(|e| format!("reading {}: {e}", self.path.display()))?;
        let folded = face_core::onnxruntime_bytes(&bytes).map_err(|e| format!("{}: {e}", self.path.display()))?;
        drop(bytes);
        ort::session::Session::builder(&self.environment)
            .and_then(|b| Ok(b.with_intra_threads(1)?.with_inter_threads(1)?))
            .and_then(|b| Ok(b.with_optimization_level(GraphOptimizationLevel::All)?))
            // No planned buffer kept per input shape (the detector is fed three): 570 -> 534 MB
            // resident after one `cargo xtask load`, at the same throughput.
            .and_then(|b| Ok(b.with_memory_pattern(false)?))
            .and_then(|b| Ok(b.with_prepacked_weights(&self.prepacked)?))
            .and_then(|mut b| match &folded {
                Some(model) => b.commit_from_memory(model),
                None => b.commit_from_file(&self.path),
            })
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
                if let Some(options) = e.options.upgrade()
                    && options.terminate().is_ok()
                {
                    e.stopped.store(true, std::sync::atomic::Ordering::SeqCst);
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
