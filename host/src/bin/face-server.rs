//! face-server: the Face API v1.0 service.
//!
//! `face-server Eula=accept Billing=<url> ApiKey=<key> [Section:Key=value ...]`; the same
//! settings may come from the environment (`EULA`, `BILLING`, `APIKEY`, `Section__Key`).

use std::process::ExitCode;

use face_host::server::{ServerConfig, run};
use face_host::settings::Settings;

fn main() -> ExitCode {
    let settings = match Settings::parse(std::env::args().skip(1), std::env::vars()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("face-server: {e}");
            return ExitCode::from(2);
        }
    };
    let level = settings.other.get("logging:console:loglevel").cloned().unwrap_or_else(|| "info".into());
    let json = settings.other.get("logging:console:format").is_some_and(|f| f.eq_ignore_ascii_case("json"));
    let filter = tracing_subscriber::EnvFilter::try_new(level.to_ascii_lowercase())
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
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
