//! `cargo xtask image-test [--build] [--compose]`: the container image, run as an operator would.
//! hadolint lints the Dockerfile. Then the image is built: by default the runtime stage over the
//! dev-profile folder `cargo xtask package` makes (what the test command does on every run);
//! with `--build`, the whole Dockerfile, build stage included (`cargo xtask image`). Checked with
//! the container engine (podman here):
//! - each of `Eula`, `Billing`, `ApiKey` left out: the container exits non-zero naming it;
//! - `run -p PORT:5000 --memory 6g --cpus 2 IMAGE Eula=accept Billing=<face-meter> ApiKey=<key>`:
//!   /ready within READY_S, the HEALTHCHECK healthy, the server running as uid 10001, detect
//!   answering, JSON logs in the folder bound to /output;
//! - `stop` while a detect is in flight (its body half sent): the detect is answered, the
//!   container exits 0 and the meter has the usage;
//! - `Engine:Backend=onnxruntime` inside the image;
//! - the official Python client's full run against the image (tests/e2e/python_client.py
//!   --container), whose restart is `stop`, `rm` and a new `run` on the same volume;
//! - compose.yaml and deploy/kubernetes.yaml: their face-server settings accepted by the image's
//!   `check-settings`; with `--compose`, the stack started and the client's run through both
//!   hosts on PostgreSQL (module `deploy`).

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::container::{Engine, build, report};
use crate::util::{Flags, agent, cache_dir, metric, python, repo_root, run, testdata_dir, wait_until};

/// How long a container may take to answer /ready (the guest comes precompiled in the image).
const READY_S: u64 = 120;
/// The key of every container here, the Python client's (tests/e2e/python_client.py), which the meter accepts.
const KEY: &str = "e2e-key";

fn get(url: &str, key: Option<&str>) -> Option<(u16, String)> {
    let mut req = agent().get(url);
    if let Some(k) = key {
        req = req.header("Ocp-Apim-Subscription-Key", k);
    }
    let r = req.call().ok()?;
    let status = r.status().as_u16();
    Some((status, r.into_body().read_to_string().unwrap_or_default()))
}

/// Containers and volumes made here, removed when dropped.
struct Cleanup<'a> {
    engine: &'a Engine,
    containers: Vec<String>,
    volumes: Vec<String>,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        for c in &self.containers {
            let _ = self.engine.output(&["rm", "-f", c]);
        }
        for v in &self.volumes {
            let _ = self.engine.output(&["volume", "rm", "-f", v]);
        }
    }
}

pub fn image_test(args: &[String]) -> Result<()> {
    const USAGE: &str = "usage: cargo xtask image-test [--build] [--compose]";
    let flags = Flags::parse(args, USAGE, &[], &["--build", "--compose"])?;
    let (full, compose) = (flags.on("--build"), flags.on("--compose"));
    let root = repo_root();
    let hadolint = python()?.with_file_name("hadolint");
    run(Command::new(&hadolint).arg("--config").arg(root.join(".hadolint.yaml")).arg(root.join("Dockerfile")))?;

    let engine = Engine::find()?;
    let built = if full {
        build(&engine, None, "face-server:latest", false)?
    } else {
        let opt = cache_dir().join("image-test/opt-face");
        crate::package::package(&[opt.display().to_string()])?;
        build(&engine, Some(&opt), "face-server:test", false)?
    };
    report(&engine, &built)?;
    let image = built.tag.as_str();
    let started = Instant::now();
    let suffix = std::process::id();
    let mut cleanup = Cleanup { engine: &engine, containers: Vec::new(), volumes: Vec::new() };

    start_contract(&engine, image)?;
    crate::deploy::check_files(&engine, image)?;

    // The meter, from the image itself, on this machine's network; the servers reach it by the
    // name podman gives this machine inside a container.
    let meter_port = crate::util::free_port()?;
    let meter = format!("face-image-test-meter-{suffix}");
    cleanup.containers.push(meter.clone());
    engine.ok(&[
        "run",
        "-d",
        "--name",
        &meter,
        "--network",
        "host",
        "--entrypoint",
        "/opt/face/face-meter",
        image,
        &format!("Keys={KEY}"),
        &format!("Address=0.0.0.0:{meter_port}"),
        "DataDirectory=/tmp/meter",
    ])?;
    let totals_url = format!("http://127.0.0.1:{meter_port}/v1/totals");
    wait_until("the meter answers", Duration::from_secs(30), || get(&totals_url, Some(KEY)).is_some())?;
    let billing = format!("http://host.containers.internal:{meter_port}/");

    operator_run(&engine, image, &billing, &totals_url, &mut cleanup, suffix)?;
    onnxruntime_run(&engine, image, &billing, &mut cleanup, suffix)?;

    // The official Python client's full run against the image.
    run(Command::new(python()?)
        .arg(root.join("tests/e2e/python_client.py"))
        .args(["--container", image, "--billing", &billing])
        .envs(engine.env())
        .arg("--photos")
        .arg(testdata_dir()))?;
    drop(cleanup);
    if compose {
        crate::deploy::compose(&engine, image)?;
    }
    eprintln!(
        "image-test: {image} ({:.0} MB) passed every check in {:.0} s: start-up contract, /ready, HEALTHCHECK, \
         uid 10001, JSON logs on /output, stop draining a request with its usage metered, onnxruntime, the Python client's run",
        built.size as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Each of the three required arguments left out: the container exits non-zero with a line naming it.
fn start_contract(engine: &Engine, image: &str) -> Result<()> {
    let all = ["Eula=accept", "Billing=http://127.0.0.1:9/", "ApiKey=k"];
    for (i, missing) in ["Eula", "Billing", "ApiKey"].iter().enumerate() {
        let mut argv = vec!["run", "--rm", image];
        argv.extend(all.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, a)| *a));
        let out = engine.output(&argv)?;
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        if out.status.success() || !text.contains(missing) {
            bail!("without {missing}, the container exited with {} and said:\n{text}", out.status);
        }
    }
    eprintln!("image-test: without Eula, Billing or ApiKey the container exits non-zero naming it");
    Ok(())
}

