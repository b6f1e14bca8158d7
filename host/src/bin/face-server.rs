//! face-server: the Face API v1.0 service.
//!
//! `face-server Eula=accept Billing=<url> ApiKey=<key> [Section:Key=value ...]`; the same
//! settings may come from the environment (`EULA`, `BILLING`, `APIKEY`, `Section__Key`).

use std::process::ExitCode;

use face_host::server::{ServerConfig, run};
use face_host::settings::Settings;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// mimalloc: per-thread heaps that give freed memory back to the system. Each detect allocates
/// and frees tens of MB of tensors on whichever blocking thread runs it; glibc's arenas kept
/// ~300 MB of that resident after a few dozen requests (see ARCHITECTURE.md, "Allocator").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Console logs (`Logging:Console:LogLevel`, `Logging:Console:Format=json`), and JSON lines in
/// `<Mounts:Output>/face-server.log` when `Logging:Disk:Format=json` (level `Logging:Disk:LogLevel`).
/// The returned guard flushes the disk log's background writer when dropped at exit.
fn init_logging(settings: &Settings) -> Result<Option<tracing_appender::non_blocking::WorkerGuard>, String> {
    let get = |k: &str| settings.other.get(k).map(String::as_str);
    let filter = |key: &str| {
        let level = get(key).unwrap_or("info").to_ascii_lowercase();
        EnvFilter::try_new(&level).map_err(|e| format!("the {key} setting {level:?} is not a log level: {e}"))
    };
    let console_filter = filter("logging:console:loglevel")?;
    let console = if get("logging:console:format").is_some_and(|f| f.eq_ignore_ascii_case("json")) {
        tracing_subscriber::fmt::layer().json().with_writer(std::io::stderr).with_filter(console_filter).boxed()
    } else {
        tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_filter(console_filter).boxed()
    };
    let disk = match get("logging:disk:format") {
        None => None,
        Some(f) if f.eq_ignore_ascii_case("json") => {
            let dir = std::path::PathBuf::from(get("mounts:output").unwrap_or("/output"));
            std::fs::create_dir_all(&dir).map_err(|e| {
                format!(
                    "Logging:Disk:Format=json needs a writable Mounts:Output; {} cannot be created: {e}",
                    dir.display()
                )
            })?;
            let path = dir.join("face-server.log");
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(|e| format!("cannot open {} for the disk log (Mounts:Output): {e}", path.display()))?;
            let (writer, guard) = tracing_appender::non_blocking(file);
            Some((
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_ansi(false)
                    .with_writer(writer)
                    .with_filter(filter("logging:disk:loglevel")?),
                guard,
            ))
        }
        Some(other) => return Err(format!("the Logging:Disk:Format setting {other:?} is not supported; use json")),
    };
    let (disk, guard) = disk.unzip();
    tracing_subscriber::registry().with(console).with(disk).init();
    Ok(guard)
}

