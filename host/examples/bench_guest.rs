//! Times the guest in face-server's own wasmtime set-up with one backend, for `cargo xtask
//! bench`: compiling the guest, pool start-up (the verified precompiled guest, one instance
//! initialised) and
//! the whole pipeline on one photo; for the host backends also face-core run natively on the same
//! host graphs (the kernels without the sandbox). Prints JSON: {"backend", "compile_ms",
//! "startup_ms", "pipeline": median_ms, "native_pipeline": median_ms or null}.
//!
//!     cargo run --example bench_guest -- GUEST_WASM MODELS_DIR CACHE_DIR PHOTO RUNS [BACKEND]

#![expect(clippy::print_stdout, reason = "it prints its JSON on stdout for cargo xtask")]

use std::time::Instant;

use face_host::engine::{BackendKind, EngineConfig, EnginePool, ModelFiles, guest, native_engine};

fn median(mut times: Vec<f64>) -> f64 {
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (wasm, models, cache, photo, runs, backend) = match args.as_slice() {
        [w, m, c, p, r] => (w, m, c, p, r, BackendKind::Guest),
        [w, m, c, p, r, b] => (w, m, c, p, r, b.parse().expect("BACKEND is tract, onnxruntime or guest")),
        _ => panic!("usage: bench_guest GUEST_WASM MODELS_DIR CACHE_DIR PHOTO RUNS [BACKEND]"),
    };
    let runs: usize = runs.parse().expect("RUNS is a number");
    let mut config = EngineConfig::new(wasm, ModelFiles::in_dir(models), cache);
    config.pool_size = 1;
    config.backend = backend;
    // Compiling the guest with Cranelift (`face-server compile-guest`; rewrites the same files).
    let start = Instant::now();
    face_host::engine::precompile_guest(std::path::Path::new(wasm)).expect("precompile");
    let compile_ms = start.elapsed().as_secs_f64() * 1e3;
    // A start: the verified precompiled guest, one instance initialised.
    let start = Instant::now();
    let pool = EnginePool::new(config.clone()).await.expect("pool");
    assert_eq!(pool.stats().guest_source, face_host::engine::GuestSource::Precompiled);
    let startup_ms = start.elapsed().as_secs_f64() * 1e3;
    let bytes = std::fs::read(photo).expect("photo");
    let options = guest::DetectOptions {
        min_score: face_core::DEFAULT_MIN_SCORE,
        max_faces: 100,
        landmarks: true,
        recognition: Some(guest::RecognitionModel::Sface),
        attributes: false,
    };
    let mut times = Vec::new();
    for i in 0..runs.max(1) + 3 {
        let start = Instant::now();
        let faces = pool.detect(bytes.clone(), options).await.expect("detect");
        assert_eq!(faces.len(), 1);
        if i >= 3 {
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    let pipeline = median(times);
    let native = if backend == BackendKind::Guest {
        "null".to_owned()
    } else {
        let engine = native_engine(&config).expect("native engine");
        let options =
            face_core::DetectOptions { recognition: Some(face_core::RecognitionModel::SFace), ..Default::default() };
        let mut times = Vec::new();
        for i in 0..runs.max(1) + 3 {
            let start = Instant::now();
            assert_eq!(engine.detect(&bytes, &options).expect("detect").len(), 1);
            if i >= 3 {
                times.push(start.elapsed().as_secs_f64() * 1e3);
            }
        }
        format!("{:.3}", median(times))
    };
    println!(
        "{{\"backend\": \"{}\", \"compile_ms\": {compile_ms:.1}, \"startup_ms\": {startup_ms:.1}, \"pipeline\": {pipeline:.3}, \"native_pipeline\": {native}}}",
        backend.name()
    );
}
