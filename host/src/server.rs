//! face-server's configuration (read from the start-up settings) and its run loop.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::api::{self, AppState, Shared};
use crate::billing::{Billing, BillingConfig};
use crate::engine::{Analyser, EngineConfig, EnginePool, ModelFiles};
use crate::faces::FaceIds;
use crate::fetch::{FetchConfig, Fetcher};
use crate::listen::ConnectionLimits;
use crate::settings::{Secret, Settings, SettingsError};
use crate::store::{PostgresStore, SharedFaceIds, SqliteStore, Store};

/// Where the face database lives. Its `Debug` form, which the logs show, hides a connection
/// string's password.
#[derive(Clone, PartialEq, Eq)]
pub enum Storage {
    /// SQLite file `face.db` in this directory (the default: persistent).
    Sqlite(PathBuf),
    /// In memory; gone when the process ends. The usage journal still goes to disk, in
    /// `usage/` under this directory, so unsent usage survives a restart.
    Memory(PathBuf),
    /// PostgreSQL at this connection string (`Storage:ConnectionString`), which several hosts
    /// may share; `events` is `Storage:EventsConnectionString`, where the event listener
    /// connects when a pooler in transaction mode stands before the database.
    Postgres { url: String, events: Option<String> },
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Storage::Sqlite(dir) => f.debug_tuple("Sqlite").field(dir).finish(),
            Storage::Memory(dir) => f.debug_tuple("Memory").field(dir).finish(),
            Storage::Postgres { url, events } => f
                .debug_struct("Postgres")
                .field("url", &redacted(url))
                .field("events", &events.as_deref().map(redacted))
                .finish(),
        }
    }
}

/// A connection string with its password replaced by `***`: in a URL the part between the
/// user's `:` and the `@` and a `password` query parameter, in key=value form the `password`
/// value (quoted or not).
pub fn redacted(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        let (rest, query) = rest.split_once('?').map_or((rest, None), |(r, q)| (r, Some(q)));
        let rest = match rest.rsplit_once('@') {
            Some((auth, host)) => match auth.split_once(':') {
                Some((user, _)) => format!("{user}:***@{host}"),
                None => format!("{auth}@{host}"),
            },
            None => rest.to_owned(),
        };
        let query = query.map(|q| {
            let pairs = q.split('&').map(|kv| match kv.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                _ => kv.to_owned(),
            });
            format!("?{}", pairs.collect::<Vec<_>>().join("&"))
        });
        return format!("{scheme}://{rest}{}", query.unwrap_or_default());
    }
    // key=value form; a quoted value may hold spaces.
    let mut out = Vec::new();
    let mut in_password = false;
    for kv in url.split_whitespace() {
        if in_password {
            in_password = !kv.ends_with('\'');
            continue;
        }
        match kv.split_once('=') {
            Some((k, v)) if k.trim().eq_ignore_ascii_case("password") => {
                in_password = v.starts_with('\'') && (v.len() == 1 || !v.ends_with('\''));
                out.push(format!("{k}=***"));
            }
            _ => out.push(kv.to_owned()),
        }
    }
    out.join(" ")
}

/// Everything face-server needs, parsed once from the settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub address: SocketAddr,
    pub storage: Storage,
    pub engine: EngineConfig,
    pub fetch: FetchConfig,
    /// `None` turns the subscription-key check off (`Security:RequireKey=false`).
    pub api_key: Option<Secret>,
    /// Most faceIds kept at once.
    pub face_id_capacity: usize,
    /// Swagger UI's files (npm swagger-ui-dist's folder).
    pub swagger_ui: PathBuf,
    pub billing: BillingConfig,
    /// Longest wait for requests in flight after SIGTERM or Ctrl-C.
    pub shutdown_timeout: Duration,
    /// The in-browser demo's folder, served at /demo.
    pub demo: PathBuf,
    /// The bytes requests may hold at once: bodies, fetched images, decoded pixels.
    pub memory_budget: usize,
    /// Requests that may hold or wait for an engine instance before 429 RateLimitExceeded.
    pub max_engine_queue: usize,
    /// Open connections and the deadline for a request's headers.
    pub connections: ConnectionLimits,
}

