//! `cargo xtask load [--seconds N] [--backends tract,onnxruntime,guest]`: a bounded load test on
//! loopback. For each engine backend (default: all three) it starts the real face-server (fresh
//! SQLite directory, pool size = cores) and runs wrk (Debian's `wrk`, 4 connections) on detect
//! (faceId on, the default) with a 640x480 one-face photo and with a larger photo, N seconds each
//! (default 10), and reads the server's resident memory. With the first backend it also enrols
//! two persons in a LargePersonGroup, trains it, and runs identify alone and detect and identify
//! at once. Prints throughput, per core, p50/p99 latency and the ratio to the `guest` backend
//! measured in the same run; fails on any non-2xx answer or socket error.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::server::build_server;
use crate::util::{Killed, cache_dir, free_port, memory_mb, models_dir, repo_root, testdata_dir};

const KEY: &str = "load-key";

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

fn call(base: &str, method: &str, path: &str, content_type: &str, body: Vec<u8>) -> Result<Value> {
    let request = ureq::http::Request::builder()
        .method(method)
        .uri(format!("{base}/face/v1.0{path}"))
        .header("Ocp-Apim-Subscription-Key", KEY)
        .header("Content-Type", content_type)
        .body(body)?;
    let response = agent().run(request).with_context(|| format!("{method} {path}"))?;
    let status = response.status().as_u16();
    let mut text = String::new();
    response.into_body().into_reader().read_to_string(&mut text)?;
    if !(200..300).contains(&status) {
        bail!("{method} {path} answered {status}: {text}");
    }
    Ok(if text.is_empty() { Value::Null } else { serde_json::from_str(&text)? })
}

fn json_call(base: &str, method: &str, path: &str, body: Value) -> Result<Value> {
    call(base, method, path, "application/json", serde_json::to_vec(&body)?)
}

/// One wrk run's figures.
#[derive(Debug)]
struct Figures {
    requests_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    requests: u64,
    non_2xx: u64,
    socket_errors: u64,
}

fn millis(s: &str) -> Option<f64> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| c.is_ascii_alphabetic())?);
    let v: f64 = num.parse().ok()?;
    Some(match unit {
        "us" => v / 1000.0,
        "ms" => v,
        "s" => v * 1000.0,
        "m" => v * 60_000.0,
        _ => return None,
    })
}

fn parse_wrk(out: &str) -> Result<Figures> {
    let field = |prefix: &str| out.lines().map(str::trim).find_map(|l| l.strip_prefix(prefix)).map(str::trim);
    let requests_per_s = field("Requests/sec:").and_then(|v| v.parse().ok()).context("no Requests/sec")?;
    let p50_ms = field("50%").and_then(millis).context("no 50% latency")?;
    let p99_ms = field("99%").and_then(millis).context("no 99% latency")?;
    let requests = out
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .context("no request count")?;
    let non_2xx = field("Non-2xx or 3xx responses:").and_then(|v| v.parse().ok()).unwrap_or(0);
    let socket_errors = field("Socket errors:")
        .map(|v| v.split(',').filter_map(|p| p.split_whitespace().last()?.parse::<u64>().ok()).sum())
        .unwrap_or(0);
    Ok(Figures { requests_per_s, p50_ms, p99_ms, requests, non_2xx, socket_errors })
}

fn wrk(url: &str, body: &Path, content_type: &str, seconds: u64, connections: u32) -> Result<Child> {
    Command::new("wrk")
        .args(["-t1", &format!("-c{connections}"), &format!("-d{seconds}s"), "--timeout", "30s", "--latency", "-s"])
        .arg(repo_root().join("tests/load/post.lua"))
        .arg(url)
        .env("LOAD_BODY", body)
        .env("LOAD_TYPE", content_type)
        .env("LOAD_KEY", KEY)
        .stdout(Stdio::piped())
        .spawn()
        .context("starting wrk: install it with `apt-get install wrk` (scripts/setup.sh --test does)")
}

/// A started face-server and where it keeps its files.
struct Running {
    _server: Killed,
    pid: u32,
    base: String,
    dir: PathBuf,
}

