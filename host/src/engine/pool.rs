//! The pool of warm guest instances.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use tokio::sync::Semaphore;
use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, ResourceLimiter, Store, Trap};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_nn::wit::{WasiNnCtx, WasiNnView};

use super::nn::{Graphs, with_deadline};
use super::{BackendKind, EngineConfig, FaceEngine as Face, FaceEnginePre as FacePre, checked, guest};

/// The epoch ticks every this long; deadlines are whole ticks.
const TICK: Duration = Duration::from_millis(5);
/// Loading and optimising the models in a fresh instance may take this long.
const INIT_DEADLINE: Duration = Duration::from_secs(120);

/// Why a call did not give the guest's answer.
#[derive(Debug, Clone)]
pub enum CallError {
    /// The guest answered with an error (bad image, no face, ...).
    Guest(guest::Error),
    /// The call ran past the deadline; the instance was discarded.
    Timeout { deadline: Duration },
    /// The call needed more memory than an instance may have; the instance was discarded.
    MemoryLimit { limit: usize },
    /// The guest trapped; the instance was discarded.
    Trap(String),
    /// No instance could be made (the guest or the models failed to load).
    Unavailable(String),
    /// The guest answered with values that break the contract (see `checked`).
    Broken(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Guest(e) => write!(f, "{e:?}"),
            CallError::Timeout { deadline } => write!(f, "the engine did not finish within {deadline:?}"),
            CallError::MemoryLimit { limit } => write!(f, "the engine needed more than its {limit} bytes of memory"),
            CallError::Trap(m) => write!(f, "the engine failed: {m}"),
            CallError::Unavailable(m) => write!(f, "the engine is unavailable: {m}"),
            CallError::Broken(m) => write!(f, "the engine's answer breaks its contract: {m}"),
        }
    }
}

impl std::error::Error for CallError {}

/// Where the time of one engine call went.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CallTimes {
    /// Waiting for a free instance (the pool's permit and a blocking thread), and making one
    /// when none was idle (a fresh instance loads its models).
    pub queue: Duration,
    /// The guest call itself, from entering the instance to its answer (the image's copy into
    /// the guest and the answer's out included).
    pub call: Duration,
    /// The guest's own steps, microseconds by name (the guest's `timings`).
    pub steps: Vec<(String, u64)>,
}

/// Counters for health and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolStats {
    pub size: usize,
    pub idle: usize,
    /// Instances discarded after a trap, timeout or memory-limit hit.
    pub discarded: u64,
    /// Instances replaced after `recycle_calls` calls or past `recycle_memory`.
    pub recycled: u64,
    /// Largest linear memory an instance has reached, bytes.
    pub peak_memory: usize,
    /// Where the compiled guest came from.
    pub guest_source: super::compiled::Source,
    /// Where the models run.
    pub backend: BackendKind,
}

/// Per-store state: WASI (no files, no network, no clocks beyond WASI's), `wasi:nn` (the host's
/// graphs by name) and the memory limiter.
struct State {
    wasi: WasiCtx,
    nn: WasiNnCtx,
    table: ResourceTable,
    limiter: Limiter,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

struct Limiter {
    max: usize,
    peak: usize,
    denied: bool,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.max {
            self.denied = true;
            return Ok(false);
        }
        self.peak = self.peak.max(desired);
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

/// One warm instance.
struct Instance {
    store: Store<State>,
    face: Face,
    /// Calls answered since it was made.
    calls: u64,
}

struct Inner {
    engine: Engine,
    pre: FacePre<State>,
    /// The model bytes each instance loads, for the `guest` backend only.
    models: Option<guest::Models>,
    /// The host's graphs, shared by every instance (empty for the `guest` backend).
    graphs: Graphs,
    idle: Mutex<Vec<Instance>>,
    permits: Arc<Semaphore>,
    config: EngineConfig,
    discarded: AtomicU64,
    recycled: AtomicU64,
    peak: std::sync::atomic::AtomicUsize,
    stop_ticker: Arc<AtomicBool>,
    source: super::compiled::Source,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop_ticker.store(true, Ordering::Relaxed);
    }
}

/// A bounded pool of warm guest instances. Cheap to clone.
#[derive(Clone)]
pub struct EnginePool {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for EnginePool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnginePool").field("stats", &self.stats()).finish()
    }
}

/// The one wasmtime configuration every pool, and the precompiler, uses.
pub(super) fn engine(config: &EngineConfig) -> Result<Engine> {
    let mut c = Config::new();
    c.wasm_component_model(true).epoch_interruption(true).wasm_simd(true);
    if config.perf_map {
        c.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    let mut pooling = PoolingAllocationConfig::new();
    let slots = (config.pool_size as u32 + 2).max(2);
    pooling
        .total_component_instances(slots)
        .total_core_instances(slots * 4)
        .total_memories(slots * 2)
        .total_tables(slots * 4);
    // No `max_memory_size` below 4 GiB here: each memory keeps its full 4 GiB reservation so
    // Cranelift can elide bounds checks (a smaller reservation cost the pipeline ~35%); the cap
    // is the ResourceLimiter's.
    let mut pooled = c.clone();
    pooled.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling));
    // The pooling allocator reserves address space for every slot up front; where that is not
    // available (small virtual memory limits), instances are allocated on demand instead.
    Engine::new(&pooled).or_else(|_| Engine::new(&c)).map_err(|e| anyhow!("configuring wasmtime: {e}"))
}