fn setting<'a>(s: &'a Settings, key: &str) -> Option<&'a str> {
    s.other.get(&key.to_ascii_lowercase()).map(String::as_str).filter(|v| !v.trim().is_empty())
}

fn parse<T: std::str::FromStr>(s: &Settings, key: &'static str, default: T, what: &str) -> Result<T, SettingsError> {
    match setting(s, key) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse()
            .map_err(|_| SettingsError::Invalid { setting: key, reason: format!("{v:?} is not {what}") }),
    }
}

fn exe_dir() -> PathBuf {
    std::env::current_exe().ok().and_then(|p| p.parent().map(Path::to_path_buf)).unwrap_or_else(|| ".".into())
}

/// `swagger-ui` beside the executable (the container image), else the folder
/// `scripts/setup.sh` installs in this checkout.
fn default_swagger_ui() -> PathBuf {
    let beside = exe_dir().join("swagger-ui");
    if beside.is_dir() {
        return beside;
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("swagger-ui/node_modules/swagger-ui-dist")
}

/// `demo` beside the executable (the container image), else this checkout's `web/dist`.
fn default_demo() -> PathBuf {
    let beside = exe_dir().join("demo");
    if beside.is_dir() {
        return beside;
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../web/dist")
}

impl ServerConfig {
    /// Reads the optional settings (see the README's table), with their defaults.
    pub fn from_settings(s: &Settings) -> Result<ServerConfig, SettingsError> {
        let address =
            parse(s, "Server:Address", SocketAddr::from(([0, 0, 0, 0], 5000)), "an address like 0.0.0.0:5000")?;
        let data_dir = setting(s, "Storage:DataDirectory").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("data"));
        let storage = match setting(s, "Storage:Scenario").map(str::to_ascii_lowercase).as_deref() {
            None | Some("sqlite") => Storage::Sqlite(data_dir.clone()),
            Some("memory") => Storage::Memory(data_dir.clone()),
            Some("postgres") => match setting(s, "Storage:ConnectionString") {
                Some(url) if !url.trim().is_empty() => {
                    crate::store::check_connection_string(url.trim())
                        .map_err(|reason| SettingsError::Invalid { setting: "Storage:ConnectionString", reason })?;
                    let events = match setting(s, "Storage:EventsConnectionString").map(str::trim) {
                        Some(events) if !events.is_empty() => {
                            crate::store::check_connection_string(events).map_err(|reason| SettingsError::Invalid {
                                setting: "Storage:EventsConnectionString",
                                reason,
                            })?;
                            Some(events.to_owned())
                        }
                        _ => None,
                    };
                    Storage::Postgres { url: url.trim().to_owned(), events }
                }
                _ => {
                    return Err(SettingsError::Invalid {
                        setting: "Storage:ConnectionString",
                        reason: "Storage:Scenario=Postgres needs the database's connection string, e.g. \
                                 Storage:ConnectionString=postgresql://face:secret@db:5432/face"
                            .into(),
                    });
                }
            },
            Some(other) => {
                return Err(SettingsError::Invalid {
                    setting: "Storage:Scenario",
                    reason: format!("{other:?} is not Sqlite, Memory or Postgres"),
                });
            }
        };
        let guest = setting(s, "Engine:Guest").map(PathBuf::from).unwrap_or_else(|| exe_dir().join("face_wasm.wasm"));
        let models = setting(s, "Engine:Models").map(PathBuf::from).unwrap_or_else(|| exe_dir().join("models"));
        let cache = setting(s, "Engine:Cache").map(PathBuf::from).unwrap_or_else(|| data_dir.join("cache"));
        let mut engine = EngineConfig::new(guest, ModelFiles::in_dir(models), cache);
        if let Some(v) = setting(s, "Engine:Backend") {
            engine.backend =
                v.parse().map_err(|reason| SettingsError::Invalid { setting: "Engine:Backend", reason })?;
        }
        if let Some(v) = setting(s, "Engine:OnnxRuntime") {
            engine.onnxruntime = PathBuf::from(v);
        }
        engine.pool_size = parse(s, "Engine:PoolSize", engine.pool_size, "a whole number of instances")?.max(1);
        engine.memory_limit =
            parse(s, "Engine:MemoryMiB", engine.memory_limit >> 20, "a whole number of MiB")?.saturating_mul(1 << 20);
        engine.deadline = Duration::from_secs(parse(
            s,
            "Engine:TimeoutSeconds",
            engine.deadline.as_secs(),
            "a whole number of seconds",
        )?);
        engine.recycle_calls = parse(s, "Engine:RecycleCalls", engine.recycle_calls, "a whole number of calls")?;
        engine.recycle_memory = parse(s, "Engine:RecycleMiB", engine.recycle_memory >> 20, "a whole number of MiB")?
            .saturating_mul(1 << 20);
        engine.perf_map = parse(s, "Engine:PerfMap", false, "true or false")?;
        let fetch = FetchConfig {
            allow_private: parse(s, "Security:AllowPrivateUrls", false, "true or false")?,
            timeout: Duration::from_secs(parse(s, "Security:UrlTimeoutSeconds", 10, "a whole number of seconds")?),
            ..FetchConfig::default()
        };
        let require_key = parse(s, "Security:RequireKey", true, "true or false")?;
        let mut billing = BillingConfig::new(&s.billing, &s.api_key);
        billing.interval =
            Duration::from_secs(parse(s, "Billing:IntervalSeconds", 600, "a whole number of seconds")?.max(1));
        billing.retry = Duration::from_secs(parse(s, "Billing:RetrySeconds", 30, "a whole number of seconds")?.max(1));
        billing.grace = Duration::from_secs(parse(
            s,
            "Billing:GraceSeconds",
            billing.interval.as_secs() * 10,
            "a whole number of seconds",
        )?);
        Ok(ServerConfig {
            address,
            storage,
            fetch,
            api_key: require_key.then(|| Secret::new(s.api_key.clone())),
            face_id_capacity: parse(s, "Server:MaxFaceIds", 200_000, "a whole number")?,
            swagger_ui: setting(s, "Server:SwaggerUi").map(PathBuf::from).unwrap_or_else(default_swagger_ui),
            billing,
            shutdown_timeout: Duration::from_secs(parse(
                s,
                "Server:ShutdownTimeoutSeconds",
                30,
                "a whole number of seconds",
            )?),
            demo: setting(s, "Server:Demo").map(PathBuf::from).unwrap_or_else(default_demo),
            memory_budget: parse(s, "Server:MemoryBudgetMiB", 1024usize, "a whole number of MiB")?
                .max(8)
                .saturating_mul(1 << 20),
            max_engine_queue: parse(s, "Engine:MaxQueue", engine.pool_size * 16, "a whole number of requests")?.max(1),
            connections: ConnectionLimits {
                max_connections: parse(
                    s,
                    "Server:MaxConnections",
                    ConnectionLimits::default().max_connections,
                    "a whole number of connections",
                )?
                .max(1),
                header_timeout: Duration::from_secs(
                    parse(
                        s,
                        "Server:HeaderTimeoutSeconds",
                        ConnectionLimits::default().header_timeout.as_secs(),
                        "a whole number of seconds",
                    )?
                    .max(1),
                ),
            },
            engine,
        })
    }
}

/// Checks that the engine's files exist, naming the setting to fix when one does not.
fn check_files(engine: &EngineConfig) -> Result<()> {
    if !engine.guest.is_file() {
        anyhow::bail!(
            "the engine guest {} does not exist: build it with `cargo xtask guest` and pass Engine:Guest=<path>",
            engine.guest.display()
        );
    }
    let m = &engine.models;
    for f in m.all() {
        if !f.is_file() {
            anyhow::bail!(
                "the model file {} does not exist: run `cargo xtask models` and pass Engine:Models=<directory>",
                f.display()
            );
        }
    }
    Ok(())
}

/// Opens the store and the usage journal, starts the engine pool, and returns the state every
/// request shares: what `run` serves (it adds the heartbeat, the sweeper and the listener), and
/// what the fuzz targets and the in-process tests drive.
pub async fn open(config: &ServerConfig) -> Result<Shared> {
    check_files(&config.engine)?;
    open_with(config, None).await
}

/// [`open`] with the engine given (`Some`: tests of the resources over the test engine), or the
/// guest pool started once the store is open (`None`).
pub async fn open_with(config: &ServerConfig, engine: Option<Arc<dyn Analyser>>) -> Result<Shared> {
    // With PostgreSQL, faceIds live in the database too, for the other hosts.
    let mut postgres = None;
    let (store, shared_ids): (Arc<dyn Store>, Option<Arc<dyn SharedFaceIds>>) = match &config.storage {
        Storage::Sqlite(dir) => (
            Arc::new(SqliteStore::open_dir(dir).with_context(|| {
                format!("cannot open the face database in {} (Storage:DataDirectory)", dir.display())
            })?),
            None,
        ),
        Storage::Memory(_) => (Arc::new(SqliteStore::in_memory()?), None),
        Storage::Postgres { url, events } => {
            let (url, events) = (url.clone(), events.clone());
            let connect = move || PostgresStore::connect_with(&url, events.as_deref());
            let pg = Arc::new(tokio::task::spawn_blocking(connect).await?.with_context(
                || "cannot open the face database in PostgreSQL (Storage:Scenario=Postgres, Storage:ConnectionString)",
            )?);
            postgres = Some(pg.clone());
            (pg.clone(), Some(pg))
        }
    };
    let journal: Arc<dyn Store> = match &config.storage {
        Storage::Sqlite(_) | Storage::Postgres { .. } => store.clone(),
        Storage::Memory(dir) => Arc::new(SqliteStore::open_dir(&dir.join("usage")).with_context(|| {
            format!("cannot open the usage journal in {} (Storage:DataDirectory)", dir.join("usage").display())
        })?),
    };
    let interrupted = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || store.fail_interrupted(crate::time::now_ms())).await??
    };
    if interrupted > 0 {
        tracing::warn!(
            count = interrupted,
            "trainings or snapshot operations interrupted by the last stop are marked failed"
        );
    }
    let started = Instant::now();
    let engine: Arc<dyn Analyser> = match engine {
        Some(engine) => engine,
        None => {
            let pool = EnginePool::new(config.engine.clone()).await.context("the face engine did not start")?;
            tracing::info!(
                ms = started.elapsed().as_millis() as u64,
                pool = config.engine.pool_size,
                backend = config.engine.backend.name(),
                "engine ready"
            );
            Arc::new(pool)
        }
    };
    let billing = Arc::new(Billing::new(config.billing.clone(), journal));
    let state = Arc::new(AppState {
        engine,
        billing,
        store_is_journal: matches!(config.storage, Storage::Sqlite(_) | Storage::Postgres { .. }),
        budget: api::budget::MemoryBudget::new(config.memory_budget),
        metrics: Default::default(),
        store,
        face_ids: match shared_ids {
            Some(shared) => FaceIds::shared(config.face_id_capacity, shared),
            None => FaceIds::new(config.face_id_capacity),
        },
        indexes: Default::default(),
        training: Mutex::new(HashMap::new()),
        fetcher: Fetcher::new(&config.fetch),
        api_key: config.api_key.clone(),
        swagger_ui: config.swagger_ui.is_dir().then(|| config.swagger_ui.clone()),
        demo: config.demo.is_dir().then(|| config.demo.clone()),
        engine_queue: Default::default(),
        max_engine_queue: config.max_engine_queue,
        started,
    });
    if let Some(pg) = postgres {
        // The other hosts' trainings and deletes, applied to this host's cached indexes.
        let (events, mut received) = tokio::sync::mpsc::unbounded_channel();
        pg.listen(move |e| {
            let _ = events.send(e);
        })
        .context("cannot start the thread that listens for the database's events")?;
        let listening = state.clone();
        tokio::spawn(async move {
            let mut connected_before = false;
            while let Some(event) = received.recv().await {
                crate::training::on_event(&listening, event, &mut connected_before).await;
            }
        });
    }
    Ok(state)
}

