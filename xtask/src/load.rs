//! `cargo xtask load [--seconds N] [--backends tract,onnxruntime,guest]`: a bounded load test on
//! loopback. For each engine backend (default: all three) it starts the real face-server (fresh
//! SQLite directory, pool size = cores) and runs wrk (Debian's `wrk`, 4 connections) on detect
//! (faceId on, the default) with one-face photos of 640x480, 1920x1080 and 4032x3024 (12
//! megapixels, `util::photo_sized`), N seconds each (default 10), and reads the server's resident
//! memory after them. With the first backend it also enrols
//! two persons in a LargePersonGroup, trains it, and runs identify alone and detect and identify
//! at once. Prints throughput, per core, p50/p99 latency and the ratio to the `guest` backend
//! measured in the same run; fails on any non-2xx answer or socket error.
//!
//! `--hosts N` (N >= 2) measures scale-out instead: N face-servers on one throwaway PostgreSQL
//! cluster; detect with all the load on the first host, then the same connections spread over
//! every host (the ratio shows whether the shared database holds them back: on loopback the hosts
//! share the cores, so no speed-up is expected); a training on the first host and the time until
//! the second answers from it; identify on the second host right after, against the first.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::server::build_server;
use crate::util::{Flags, Killed, agent, cache_dir, free_port, memory_mb, models_dir, repo_root, testdata_dir};

pub(crate) const KEY: &str = "load-key";

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
pub(crate) struct Running {
    _server: Killed,
    pid: u32,
    pub(crate) base: String,
    pub(crate) dir: PathBuf,
}

pub(crate) fn start(server: &Path, guest: &Path, backend: &str) -> Result<Running> {
    start_with(server, guest, backend, &[], backend)
}

/// [`start`] with more settings, its files under a folder named for `label`.
fn start_with(server: &Path, guest: &Path, backend: &str, extra: &[String], label: &str) -> Result<Running> {
    let dir = std::env::temp_dir().join(format!("face-load-{}-{label}", std::process::id()));
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
        .args(extra)
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
    let flags = Flags::parse(
        args,
        "usage: cargo xtask load [--seconds N] [--backends tract,onnxruntime,guest] [--hosts N]",
        &["--seconds", "--backends", "--hosts"],
        &[],
    )?;
    let seconds: u64 = flags.value("--seconds", 10)?;
    let backends: Vec<String> =
        flags.text("--backends").unwrap_or("tract,onnxruntime,guest").split(',').map(str::to_owned).collect();
    let hosts: usize = flags.value("--hosts", 1)?;
    let (server, guest) = build_server()?;
    if hosts > 1 {
        return load_hosts(&server, &guest, seconds, hosts);
    }
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) as f64;
    let photos: Vec<(String, PathBuf)> = crate::util::PHOTO_SIZES
        .iter()
        .map(|&(w, h)| -> Result<(String, PathBuf)> { Ok((format!("{w}x{h}"), crate::util::photo_sized(w, h)?)) })
        .collect::<Result<_>>()?;
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