/// Starts `name` from `image` published on a free loopback port; waits for /ready. Returns the base URL.
fn start(engine: &Engine, name: &str, options: &[&str], image: &str, settings: &[&str]) -> Result<String> {
    let port = crate::util::free_port()?;
    let publish = format!("127.0.0.1:{port}:5000");
    let mut argv = vec!["run", "-d", "--name", name, "-p", &publish, "--memory", "6g", "--cpus", "2"];
    if engine.program == "docker" {
        // podman names this machine so inside every container; docker, when asked.
        argv.extend(["--add-host", "host.containers.internal:host-gateway"]);
    }
    argv.extend(options);
    argv.push(image);
    argv.extend(["Eula=accept", "Engine:PoolSize=2"]);
    argv.extend(settings);
    engine.ok(&argv)?;
    let base = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    let ready = wait_until(&format!("{name} answers /ready"), Duration::from_secs(READY_S), || {
        get(&format!("{base}/ready"), None).is_some_and(|(s, _)| s == 200)
    });
    if let Err(e) = ready {
        let logs = engine.output(&["logs", name]).map(|o| String::from_utf8_lossy(&o.stderr).into_owned());
        bail!("{e}\n{}", logs.unwrap_or_default());
    }
    eprintln!("image-test: {name} ready in {:.1} s", started.elapsed().as_secs_f64());
    Ok(base)
}

fn detect(base: &str) -> Result<()> {
    let body = std::fs::read(testdata_dir().join("obama.jpg"))?;
    let response = agent()
        .post(format!("{base}/face/v1.0/detect?returnFaceAttributes=age,gender"))
        .header("Ocp-Apim-Subscription-Key", KEY)
        .header("Content-Type", "application/octet-stream")
        .send(&body[..])?;
    let status = response.status().as_u16();
    let text = response.into_body().read_to_string()?;
    let faces: serde_json::Value = serde_json::from_str(&text).with_context(|| format!("detect: {status} {text}"))?;
    if status != 200 || faces.as_array().is_none_or(|f| f.len() != 1) {
        bail!("detect answered {status}: {text}");
    }
    Ok(())
}

fn billed(totals_url: &str) -> Result<u64> {
    let (status, text) = get(totals_url, Some(KEY)).context("the meter does not answer")?;
    let v: serde_json::Value = serde_json::from_str(&text).with_context(|| format!("meter totals: {status} {text}"))?;
    Ok(v["totals"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["meter"] == "face.transactions"))
        .and_then(|r| r["quantity"].as_u64())
        .unwrap_or(0))
}