/// Opens the state ([`open`]), and serves until SIGTERM or Ctrl-C, then drains.
pub async fn run(config: ServerConfig) -> Result<()> {
    let state = open(&config).await?;
    let billing = state.billing.clone();
    let heartbeat = billing.spawn_heartbeat();
    crate::expiry::spawn(&state);
    let listener = tokio::net::TcpListener::bind(config.address)
        .await
        .with_context(|| format!("cannot listen on {} (Server:Address)", config.address))?;
    tracing::info!(address = %listener.local_addr()?, storage = ?config.storage, "listening");
    let (stopping, mut stop) = tokio::sync::watch::channel(false);
    let serve = crate::listen::serve(listener, api::router(state), config.connections, async move {
        shutdown_signal().await;
        let _ = stopping.send(true);
    });
    let timeout = config.shutdown_timeout;
    tokio::select! {
        () = serve => {},
        () = async move {
            let _ = stop.wait_for(|s| *s).await;
            tokio::time::sleep(timeout).await;
        } => tracing::warn!(seconds = timeout.as_secs(), "requests still in flight after the shutdown timeout; stopping"),
    }
    heartbeat.abort();
    match tokio::time::timeout(Duration::from_secs(15), billing.flush()).await {
        Ok(Ok(n)) => tracing::info!(records = n, "usage flushed"),
        Ok(Err(message)) => {
            let backlog = billing.backlog_async().await;
            tracing::warn!(%message, backlog, "usage not flushed; it is sent at the next start")
        }
        Err(_) => {
            let backlog = billing.backlog_async().await;
            tracing::warn!(backlog, "usage flush timed out; it is sent at the next start")
        }
    }
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}

