//! `cargo xtask bench`: in one run, on the same 640x480 photo and the same ONNX files, the median
//! milliseconds of each model call and of the whole detect-and-embed pipeline for: the native
//! core, the core on wasm32-wasip1 in wasmtime, the guest component in face-server's own wasmtime
//! set-up, the npm package in Node and in headless Chromium, and onnxruntime with one thread; with
//! ratios, wasm sizes and start-up times; then `cargo xtask stages` (where one REST detect's time
//! goes, per backend and photo size: 640x480, 1920x1080, 4032x3024) and `cargo xtask load` (REST
//! detect throughput for the three sizes and face-server's resident memory for each engine
//! backend) in the same run.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::util::{Flags, cache_dir, models_dir, photo_640x480, python, repo_root, target_dir};

/// Runs a command and parses the last line of its standard output as JSON.
fn json_of(cmd: &mut Command, what: &str) -> Result<Value> {
    eprintln!("bench: {what}");
    let out = cmd.output().with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        bail!("{what} failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).with_context(|| format!("{what} printed {line:?}"))
}

fn ms(v: &Value, path: &[&str]) -> f64 {
    path.iter().fold(v, |v, k| &v[*k]).as_f64().unwrap_or(f64::NAN)
}

fn gzip_size(path: &Path) -> Result<u64> {
    let out = Command::new(python()?)
        .args(["-c", "import gzip,sys; print(len(gzip.compress(open(sys.argv[1],'rb').read(), 9)))"])
        .arg(path)
        .output()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().context("gzip size")
}

pub fn bench(args: &[String]) -> Result<()> {
    let usage = "usage: cargo xtask bench [--runs N] [--load-seconds N (0: no load run)]";
    let flags = Flags::parse(args, usage, &["--runs", "--load-seconds"], &[])?;
    let runs: usize = flags.value("--runs", 20)?;
    if runs < 1 {
        return Err(flags.refuse("--runs takes a number of at least 1"));
    }
    let load_seconds: u64 = flags.value("--load-seconds", 8)?;
    let photo = photo_640x480()?;
    let models = models_dir();
    let runs_s = runs.to_string();
    let cargo = env!("CARGO");

    let example = |target: Option<&str>| -> Result<Command> {
        let mut cmd = Command::new(cargo);
        cmd.args(["run", "--quiet", "--package", "face-core", "--example", "bench_models"]);
        if let Some(t) = target {
            cmd.args(["--target", t]);
            crate::wasm::wasip1_runner(&mut cmd, &[photo.parent().expect("parent")])?;
        }
        cmd.arg("--").arg(&models).arg(&photo).arg(&runs_s);
        Ok(cmd)
    };
    let native = json_of(&mut example(None)?, "native core")?;
    let wasip1 = json_of(&mut example(Some("wasm32-wasip1"))?, "core on wasm32-wasip1 in wasmtime")?;

    crate::wasm::guest(&[])?;
    let guest_wasm = target_dir().join("wasm32-wasip2/debug/face_wasm.wasm");
    let guest_cache = cache_dir().join("bench/guest-cache");
    let _ = std::fs::remove_dir_all(&guest_cache);
    // The guest with each backend: face-server's own wasmtime set-up; for the host backends also
    // face-core natively on the same host graphs.
    let mut backends = Vec::new();
    for backend in ["guest", "tract", "onnxruntime"] {
        backends.push(json_of(
            Command::new(cargo)
                .args(["run", "--quiet", "--package", "face-host", "--example", "bench_guest", "--"])
                .arg(&guest_wasm)
                .arg(&models)
                .arg(&guest_cache)
                .arg(&photo)
                .arg(&runs_s)
                .arg(backend),
            &format!("guest component in face-server's wasmtime, backend {backend}"),
        )?);
    }
    let [guest, guest_tract, guest_ort] = <[Value; 3]>::try_from(backends).expect("three backends");

    crate::npm::npm(&[])?;
    let tests = crate::npm::test_tools()?;
    let js = json_of(
        Command::new("node")
            .arg(tests.join("bench.mjs"))
            .arg(crate::npm::pkg_dir())
            .arg(&models)
            .arg(&photo)
            .arg(&runs_s),
        "npm package in Node and headless Chromium",
    )?;

    let ort = json_of(
        Command::new(python()?).arg(repo_root().join("xtask/bench_ort.py")).arg(&models).arg(&runs_s),
        "onnxruntime, one thread",
    )?;

    println!("\nModel calls, median ms of {runs} (same input shapes as the engine feeds):\n");
    println!(
        "| model | native tract | wasm32 in wasmtime | wasm / native | onnxruntime 1 thread | native / onnxruntime |"
    );
    println!("|---|---|---|---|---|---|");
    let names: Vec<String> = native["models"].as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default();
    for m in names.iter().map(String::as_str) {
        let (n, w, o) = (ms(&native, &["models", m]), ms(&wasip1, &["models", m]), ms(&ort, &[m]));
        println!("| {m} | {n:.2} | {w:.2} | {:.2} | {o:.2} | {:.2} |", w / n, n / o);
    }
    let n = ms(&native, &["pipeline"]);
    // The pipeline's models: the detector, the 68 landmarks and SFace (the first three of MODELS).
    let ort_pipeline: f64 = face_core::MODELS[..3].iter().map(|m| ms(&ort, &[m.file])).sum();
    println!(
        "\nWhole pipeline on a 640x480 photo with one face (decode, detect, 68 landmarks, SFace embedding), median ms:\n"
    );
    println!("| engine | ms | ratio to native |");
    println!("|---|---|---|");
    let native_ort = ms(&guest_ort, &["native_pipeline"]);
    for (name, v) in [
        ("native core (tract, x86-64)", n),
        ("native core, models on the host's onnxruntime backend (1 intra-op thread)", native_ort),
        ("face-server guest, backend guest (tract inside wasm, simd128)", ms(&guest, &["pipeline"])),
        ("face-server guest, backend tract (wasi:nn, host tract)", ms(&guest_tract, &["pipeline"])),
        ("face-server guest, backend onnxruntime (wasi:nn, host onnxruntime)", ms(&guest_ort, &["pipeline"])),
        ("core module on wasm32-wasip1 in wasmtime (simd128)", ms(&wasip1, &["pipeline"])),
        ("npm package in Node", ms(&js, &["node"])),
        ("npm package in headless Chromium", ms(&js, &["chromium"])),
        ("onnxruntime 1 thread, the three model calls only", ort_pipeline),
    ] {
        println!("| {name} | {v:.2} | {:.2} |", v / n);
    }
    println!("\nThe sandbox's cost per backend (guest / the same kernels natively):\n");
    println!("| backend | guest ms | native ms | guest / native |");
    println!("|---|---|---|---|");
    for (name, g, native) in [
        ("guest (tract inside wasm) vs native tract", ms(&guest, &["pipeline"]), n),
        ("tract", ms(&guest_tract, &["pipeline"]), ms(&guest_tract, &["native_pipeline"])),
        ("onnxruntime", ms(&guest_ort, &["pipeline"]), native_ort),
    ] {
        println!("| {name} | {g:.2} | {native:.2} | {:.2} |", g / native);
    }
    let built_wasm = crate::npm::bindgen_dir().join("face_engine_bg.wasm");
    let npm_wasm = crate::npm::pkg_dir().join("dist/face_engine_bg.wasm");
    println!("\nSizes and start-up:\n");
    println!("| what | figure |");
    println!("|---|---|");
    for (name, path) in [
        ("guest component (wasip2)", &guest_wasm),
        ("npm wasm as wasm-bindgen builds it", &built_wasm),
        ("npm wasm as shipped (binaryen wasm-opt -O3)", &npm_wasm),
    ] {
        let raw = std::fs::metadata(path)?.len();
        println!("| {name}: raw / gzip -9 | {:.1} MB / {:.1} MB |", raw as f64 / 1e6, gzip_size(path)? as f64 / 1e6);
    }
    println!(
        "| guest: compiling the component with Cranelift (face-server compile-guest) | {:.0} ms |",
        ms(&guest, &["compile_ms"])
    );
    for (name, b) in [("guest", &guest), ("tract", &guest_tract), ("onnxruntime", &guest_ort)] {
        println!(
            "| face-server engine start, backend {name}: verified precompiled guest, models loaded, one instance | {:.0} ms |",
            ms(b, &["startup_ms"])
        );
    }
    println!("| npm package in Node: FaceEngine.create (wasm + 4 models) | {:.0} ms |", ms(&js, &["startup_node"]));
    println!();
    crate::stages::stages(&["--runs".to_owned(), runs.min(9).to_string()])?;
    if load_seconds > 0 {
        println!();
        crate::load::load(&["--seconds".to_owned(), load_seconds.to_string()])?;
    }
    Ok(())
}