/// `--hosts N`: see the module's documentation.
fn load_hosts(server: &Path, guest: &Path, seconds: u64, hosts: usize) -> Result<()> {
    let cluster = crate::postgres::Cluster::start()?;
    let settings = ["Storage:Scenario=Postgres".to_owned(), format!("Storage:ConnectionString={}", cluster.url)];
    let runs: Vec<Running> = (0..hosts)
        .map(|h| start_with(server, guest, "tract", &settings, &format!("host-{}", h + 1)))
        .collect::<Result<_>>()?;
    let (base1, base2) = (&runs[0].base, &runs[1].base);
    let mut failed = false;
    let small = crate::util::photo_640x480()?;
    let connections = 4u32;
    eprintln!("load: detect on host 1 alone for {seconds} s");
    let one = report(
        "detect, host 1 alone",
        wrk(&format!("{base1}/face/v1.0/detect"), &small, "application/octet-stream", seconds, connections)?,
        &mut failed,
    )?;
    eprintln!("load: detect spread over {hosts} hosts for {seconds} s");
    let per = (connections / hosts as u32).max(1);
    let children: Vec<Child> = runs
        .iter()
        .map(|r| wrk(&format!("{}/face/v1.0/detect", r.base), &small, "application/octet-stream", seconds, per))
        .collect::<Result<_>>()?;
    let mut spread = Vec::new();
    for (h, child) in children.into_iter().enumerate() {
        spread.push(report(&format!("detect, host {} of {hosts}", h + 1), child, &mut failed)?);
    }
    let spread_rps: f64 = spread.iter().map(|f| f.requests_per_s).sum();
    let spread_p99 = spread.iter().map(|f| f.p99_ms).fold(0.0, f64::max);

    // A training on host 1, and host 2 answering from it.
    let photos = testdata_dir();
    let photo =
        |name: &str| std::fs::read(photos.join(name)).with_context(|| format!("{name}: run `cargo xtask testdata`"));
    let person = |name: &str, files: &[&str]| -> Result<String> {
        let p = json_call(base1, "POST", "/largepersongroups/hosts/persons", json!({ "name": name }))?;
        let pid = p["personId"].as_str().context("no personId")?.to_owned();
        for f in files {
            let path = format!("/largepersongroups/hosts/persons/{pid}/persistedfaces");
            call(base1, "POST", &path, "application/octet-stream", photo(f)?)?;
        }
        Ok(pid)
    };
    let train = || -> Result<Instant> {
        call(base1, "POST", "/largepersongroups/hosts/train", "application/json", vec![])?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if json_call(base1, "GET", "/largepersongroups/hosts/training", Value::Null)?["status"] == "succeeded" {
                return Ok(Instant::now());
            }
            if Instant::now() > deadline {
                bail!("training did not finish in 60 s");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    json_call(base1, "PUT", "/largepersongroups/hosts", json!({ "name": "scale-out" }))?;
    person("obama", &["obama.jpg", "obama2.jpg"])?;
    train()?;
    // Host 2 detects the probe and loads the first training.
    let probe = call(base2, "POST", "/detect", "application/octet-stream", photo("biden.jpg")?)?;
    let face_id = probe[0]["faceId"].as_str().context("no face in biden.jpg")?.to_owned();
    let identify = json!({ "faceIds": [face_id], "largePersonGroupId": "hosts" });
    let top = |base: &str| -> Result<(String, f64)> {
        let t = Instant::now();
        let v = json_call(base, "POST", "/identify", identify.clone())?;
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        Ok((v[0]["candidates"][0]["personId"].as_str().unwrap_or_default().to_owned(), ms))
    };
    top(base2)?;
    let biden = person("biden", &["biden.jpg"])?;
    let ended = train()?;
    let deadline = ended + Duration::from_secs(30);
    let propagated_ms = loop {
        if top(base2)?.0 == biden {
            break ended.elapsed().as_secs_f64() * 1000.0;
        }
        if Instant::now() > deadline {
            bail!("host 2 did not answer from host 1's training within 30 s");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let mut after: Vec<f64> = (0..20).map(|_| top(base2).map(|t| t.1)).collect::<Result<_>>()?;
    let mut baseline: Vec<f64> = (0..20).map(|_| top(base1).map(|t| t.1)).collect::<Result<_>>()?;
    after.sort_by(f64::total_cmp);
    baseline.sort_by(f64::total_cmp);
    let p50 = |v: &[f64]| crate::stats::percentile(v, 0.5);

    println!(
        "\n{hosts} face-servers on one PostgreSQL (loopback, {} cores shared), detect 640x480 with wrk, {connections} connections in all, {seconds} s each:\n",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );
    println!("| figure | value | baseline in the same run | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| detect req/s: spread over {hosts} hosts / all on host 1 | {spread_rps:.1} | {:.1} | {:.2} |",
        one.requests_per_s,
        spread_rps / one.requests_per_s
    );
    println!(
        "| detect p99 ms: spread / host 1 alone | {spread_p99:.1} | {:.1} | {:.2} |",
        one.p99_ms,
        spread_p99 / one.p99_ms
    );
    println!("| from a training's end on host 1 to host 2 answering from it, ms | {propagated_ms:.0} | | |");
    println!(
        "| identify on host 2 right after, p50 / max ms (20 calls) | {:.1} / {:.1} | {:.1} / {:.1} on host 1 | {:.2} (p50) |",
        p50(&after),
        after.last().copied().unwrap_or(0.0),
        p50(&baseline),
        baseline.last().copied().unwrap_or(0.0),
        p50(&after) / p50(&baseline)
    );
    if failed || propagated_ms > 2000.0 {
        bail!(
            "load --hosts: errors under load, or host 2 took over 2 s to answer from host 1's training (logs under {})",
            runs[0].dir.parent().map_or_else(String::new, |d| d.display().to_string())
        );
    }
    for r in &runs {
        let _ = std::fs::remove_dir_all(&r.dir);
    }
    drop(runs);
    drop(cluster);
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