#[cfg(test)]
mod tests {
    use super::{ServerConfig, redacted};
    use crate::settings::Settings;

    #[test]
    fn a_configurations_debug_form_shows_no_key_and_no_password() {
        let args = [
            "Eula=accept",
            "Billing=http://127.0.0.1:5001/",
            "ApiKey=k3y-never-logged",
            "Storage:Scenario=Postgres",
            "Storage:ConnectionString=postgresql://face:pa55-never-logged@db/face",
        ];
        let settings = Settings::parse(args.map(String::from), std::iter::empty::<(String, String)>()).unwrap();
        let config = ServerConfig::from_settings(&settings).unwrap();
        assert_eq!(config.api_key.as_ref().map(|k| k.expose()), Some("k3y-never-logged"));
        assert_eq!(config.billing.api_key.expose(), "k3y-never-logged");
        for shown in [format!("{config:?}"), format!("{:?}", config.billing), format!("{settings:?}")] {
            assert!(!shown.contains("never-logged"), "{shown}");
            assert!(shown.contains("<redacted>") || shown.contains("***"), "{shown}");
        }
    }

    #[test]
    fn connection_strings_lose_their_passwords() {
        assert_eq!(redacted("postgresql://face:s3cret@db:5432/face"), "postgresql://face:***@db:5432/face");
        assert_eq!(
            redacted("postgres://db/face?user=face&password=s3cret"),
            "postgres://db/face?user=face&password=***"
        );
        assert_eq!(redacted("postgresql://face@db/face"), "postgresql://face@db/face");
        assert_eq!(
            redacted("host=db user=face password=s3cret dbname=face"),
            "host=db user=face password=*** dbname=face"
        );
        assert_eq!(redacted("host=db password='a b c' dbname=face"), "host=db password=*** dbname=face");
    }
}
