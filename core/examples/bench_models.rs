//! Times each model call and the whole pipeline, natively or on wasm32-wasip1 in wasmtime, for
//! `cargo xtask bench`. Prints one JSON object: {"models": {file: median_ms}, "pipeline": median_ms}.
//!
//!     cargo run --example bench_models -- MODELS_DIR PHOTO RUNS

#[path = "common/median.rs"]
mod median;

use face_core::{DetectOptions, Engine, MODELS, Model, ModelSet, RecognitionModel};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, photo, runs] = args.as_slice() else {
        panic!("usage: bench_models MODELS_DIR PHOTO RUNS");
    };
    let runs: usize = runs.parse().expect("RUNS is a number");
    let read = |name: &str| std::fs::read(format!("{dir}/{name}")).unwrap_or_else(|e| panic!("{name}: {e}"));
    let bytes = std::fs::read(photo).expect("photo");
    let mut models = Vec::new();
    for info in &MODELS {
        // The detector at the size the engine feeds it for this photo, the others at theirs.
        let shape = if info.name == MODELS[0].name {
            let image = face_core::decode(&bytes, &Default::default()).expect("the photo decodes");
            face_core::detector_input_shape(image.width(), image.height())
        } else {
            info.shapes[0]
        };
        let file = info.file;
        let model = Model::load(info, &read(file)).expect("model loads");
        let input: Vec<f32> = (0..shape.iter().product::<usize>()).map(|i| (i % 256) as f32).collect();
        let ms = median::median_ms(3, runs, || {
            model.run(&shape, input.clone()).expect("model runs");
        });
        models.push(format!("\"{file}\": {ms:.3}"));
    }
    let set = ModelSet::read_with(|name| Ok::<_, ()>(read(name))).unwrap();
    let engine = Engine::new(&set.bytes()).unwrap();
    let options = DetectOptions { recognition: Some(RecognitionModel::SFace), ..Default::default() };
    assert_eq!(engine.detect(&bytes, &options).unwrap().len(), 1, "the bench photo has one face");
    let pipeline = median::median_ms(3, runs, || {
        engine.detect(&bytes, &options).expect("detect");
    });
    let out = format!("{{\"models\": {{{}}}, \"pipeline\": {pipeline:.3}}}\n", models.join(", "));
    std::io::Write::write_all(&mut std::io::stdout(), out.as_bytes()).expect("stdout");
}