/// The Azure page's `docker run`, with the data volume and /output bound to a folder here.
fn operator_run(
    engine: &Engine,
    image: &str,
    billing: &str,
    totals_url: &str,
    cleanup: &mut Cleanup,
    suffix: u32,
) -> Result<()> {
    let name = format!("face-image-test-{suffix}");
    let volume = format!("{name}-data");
    cleanup.containers.push(name.clone());
    cleanup.volumes.push(volume.clone());
    // /output as an operator binds it: a folder the container's user 10001 may write.
    let output = cache_dir().join(format!("image-test/output-{suffix}"));
    let _ = std::fs::remove_dir_all(&output);
    std::fs::create_dir_all(&output)?;
    run(Command::new("chown").arg("10001:10001").arg(&output))?;
    let data_mount = format!("{volume}:/data");
    let output_mount = format!("{}:/output", output.display());
    let billing_arg = format!("Billing={billing}");
    let key_arg = format!("ApiKey={KEY}");
    let base = start(
        engine,
        &name,
        &["-v", &data_mount, "-v", &output_mount],
        image,
        &[&billing_arg, &key_arg, "Logging:Disk:Format=json", "Billing:IntervalSeconds=3600"],
    )?;
    // The HEALTHCHECK, run by the engine as its schedule would.
    if engine.program == "podman" {
        let health = engine.output(&["healthcheck", "run", &name])?;
        if !health.status.success() {
            bail!("the HEALTHCHECK is not healthy: {}", String::from_utf8_lossy(&health.stdout));
        }
    }
    let status = engine.ok(&["exec", &name, "cat", "/proc/1/status"])?;
    let uid = status.lines().find_map(|l| l.strip_prefix("Uid:")).map(|v| v.split_whitespace().collect::<Vec<_>>());
    if uid.as_deref().is_none_or(|ids| ids.iter().any(|id| *id != "10001")) {
        bail!("the server does not run as uid 10001: {uid:?}");
    }
    detect(&base)?;
    // The disk log is written by a background writer: the detect's line arrives shortly.
    let log_path = output.join("face-server.log");
    let detect_logged = || {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        log.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .any(|l| l["fields"]["path"] == "/face/v1.0/detect" && l["fields"]["status"] == 200)
    };
    if let Err(e) = wait_until("the JSON log on /output has the detect's line", Duration::from_secs(30), detect_logged)
    {
        bail!("{e}:\n{}", std::fs::read_to_string(&log_path).unwrap_or_default());
    }
    eprintln!("image-test: HEALTHCHECK healthy, uid 10001, detect answered, JSON logs on /output");

    // `stop` with a detect in flight: its body half sent, so it is still in flight when the
    // SIGTERM comes; the rest goes once the server has stopped accepting connections.
    let body = std::fs::read(testdata_dir().join("obama.jpg"))?;
    let address = base.trim_start_matches("http://").to_owned();
    let mut stream = TcpStream::connect(&address)?;
    stream.set_read_timeout(Some(Duration::from_secs(120)))?;
    let head = format!(
        "POST /face/v1.0/detect HTTP/1.1\r\nHost: {address}\r\nOcp-Apim-Subscription-Key: {KEY}\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    let half = body.len() / 2;
    stream.write_all(&body[..half])?;
    wait_until("the detect is in flight", Duration::from_secs(60), || {
        metric(&base, "face_requests_in_flight") == Some(1.0)
    })?;
    let stopper = {
        let (engine, name) = (engine.clone(), name.clone());
        std::thread::spawn(move || engine.output(&["stop", "-t", "60", &name]))
    };
    // Stopping: it no longer answers new requests (refused by podman's forwarding; docker's
    // proxy accepts and then closes).
    wait_until("the server stops answering new requests", Duration::from_secs(60), || {
        get(&format!("{base}/ready"), None).is_none()
    })?;
    stream.write_all(&body[half..])?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    if !answer.starts_with("HTTP/1.1 200") || !answer.contains("faceRectangle") {
        bail!("the detect in flight at `stop` was not answered: {answer}");
    }
    let stopped = stopper.join().map_err(|_| anyhow::anyhow!("the stop thread panicked"))??;
    let code = engine.ok(&["inspect", "--format", "{{.State.ExitCode}}", &name])?;
    if !stopped.status.success() || code.trim() != "0" {
        bail!("`stop` ended the container with exit code {}", code.trim());
    }
    // Two detects, each billed once; the heartbeat is off, so only the shutdown's flush sends them.
    let total = billed(totals_url)?;
    if total != 2 {
        bail!("the meter has {total} transactions after two detects and a stop; expected 2");
    }
    eprintln!("image-test: `stop` drained the detect in flight, exited 0, and the meter has both detects");
    Ok(())
}

/// `Engine:Backend=onnxruntime` inside the image.
fn onnxruntime_run(engine: &Engine, image: &str, billing: &str, cleanup: &mut Cleanup, suffix: u32) -> Result<()> {
    let name = format!("face-image-test-ort-{suffix}");
    cleanup.containers.push(name.clone());
    let billing_arg = format!("Billing={billing}");
    let key_arg = format!("ApiKey={KEY}");
    let base = start(engine, &name, &[], image, &[&billing_arg, &key_arg, "Engine:Backend=onnxruntime"])?;
    detect(&base)?;
    engine.ok(&["stop", "-t", "60", &name])?;
    eprintln!("image-test: Engine:Backend=onnxruntime answers detect inside the image");
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_checks_run_the_dockerfile_entrypoint_contract() {
        let text = std::fs::read_to_string(crate::util::repo_root().join("Dockerfile")).unwrap();
        for needed in [
            "EXPOSE 5000",
            "VOLUME [\"/data\"]",
            "HEALTHCHECK",
            "USER 10001:10001",
            "STOPSIGNAL SIGTERM",
            "ENTRYPOINT [\"/opt/face/face-server\"]",
        ] {
            assert!(text.contains(needed), "the Dockerfile lacks {needed}");
        }
    }
}
