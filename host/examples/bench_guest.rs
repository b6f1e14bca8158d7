//! Times the guest in face-server's own wasmtime set-up, for `cargo xtask bench`: pool start-up
//! (guest compiled or loaded from the cache, one instance initialised with the models) and the
//! whole pipeline on one photo. Prints JSON: {"compile_ms", "startup_ms", "pipeline": median_ms}.
//!
//!     cargo run --example bench_guest -- GUEST_WASM MODELS_DIR CACHE_DIR PHOTO RUNS

use std::time::Instant;

use face_host::engine::{EngineConfig, EnginePool, ModelFiles, guest};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [wasm, models, cache, photo, runs] = args.as_slice() else {
        panic!("usage: bench_guest GUEST_WASM MODELS_DIR CACHE_DIR PHOTO RUNS");
    };
    let runs: usize = runs.parse().expect("RUNS is a number");
    let mut config = EngineConfig::new(wasm, ModelFiles::in_dir(models), cache);
    config.pool_size = 1;
    // First start: compiles the guest when the cache has no copy for this engine.
    let start = Instant::now();
    drop(EnginePool::new(config.clone()).await.expect("pool"));
    let compile_ms = start.elapsed().as_secs_f64() * 1e3;
    // Second start: from the cache.
    let start = Instant::now();
    let pool = EnginePool::new(config).await.expect("pool");
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
    times.sort_by(f64::total_cmp);
    println!(
        "{{\"compile_ms\": {compile_ms:.1}, \"startup_ms\": {startup_ms:.1}, \"pipeline\": {:.3}}}",
        times[times.len() / 2]
    );
}
