//! `cargo xtask bench`: median milliseconds per model call and for the whole detect-and-embed
//! pipeline, native tract (through face-core, exactly as the engine calls it) next to
//! onnxruntime with one thread on the same ONNX files, measured in the same run.

use std::collections::HashMap;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use face_core::{DetectOptions, Model, RecognitionModel, RgbImage};
use image::imageops;

use crate::util::{models_dir, python, repo_root, testdata_dir};

/// (file, input shape) of every model, as the engine feeds it.
const MODELS: [(&str, [usize; 4]); 6] = [
    ("face_detection_yunet_2023mar.onnx", [1, 3, 640, 640]),
    ("face_recognition_sface_2021dec.onnx", [1, 3, 112, 112]),
    ("faceapi_recognition.onnx", [1, 3, 150, 150]),
    ("faceapi_landmark68.onnx", [1, 3, 112, 112]),
    ("faceapi_age_gender.onnx", [1, 3, 112, 112]),
    ("faceapi_expression.onnx", [1, 3, 112, 112]),
];

fn median_ms(runs: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    for _ in 0..3 {
        f()?;
    }
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        f()?;
        times.push(start.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

fn ramp(shape: &[usize]) -> Vec<f32> {
    (0..shape.iter().product::<usize>()).map(|i| (i % 256) as f32).collect()
}

/// The 640x480 photo the pipeline is timed on: obama.jpg fitted onto a grey canvas.
fn photo_640x480() -> Result<RgbImage> {
    let path = testdata_dir().join("obama.jpg");
    let bytes = std::fs::read(&path).with_context(|| format!("{}: run `cargo xtask testdata`", path.display()))?;
    let img = face_core::decode(&bytes, &Default::default())?;
    let scale = (640.0 / img.width() as f32).min(480.0 / img.height() as f32);
    let (w, h) = ((img.width() as f32 * scale) as u32, (img.height() as f32 * scale) as u32);
    let fitted = imageops::resize(&img, w, h, imageops::FilterType::Triangle);
    let mut canvas = RgbImage::from_pixel(640, 480, image::Rgb([128, 128, 128]));
    imageops::replace(&mut canvas, &fitted, ((640 - w) / 2) as i64, ((480 - h) / 2) as i64);
    Ok(canvas)
}

pub fn bench(args: &[String]) -> Result<()> {
    let runs: usize = match args {
        [] => 20,
        [flag, n] if flag == "--runs" => n.parse().ok().filter(|&n| n >= 1).context("--runs takes a number of at least 1")?,
        _ => bail!("usage: cargo xtask bench [--runs N]"),
    };
    if cfg!(debug_assertions) {
        eprintln!("note: xtask itself is a debug build; face-core runs at opt-level 2 and its dependencies fully optimised");
    }
    let dir = models_dir();
    eprintln!("bench: native tract, {runs} runs per figure");
    let mut native = HashMap::new();
    for (file, shape) in MODELS {
        let bytes = std::fs::read(dir.join(file)).with_context(|| format!("{file}: run `cargo xtask models`"))?;
        let model = Model::load("bench", &bytes)?;
        let input = ramp(&shape);
        let ms = median_ms(runs, || {
            model.run(&shape, input.clone())?;
            Ok(())
        })?;
        native.insert(file, ms);
    }
    let engine = crate::engine::load()?;
    let photo = photo_640x480()?;
    let options = DetectOptions { recognition: Some(RecognitionModel::SFace), ..Default::default() };
    let faces = engine.detect_image(&photo, &options)?;
    if faces.len() != 1 {
        bail!("the bench photo should have one face, the engine found {}", faces.len());
    }
    let pipeline = median_ms(runs, || {
        engine.detect_image(&photo, &options)?;
        Ok(())
    })?;

    eprintln!("bench: onnxruntime, one thread");
    let out = Command::new(python()?)
        .arg(repo_root().join("xtask/bench_ort.py"))
        .arg(&dir)
        .arg(runs.to_string())
        .output()
        .context("running bench_ort.py")?;
    if !out.status.success() {
        bail!("bench_ort.py failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let ort: HashMap<String, f64> = serde_json::from_slice(&out.stdout).context("reading bench_ort.py's output")?;

    println!("| model call | native tract ms | onnxruntime 1 thread ms | native / onnxruntime |");
    println!("|---|---|---|---|");
    for (file, _) in MODELS {
        let (n, o) = (native[file], *ort.get(file).with_context(|| format!("bench_ort.py did not time {file}"))?);
        println!("| {file} | {n:.2} | {o:.2} | {:.2} |", n / o);
    }
    // onnxruntime's pipeline is the sum of the same three model calls (no pre/post-processing).
    let ort_pipeline: f64 = ["face_detection_yunet_2023mar.onnx", "faceapi_landmark68.onnx", "face_recognition_sface_2021dec.onnx"]
        .iter()
        .map(|f| ort.get(*f).copied().unwrap_or(f64::NAN))
        .sum();
    println!(
        "| pipeline, 640x480 photo, 1 face: decode-free detect + 68 landmarks + SFace embed | {pipeline:.2} | {ort_pipeline:.2} (model calls only) | {:.2} |",
        pipeline / ort_pipeline
    );
    Ok(())
}
