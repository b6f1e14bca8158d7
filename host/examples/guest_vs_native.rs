//! For `cargo xtask eval`: the guest component in face-server's wasmtime, with one engine backend,
//! against the native core (plain tract), file by file. Prints JSON: files, faces compared, files
//! whose outcome differs (another face count, an answer against an error, or another kind of
//! error), files both refused with the same kind of error, the largest difference between
//! embedding values and between 27-landmark coordinates (px).
//!
//!     cargo run --example guest_vs_native -- GUEST_WASM MODELS_DIR CACHE_DIR BACKEND FILE...

#![expect(clippy::print_stdout, reason = "it prints its JSON on stdout for cargo xtask")]

use face_host::engine::{BackendKind, CallError, EngineConfig, EnginePool, ModelFiles, guest};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [wasm, models, cache, backend, files @ ..] = args.as_slice() else {
        panic!("usage: guest_vs_native GUEST_WASM MODELS_DIR CACHE_DIR BACKEND FILE...");
    };
    let mut config = EngineConfig::new(wasm, ModelFiles::in_dir(models), cache);
    config.pool_size = 1;
    config.backend = backend.parse::<BackendKind>().expect("BACKEND is tract, onnxruntime or guest");
    let pool = EnginePool::new(config).await.expect("pool");
    let set = face_core::ModelSet::read_with(|name| std::fs::read(std::path::Path::new(models).join(name))).unwrap();
    let native = face_core::Engine::new(&set.bytes()).unwrap();
    let options = guest::DetectOptions {
        min_score: face_core::DEFAULT_MIN_SCORE,
        max_faces: 100,
        landmarks: true,
        recognition: Some(guest::RecognitionModel::Sface),
        attributes: false,
    };
    let native_options =
        face_core::DetectOptions { recognition: Some(face_core::RecognitionModel::SFace), ..Default::default() };
    let (mut faces, mut count_mismatch, mut max_embedding, mut max_landmark) = (0usize, 0usize, 0f32, 0f32);
    let mut same_errors = 0usize;
    for file in files {
        let bytes = std::fs::read(file).expect("file");
        let ours = pool.detect(bytes.clone(), options).await;
        let theirs = native.detect(&bytes, &native_options);
        match (ours, theirs) {
            (Ok(g), Ok(n)) if g.len() == n.len() => {
                for (g, n) in g.iter().zip(&n) {
                    faces += 1;
                    let e = &n.embedding.as_ref().expect("embedding").vector;
                    let ge = &g.embedding.as_ref().expect("embedding").vector;
                    max_embedding = ge.iter().zip(e).map(|(a, b)| (a - b).abs()).fold(max_embedding, f32::max);
                    let points = n.landmarks.expect("landmarks").to_array();
                    for (a, b) in g.landmarks27.iter().zip(points.iter()) {
                        max_landmark = max_landmark.max((a.x - b.x).abs()).max((a.y - b.y).abs());
                    }
                }
            }
            // The guest's error case carries the core error's kind as its name.
            (Err(CallError::Guest(g)), Err(n))
                if format!("{g:?}").split('(').next().is_some_and(|case| case.ends_with(n.kind())) =>
            {
                same_errors += 1
            }
            (ours, theirs) => {
                eprintln!(
                    "{file}: the guest gives {:?}, the native core {:?}",
                    ours.map(|f| f.len()),
                    theirs.map(|f| f.len())
                );
                count_mismatch += 1
            }
        }
    }
    println!(
        "{{\"files\": {}, \"faces\": {faces}, \"count_mismatch\": {count_mismatch}, \"same_errors\": {same_errors}, \"max_embedding_diff\": {max_embedding:e}, \"max_landmark_diff_px\": {max_landmark:e}}}",
        files.len()
    );
}