fn read_models(config: &EngineConfig) -> Result<guest::Models> {
    let read =
        |p: &Path| std::fs::read(p).with_context(|| format!("reading model {}: run `cargo xtask models`", p.display()));
    let m = &config.models;
    Ok(guest::Models {
        detector: read(&m.detector)?,
        landmarks68: read(&m.landmarks68)?,
        sface: read(&m.sface)?,
        faceapi_recognizer: read(&m.faceapi_recognizer)?,
        age_gender: read(&m.age_gender)?,
        expression: read(&m.expression)?,
    })
}

/// Whole ticks for `d`, at least one, saturating (a huge deadline must not wrap into a tiny one).
fn ticks(d: Duration) -> u64 {
    u64::try_from(d.as_nanos() / TICK.as_nanos()).unwrap_or(u64::MAX / 4).clamp(1, u64::MAX / 4) + 1
}

impl EnginePool {
    /// Compiles (or loads from the cache) the guest and warms `pool_size` instances.
    pub async fn new(config: EngineConfig) -> Result<EnginePool> {
        tokio::task::spawn_blocking(move || Self::new_blocking(config)).await.context("engine start-up panicked")?
    }

    fn new_blocking(config: EngineConfig) -> Result<EnginePool> {
        if config.pool_size == 0 {
            return Err(anyhow!("the engine pool size must be at least 1"));
        }
        let engine = engine(&config)?;
        let (component, source) = super::compiled::component(&engine, &config.guest, &config.cache_dir)?;
        tracing::info!(guest = %config.guest.display(), source = source.name(), "guest component ready");
        let mut linker: Linker<State> = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(|e| anyhow!("linking WASI: {e}"))?;
        wasmtime_wasi_nn::wit::add_to_linker(&mut linker, |s: &mut State| WasiNnView::new(&mut s.table, &mut s.nn))
            .map_err(|e| anyhow!("linking wasi:nn: {e}"))?;
        let pre = FacePre::new(linker.instantiate_pre(&component).map_err(|e| anyhow!("linking the guest: {e}"))?)
            .map_err(|e| anyhow!("the guest does not match wasm/wit/face.wit: {e}"))?;
        let models = match config.backend {
            BackendKind::Guest => Some(read_models(&config)?),
            _ => None,
        };
        let graphs = Graphs::load(config.backend, &config.models, &config.onnxruntime)?;
        let stop_ticker = Arc::new(AtomicBool::new(false));
        {
            let (engine, stop) = (engine.clone(), stop_ticker.clone());
            std::thread::Builder::new().name("epoch-ticker".into()).spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(TICK);
                    engine.increment_epoch();
                }
            })?;
        }
        let pool = EnginePool {
            inner: Arc::new(Inner {
                engine,
                pre,
                models,
                graphs,
                idle: Mutex::new(Vec::new()),
                permits: Arc::new(Semaphore::new(config.pool_size)),
                discarded: AtomicU64::new(0),
                recycled: AtomicU64::new(0),
                peak: Default::default(),
                stop_ticker,
                source,
                config,
            }),
        };
        for _ in 0..pool.inner.config.pool_size {
            let instance = pool.instantiate().map_err(|e| anyhow!("{e}"))?;
            pool.inner.idle.lock().expect("pool lock").push(instance);
        }
        Ok(pool)
    }

    /// A fresh instance with the models loaded.
    fn instantiate(&self) -> Result<Instance, CallError> {
        let inner = &self.inner;
        let state = State {
            wasi: WasiCtxBuilder::new().build(),
            nn: inner.graphs.context(),
            table: ResourceTable::new(),
            limiter: Limiter { max: inner.config.memory_limit, peak: 0, denied: false },
        };
        let mut store = Store::new(&inner.engine, state);
        store.limiter(|s| &mut s.limiter);
        store.epoch_deadline_trap();
        store.set_epoch_deadline(ticks(INIT_DEADLINE));
        let face = inner
            .pre
            .instantiate(&mut store)
            .map_err(|e| CallError::Unavailable(format!("instantiating the guest: {e}")))?;
        let init = match &inner.models {
            Some(models) => face.call_init(&mut store, models),
            None => face.call_init_named(&mut store, true),
        };
        match init {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(CallError::Unavailable(format!("loading the models: {e:?}"))),
            Err(e) => return Err(CallError::Unavailable(format!("loading the models: {e}"))),
        }
        inner.peak.fetch_max(store.data().limiter.peak, Ordering::Relaxed);
        Ok(Instance { store, face, calls: 0 })
    }

    /// Runs `call` on an instance under the memory cap and `deadline`, off the async runtime.
    async fn run<T: Send + 'static>(
        &self,
        deadline: Duration,
        call: impl FnOnce(&Face, &mut Store<State>) -> wasmtime::Result<Result<T, guest::Error>> + Send + 'static,
    ) -> Result<(T, CallTimes), CallError> {
        let asked = Instant::now();
        // The permit travels with the blocking work: if the caller stops waiting (a client hangs
        // up), the instance stays counted until the guest call has really finished.
        let permit = self
            .inner
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| CallError::Unavailable("the pool is closed".into()))?;
        let pool = self.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let popped = pool.inner.idle.lock().expect("pool lock").pop();
            let mut instance = match popped {
                Some(i) => i,
                None => pool.instantiate()?,
            };
            let queue = asked.elapsed();
            instance.store.set_epoch_deadline(ticks(deadline));
            instance.store.data_mut().limiter.denied = false;
            // Epochs bound the guest's own code; the deadline bounds the host's model runs.
            let started = Instant::now();
            let (outcome, host_timed_out) =
                with_deadline(started.checked_add(deadline), || call(&instance.face, &mut instance.store));
            let times = CallTimes { queue, call: started.elapsed(), steps: Vec::new() };
            let limiter = &mut instance.store.data_mut().limiter;
            pool.inner.peak.fetch_max(limiter.peak, Ordering::Relaxed);
            match outcome {
                Ok(answer) => {
                    instance.calls += 1;
                    let config = &pool.inner.config;
                    let worn = (config.recycle_calls > 0 && instance.calls >= config.recycle_calls)
                        || limiter.peak > config.recycle_memory;
                    if worn {
                        // The next call makes a fresh instance.
                        pool.inner.recycled.fetch_add(1, Ordering::Relaxed);
                    } else {
                        let mut idle = pool.inner.idle.lock().expect("pool lock");
                        if idle.len() < config.pool_size {
                            idle.push(instance);
                        }
                    }
                    if host_timed_out {
                        return Err(CallError::Timeout { deadline });
                    }
                    answer.map(|a| (a, times)).map_err(CallError::Guest)
                }
                Err(e) => {
                    // The instance is in an unknown state: drop it; the next call makes a fresh one.
                    let denied = limiter.denied;
                    pool.inner.discarded.fetch_add(1, Ordering::Relaxed);
                    drop(instance);
                    if e.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
                        Err(CallError::Timeout { deadline })
                    } else if denied {
                        Err(CallError::MemoryLimit { limit: pool.inner.config.memory_limit })
                    } else {
                        Err(CallError::Trap(e.to_string()))
                    }
                }
            }
        })
        .await
        .map_err(|e| CallError::Trap(format!("the engine call panicked: {e}")))?
    }

    /// Detects faces: decode, detect, landmarks and embeddings in one guest call.
    pub async fn detect(&self, image: Vec<u8>, options: guest::DetectOptions) -> Result<Vec<guest::Face>, CallError> {
        self.detect_within(image, options, self.inner.config.deadline).await.map(|(faces, _)| faces)
    }

    /// `detect`, with where its time went.
    pub async fn detect_timed(
        &self,
        image: Vec<u8>,
        options: guest::DetectOptions,
    ) -> Result<(Vec<guest::Face>, CallTimes), CallError> {
        self.detect_within(image, options, self.inner.config.deadline).await
    }

    /// `detect_timed` with a deadline other than the configured one.
    pub async fn detect_within(
        &self,
        image: Vec<u8>,
        options: guest::DetectOptions,
        deadline: Duration,
    ) -> Result<(Vec<guest::Face>, CallTimes), CallError> {
        let asked = checked::Asked::from(&options);
        let ((faces, steps), mut times) = self
            .run(deadline, move |face, store| {
                let faces = face.call_detect(&mut *store, &image, options)?;
                let steps = face.call_timings(&mut *store)?;
                Ok(faces.map(|f| (f, steps)))
            })
            .await?;
        checked::faces(&faces, &asked).map_err(CallError::Broken)?;
        times.steps = checked::timings(steps);
        Ok((faces, times))
    }

    /// The face inside `target`, embedded with `model`.
    pub async fn embed(
        &self,
        image: Vec<u8>,
        target: guest::Rect,
        model: guest::RecognitionModel,
    ) -> Result<guest::Face, CallError> {
        let deadline = self.inner.config.deadline;
        let asked = checked::Asked { max_faces: 1, landmarks: false, recognition: Some(model), attributes: false };
        let (face, _) = self.run(deadline, move |face, store| face.call_embed(store, &image, target, model)).await?;
        checked::face(&face, &asked).map_err(CallError::Broken)?;
        Ok(face)
    }

    pub fn stats(&self) -> PoolStats {
        PoolStats {
            size: self.inner.config.pool_size,
            idle: self.inner.idle.lock().map(|i| i.len()).unwrap_or(0),
            discarded: self.inner.discarded.load(Ordering::Relaxed),
            recycled: self.inner.recycled.load(Ordering::Relaxed),
            peak_memory: self.inner.peak.load(Ordering::Relaxed),
            guest_source: self.inner.source,
            backend: self.inner.config.backend,
        }
    }
}
