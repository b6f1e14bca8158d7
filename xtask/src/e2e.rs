//! `cargo xtask e2e [--data DIR]`: builds face-server and the guest, then runs a representative
//! flow through the official npm client (tests/e2e/npm, @azure/cognitiveservices-face 5.0.0) and
//! tests/e2e/python_client.py, which starts the real server on a loopback port and drives all
//! 69 operations through the official Python client (azure-cognitiveservices-vision-face 0.6.1).
//! With `--data` (../shared/data), it also prints identification and verification figures and
//! sends every bad-input file to detect and AddFace. With `--hosts N` (N >= 2), the Python run
//! instead drives N face-servers on one throwaway PostgreSQL cluster, each request sent to the
//! next host in turn (the npm flow is not repeated), and then `cargo xtask soak --hosts N` with
//! 1,000 requests: the first host killed under load and restarted. With `--tls`, the cluster
//! takes TLS only and the hosts connect with `sslmode=verify-full` to a certificate made here.
//! With `--pgbouncer`, the hosts reach the cluster through Debian's PgBouncer in transaction mode
//! (TLS on both sides with `--tls`), their event listeners directly.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::server::build_server;
use crate::util::{Flags, cache_dir, models_dir, python, repo_root, run, testdata_dir};

/// `cargo xtask serve [Key=value ...]`: builds and runs face-server with this checkout's guest,
/// models and a data directory in the cache, reporting usage to a local face-meter on port 5001
/// (started here, stopped with the server); arguments are more settings (they win).
pub fn serve(args: &[String]) -> Result<()> {
    let (server, guest) = build_server()?;
    // The in-browser demo at /demo.
    crate::web::web(&[])?;
    let key = std::env::var("FACE_API_KEY").unwrap_or_else(|_| "local-key".to_owned());
    let data = std::env::var_os("FACE_DATA").map(PathBuf::from).unwrap_or_else(|| cache_dir().join("data"));
    let meter_bin = server.with_file_name("face-meter");
    let mut meter = Command::new(&meter_bin)
        .arg(format!("Keys={key}"))
        .arg("Address=127.0.0.1:5001")
        .arg(format!("DataDirectory={}", data.join("meter").display()))
        .spawn()
        .with_context(|| format!("starting {}", meter_bin.display()))?;
    eprintln!(
        "face-server on http://localhost:5000/face/v1.0 (key: Ocp-Apim-Subscription-Key: {key}), data in {}; \
         usage goes to face-meter on http://127.0.0.1:5001 (totals: /v1/totals with the same key)",
        data.display()
    );
    let result = run(Command::new(server)
        .arg("Eula=accept")
        .arg("Billing=http://127.0.0.1:5001/")
        .arg(format!("ApiKey={key}"))
        .arg(format!("Storage:DataDirectory={}", data.display()))
        .arg(format!("Engine:Guest={}", guest.display()))
        .arg(format!("Engine:Models={}", models_dir().display()))
        .arg(format!("Engine:Cache={}", cache_dir().join("guest-cache").display()))
        .args(args));
    let _ = meter.kill();
    let _ = meter.wait();
    result
}

pub fn e2e(args: &[String]) -> Result<()> {
    const USAGE: &str = "usage: cargo xtask e2e [--data DIR] [--hosts N [--tls] [--pgbouncer]]";
    let flags = Flags::parse(args, USAGE, &["--data", "--hosts"], &["--tls", "--pgbouncer"])?;
    let mut extra: Vec<String> = Vec::new();
    if let Some(dir) = flags.text("--data") {
        extra.extend(["--data".to_owned(), dir.to_owned()]);
    }
    let hosts: usize = flags.value("--hosts", 1)?;
    if hosts < 1 {
        return Err(flags.refuse("--hosts needs a number of hosts, 1 or more"));
    }
    let (tls, pgbouncer) = (flags.on("--tls"), flags.on("--pgbouncer"));
    if (tls || pgbouncer) && hosts < 2 {
        bail!("--tls and --pgbouncer are for the hosts' PostgreSQL: give --hosts 2 or more; {USAGE}");
    }
    let (server, guest) = build_server()?;
    let python = python()?;
    // Several hosts: one throwaway PostgreSQL cluster for them all, stopped when this returns.
    // With --pgbouncer the hosts reach it through PgBouncer in transaction mode, and their event
    // listeners directly (Storage:EventsConnectionString).
    let (_pooler, _cluster) = if hosts > 1 {
        let cluster = if tls { crate::postgres::Cluster::start_tls()? } else { crate::postgres::Cluster::start()? };
        let pooler = if pgbouncer { Some(cluster.pgbouncer()?) } else { None };
        let url = pooler.as_ref().map_or(&cluster.url, |p| &p.url);
        extra.extend(["--postgres".to_owned(), url.clone(), "--hosts".to_owned(), hosts.to_string()]);
        if pgbouncer {
            extra.extend(["--events-postgres".to_owned(), cluster.url.clone()]);
        }
        (pooler, Some(cluster))
    } else {
        (None, None)
    };
    // The official npm client, a representative flow (tests/e2e/npm), against one host.
    let npm_tests = repo_root().join("tests/e2e/npm");
    if hosts == 1 && !npm_tests.join("node_modules/@azure/cognitiveservices-face").exists() {
        run(Command::new("npm").args(["ci", "--no-audit", "--no-fund"]).current_dir(&npm_tests))?;
    }
    if hosts == 1 {
        run(Command::new("node")
            .args(["--test", "client.test.mjs"])
            .current_dir(&npm_tests)
            .env("FACE_SERVER", &server)
            .env("FACE_GUEST", &guest)
            .env("FACE_MODELS", models_dir())
            .env("FACE_GUEST_CACHE", cache_dir().join("guest-cache"))
            .env("FACE_PHOTOS", testdata_dir()))?;
    }
    run(Command::new(python)
        .arg(repo_root().join("tests/e2e/python_client.py"))
        .arg("--server")
        .arg(server)
        .arg("--guest")
        .arg(guest)
        .arg("--models")
        .arg(models_dir())
        .arg("--cache")
        .arg(cache_dir().join("guest-cache"))
        .arg("--photos")
        .arg(testdata_dir())
        .args(extra))?;
    if hosts > 1 {
        // Then the first host killed (SIGKILL) under load while the others serve, and restarted:
        // every acknowledged write there, every answered call on the meter once.
        drop((_pooler, _cluster));
        crate::soak::soak(&["--requests".into(), "1000".into(), "--hosts".into(), hosts.to_string()])?;
    }
    Ok(())
}