fn start(server: &Path, guest: &Path, backend: &str) -> Result<Running> {
    let dir = std::env::temp_dir().join(format!("face-load-{}-{backend}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let port = free_port()?;
    let base = format!("http://127.0.0.1:{port}");
    let log = std::fs::File::create(dir.join("server.log"))?;
    let child = Command::new(server)
        .args(["Eula=accept", "Billing=http://127.0.0.1:9/", &format!("ApiKey={KEY}")])
        .arg(format!("Server:Address=127.0.0.1:{port}"))
        .arg(format!("Storage:DataDirectory={}", dir.join("data").display()))
        .arg(format!("Engine:Guest={}", guest.display()))
        .arg(format!("Engine:Models={}", models_dir().display()))
        .arg(format!("Engine:Cache={}", cache_dir().join("guest-cache").display()))
        .arg(format!("Engine:Backend={backend}"))
        .arg("Logging:Console:LogLevel=warn")
        .stderr(log)
        .spawn()?;
    let running = Running { pid: child.id(), _server: Killed(child), base, dir };
    let ready = Instant::now() + Duration::from_secs(180);
    while agent().get(format!("{}/ready", running.base)).call().map(|r| r.status() != 200).unwrap_or(true) {
        if Instant::now() > ready {
            bail!("face-server ({backend}) was not ready in 180 s; see {}", running.dir.join("server.log").display());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(running)
}

/// Runs wrk on `url` and prints and returns its figures, marking `failed` on errors.
fn measure(
    label: &str,
    url: &str,
    body: &Path,
    content_type: &str,
    seconds: u64,
    failed: &mut bool,
) -> Result<Figures> {
    report(label, wrk(url, body, content_type, seconds, 4)?, failed)
}

/// Waits for a wrk run and prints and returns its figures, marking `failed` on errors.
fn report(label: &str, child: Child, failed: &mut bool) -> Result<Figures> {
    let out = child.wait_with_output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let f = parse_wrk(&text).with_context(|| format!("reading wrk's output:\n{text}"))?;
    println!(
        "load {label:<46} {:>8.1} req/s  p50 {:>7.1} ms  p99 {:>7.1} ms  ({} requests, {} non-2xx, {} socket errors)",
        f.requests_per_s, f.p50_ms, f.p99_ms, f.requests, f.non_2xx, f.socket_errors
    );
    *failed |= f.non_2xx > 0 || f.socket_errors > 0 || f.requests == 0;
    Ok(f)
}

/// Enrols two persons in a LargePersonGroup, trains it, and runs identify alone and detect and
/// identify at once.
fn identify_phases(run: &Running, seconds: u64, failed: &mut bool) -> Result<()> {
    let base = &run.base;
    let photos = testdata_dir();
    let photo =
        |name: &str| std::fs::read(photos.join(name)).with_context(|| format!("{name}: run `cargo xtask testdata`"));
    json_call(base, "PUT", "/largepersongroups/load", json!({ "name": "load test" }))?;
    for (name, files) in [("obama", ["obama.jpg", "obama2.jpg"]), ("biden", ["biden.jpg", "biden.jpg"])] {
        let p = json_call(base, "POST", "/largepersongroups/load/persons", json!({ "name": name }))?;
        let pid = p["personId"].as_str().context("no personId")?.to_owned();
        for f in files {
            call(
                base,
                "POST",
                &format!("/largepersongroups/load/persons/{pid}/persistedfaces"),
                "application/octet-stream",
                photo(f)?,
            )?;
        }
    }
    call(base, "POST", "/largepersongroups/load/train", "application/json", vec![])?;
    let trained = Instant::now() + Duration::from_secs(60);
    while json_call(base, "GET", "/largepersongroups/load/training", Value::Null)?["status"] != "succeeded" {
        if Instant::now() > trained {
            bail!("training did not finish in 60 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let probe = call(base, "POST", "/detect", "application/octet-stream", photo("obama3.jpg")?)?;
    let face_id = probe[0]["faceId"].as_str().context("no face in obama3.jpg")?.to_owned();
    let identify_body = run.dir.join("identify.json");
    std::fs::write(&identify_body, json!({ "faceIds": [face_id], "largePersonGroupId": "load" }).to_string())?;
    let detect_body: PathBuf = photos.join("obama.jpg");
    let detect_url = format!("{base}/face/v1.0/detect");
    let identify_url = format!("{base}/face/v1.0/identify");
    eprintln!("load: identify alone for {seconds} s");
    measure("identify alone", &identify_url, &identify_body, "application/json", seconds, failed)?;
    eprintln!("load: detect and identify at once for {seconds} s");
    let detect = wrk(&detect_url, &detect_body, "application/octet-stream", seconds, 4)?;
    let identify = wrk(&identify_url, &identify_body, "application/json", seconds, 4)?;
    for (route, child) in [("detect", detect), ("identify", identify)] {
        report(&format!("detect and identify at once: {route}"), child, failed)?;
    }
    Ok(())
}

pub fn load(args: &[String]) -> Result<()> {
    let mut seconds: u64 = 10;
    let mut backends: Vec<String> = ["tract", "onnxruntime", "guest"].map(String::from).to_vec();
    let mut rest = args.iter();
    while let Some(flag) = rest.next() {
        match (flag.as_str(), rest.next()) {
            ("--seconds", Some(n)) => seconds = n.parse().context("--seconds takes a whole number")?,
            ("--backends", Some(list)) => backends = list.split(',').map(str::to_owned).collect(),
            _ => bail!("usage: cargo xtask load [--seconds N] [--backends tract,onnxruntime,guest]"),
        }
    }
    let (server, guest) = build_server()?;
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) as f64;
    let small = crate::util::photo_640x480()?;
    let large = testdata_dir().join("obama.jpg");
    let size = |p: &Path| -> Result<String> {
        let img = face_core::decode(&std::fs::read(p)?, &Default::default())?;
        Ok(format!("{}x{}", img.width(), img.height()))
    };
    let photos = [(size(&small)?, small), (size(&large)?, large)];
    let mut failed = false;
    // (backend, photo, figures), and (backend, resident MB, peak MB).
    let mut rows: Vec<(String, String, Figures)> = Vec::new();
    let mut memory: Vec<(String, f64, f64)> = Vec::new();
    for (i, backend) in backends.iter().enumerate() {
        let run = start(&server, &guest, backend)?;
        let detect_url = format!("{}/face/v1.0/detect", run.base);
        for (label, body) in &photos {
            eprintln!("load: {backend}: detect {label} for {seconds} s");
            let f = measure(
                &format!("{backend}: detect {label}"),
                &detect_url,
                body,
                "application/octet-stream",
                seconds,
                &mut failed,
            )?;
            rows.push((backend.clone(), label.clone(), f));
        }
        let (rss, peak) = memory_mb(run.pid);
        memory.push((backend.clone(), rss, peak));
        if i == 0 {
            identify_phases(&run, seconds, &mut failed)?;
        }
        let ok = agent().get(format!("{}/ready", run.base)).call().map(|r| r.status() == 200).unwrap_or(false);
        if failed || !ok {
            bail!(
                "load: errors under load with backend {backend} (server log: {})",
                run.dir.join("server.log").display()
            );
        }
        let _ = std::fs::remove_dir_all(&run.dir);
    }
    println!("\nREST detect (faceId on), wrk 4 connections, {seconds} s each, {cores} cores, pool size = cores:\n");
    println!("| backend | photo | req/s | req/s per core | p50 ms | p99 ms | throughput / guest backend |");
    println!("|---|---|---|---|---|---|---|");
    for (backend, photo, f) in &rows {
        let guest = rows.iter().find(|(b, p, _)| b == "guest" && p == photo).map(|(_, _, g)| g.requests_per_s);
        let ratio = guest.map(|g| format!("{:.2}", f.requests_per_s / g)).unwrap_or_else(|| "-".into());
        println!(
            "| {backend} | {photo} | {:.1} | {:.1} | {:.1} | {:.1} | {ratio} |",
            f.requests_per_s,
            f.requests_per_s / cores,
            f.p50_ms,
            f.p99_ms
        );
    }
    println!("\nface-server resident memory after the detect runs (pool size = cores):\n");
    println!("| backend | resident MB | peak resident MB |");
    println!("|---|---|---|");
    for (backend, rss, peak) in &memory {
        println!("| {backend} | {rss:.0} | {peak:.0} |");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_wrk_output() {
        let out = "Running 5s test @ http://127.0.0.1:1/face/v1.0/detect\n  1 threads and 4 connections\n\
            \x20 Latency Distribution\n     50%  150.20ms\n     75%  160.00ms\n     90%  170.00ms\n     99%    1.20s\n\
            \x20 120 requests in 5.01s, 100.00KB read\n  Socket errors: connect 0, read 1, write 0, timeout 2\n\
            \x20 Non-2xx or 3xx responses: 3\nRequests/sec:     23.95\nTransfer/sec:     19.96KB\n";
        let f = parse_wrk(out).unwrap();
        assert_eq!((f.requests, f.non_2xx, f.socket_errors), (120, 3, 3));
        assert!(
            (f.p50_ms - 150.2).abs() < 1e-9
                && (f.p99_ms - 1200.0).abs() < 1e-9
                && (f.requests_per_s - 23.95).abs() < 1e-9
        );
    }
}