/// `face-server healthcheck [URL]`: exits 0 when `/ready` answers 200 (the image's HEALTHCHECK;
/// the runtime image has no curl). Without a URL it asks the port of `Server__Address` (or
/// `SERVER__ADDRESS`) on loopback, 5000 by default.
fn healthcheck(url: Option<String>) -> ExitCode {
    let port = std::env::vars()
        .find(|(k, _)| k.eq_ignore_ascii_case("server__address"))
        .and_then(|(_, v)| v.rsplit(':').next().and_then(|p| p.parse::<u16>().ok()))
        .unwrap_or(5000);
    let url = url.unwrap_or_else(|| format!("http://127.0.0.1:{port}/ready"));
    let agent: ureq::Agent =
        ureq::Agent::config_builder().timeout_global(Some(std::time::Duration::from_secs(5))).build().into();
    match agent.get(&url).call() {
        Ok(r) if r.status() == 200 => ExitCode::SUCCESS,
        Ok(r) => {
            eprintln!("face-server healthcheck: {url} answered {}", r.status());
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("face-server healthcheck: {url}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `face-server compile-guest GUEST`: compiles the guest component for this build of
/// face-server and writes `GUEST` with the extension `.cwasm` beside it, and the record of its
/// sha256 (`.cwasm.sha256`). The image runs it at build time, into the read-only install folder;
/// face-server loads a compiled guest only when it matches that record.
fn compile_guest(guest: Option<String>) -> ExitCode {
    let Some(guest) = guest else {
        eprintln!("usage: face-server compile-guest GUEST_WASM");
        return ExitCode::from(2);
    };
    match face_host::engine::precompile_guest(std::path::Path::new(&guest)) {
        Ok(path) => {
            eprintln!("face-server compile-guest: wrote {} and its sha256 record", path.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("face-server compile-guest: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `face-server bulk-load DATABASE FILE`: loads a file of faces (format in the store's `bulk`
/// module) into the face database, many faces to a transaction: `DATABASE` is a SQLite data
/// directory (run it while no face-server uses that folder) or a PostgreSQL connection string
/// (`postgresql://...`, or libpq's key=value form), which hosts may be using meanwhile.
/// `cargo xtask scale` fills its million-face collections so.
fn bulk_load(database: Option<String>, file: Option<String>) -> ExitCode {
    let (Some(database), Some(file)) = (database, file) else {
        eprintln!("usage: face-server bulk-load DATA_DIRECTORY|POSTGRESQL_CONNECTION_STRING FILE");
        return ExitCode::from(2);
    };
    let run = || -> Result<face_host::store::Loaded, String> {
        let postgres = database.starts_with("postgres://")
            || database.starts_with("postgresql://")
            || database.contains("host=")
            || database.contains("dbname=");
        let store: Box<dyn face_host::store::BulkSink> = if postgres {
            Box::new(face_host::store::PostgresStore::connect(&database).map_err(|e| e.to_string())?)
        } else {
            Box::new(
                face_host::store::SqliteStore::open_dir(std::path::Path::new(&database)).map_err(|e| e.to_string())?,
            )
        };
        let f = std::fs::File::open(&file).map_err(|e| format!("{file}: {e}"))?;
        let mut reader = std::io::BufReader::with_capacity(1 << 20, f);
        face_host::store::bulk_load(store.as_ref(), &mut reader, &mut |done| {
            if done.faces.is_multiple_of(200_000) {
                eprintln!("face-server bulk-load: {} faces, {} persons", done.faces, done.persons);
            }
        })
        .map_err(|e| e.to_string())
    };
    match run() {
        Ok(done) => {
            eprintln!("face-server bulk-load: loaded {} faces and {} persons from {file}", done.faces, done.persons);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("face-server bulk-load: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `face-server check-settings [Section:Key=value ...]`: reads the settings from the arguments
/// and the environment as a start would, reports the first one that is wrong, and exits without
/// starting (0: a start would accept them). For deployment files and CI: nothing is opened.
fn check_settings() -> ExitCode {
    let settings = match Settings::parse(std::env::args().skip(2), std::env::vars()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("face-server check-settings: {e}");
            return ExitCode::from(2);
        }
    };
    for setting in &settings.ignored {
        eprintln!("face-server check-settings: {setting} is an Azure container setting with no effect here");
    }
    match ServerConfig::from_settings(&settings) {
        Ok(_) => {
            eprintln!("face-server check-settings: the settings are valid");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("face-server check-settings: {e}");
            ExitCode::from(2)
        }
    }
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    match std::env::args().nth(1).as_deref() {
        Some("check-settings") => return check_settings(),
        Some("healthcheck") => return healthcheck(args.nth(1)),
        Some("compile-guest") => return compile_guest(args.nth(1)),
        Some("bulk-load") => return bulk_load(args.nth(1), args.next()),
        _ => {}
    }
    let settings = match Settings::parse(std::env::args().skip(1), std::env::vars()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("face-server: {e}");
            return ExitCode::from(2);
        }
    };
    let _disk_log = match init_logging(&settings) {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("face-server: {e}");
            return ExitCode::from(2);
        }
    };
    for setting in &settings.ignored {
        tracing::warn!(%setting, "this Azure container setting has no effect in this service; it is ignored");
    }
    let config = match ServerConfig::from_settings(&settings) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("face-server: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("face-server: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("face-server: {e:#}");
            ExitCode::FAILURE
        }
    }
}
