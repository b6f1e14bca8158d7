//! `cargo xtask eval`: the engine's accuracy and stage timings on ../shared/data.
//!
//! One row per figure, next to the reference the issues give (onnxruntime, same models, same data).

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use face_core::RgbImage;
use face_core::{Detection, Embedding, Engine, Point, RecognitionModel, RectF, cosine, verify};

use crate::util::{Flags, shared_data};

/// Everything eval computes for one photo.
struct Analysed {
    faces: Vec<Detection>,
    /// Embeddings of the largest face, per model.
    embeddings: HashMap<RecognitionModel, Embedding>,
}

#[derive(Default)]
struct Timings {
    stages: HashMap<&'static str, Vec<f64>>,
}

impl Timings {
    fn time<T>(&mut self, stage: &'static str, f: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let out = f();
        self.stages.entry(stage).or_default().push(start.elapsed().as_secs_f64() * 1e3);
        out
    }

    fn median(&self, stage: &str) -> f64 {
        self.stages.get(stage).map(|v| crate::stats::median(v.clone())).unwrap_or(f64::NAN)
    }
}

fn row(figure: &str, ours: String, reference: &str) {
    println!("| {figure} | {ours} | {reference} |");
}

pub fn eval(args: &[String]) -> Result<()> {
    let flags = Flags::parse(
        args,
        "usage: cargo xtask eval [--attributes] [--cues]\n  --attributes  only the attribute rows\n  --cues        print each photo's appearance measurements to stderr",
        &[],
        &["--attributes", "--cues"],
    )?;
    let (only_attributes, print_cues) = (flags.on("--attributes"), flags.on("--cues"));
    let data = shared_data();
    if !data.exists() {
        bail!("{} not found: eval reads the labelled photos in ../shared/data beside the repository", data.display());
    }
    let engine = crate::engine::load()?;
    let mut timings = Timings::default();
    println!("| figure | ours | reference |");
    println!("|---|---|---|");
    azure_rows(&engine)?;
    if !only_attributes {
        detection_rows(&engine, &data, &mut timings)?;
        landmark_rows(&engine, &data)?;
        verification_rows(&engine, &data, &mut timings)?;
        badinput_rows(&data)?;
        guest_rows(&data)?;
    }
    attribute_rows(&engine, &data, &mut timings)?;
    crate::appearance::rows(&engine, &data, row, print_cues)?;
    for stage in ["decode", "detect", "detect + sface", "detect + faceapi", "attributes"] {
        row(&format!("median ms: {stage}"), format!("{:.1}", timings.median(stage)), "");
    }
    Ok(())
}

/// Our answer on the photo of Azure's recorded detect answer (`cargo xtask testdata`), beside it.
fn azure_rows(engine: &Engine) -> Result<()> {
    let dir = crate::util::testdata_dir();
    let photo = std::fs::read(dir.join("azure_queryface.jpg")).context("run `cargo xtask testdata`")?;
    let azure: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("azure_queryface.json"))?)?;
    let options = face_core::DetectOptions { attributes: true, ..Default::default() };
    let faces = engine.detect(&photo, &options)?;
    let face = faces.first().context("no face in Azure's recorded photo")?;
    let r = &azure[0]["faceRectangle"];
    let theirs = face_core::RectF {
        left: r["left"].as_f64().unwrap_or(0.0) as f32,
        top: r["top"].as_f64().unwrap_or(0.0) as f32,
        width: r["width"].as_f64().unwrap_or(0.0) as f32,
        height: r["height"].as_f64().unwrap_or(0.0) as f32,
    };
    let ours = face.rectangle;
    let ours_f = face_core::RectF {
        left: ours.left as f32,
        top: ours.top as f32,
        width: ours.width as f32,
        height: ours.height as f32,
    };
    row(
        "Azure's recorded photo: face rectangle (left, top, width, height), IoU with Azure's / the detector box's",
        format!(
            "{}, {}, {}, {}; {:.3} / {:.3}",
            ours.left,
            ours.top,
            ours.width,
            ours.height,
            ours_f.iou(&theirs),
            face.detection.rect.iou(&theirs)
        ),
        "31, 84, 97, 97 (Azure); IoU >= 0.8 (issue 14)",
    );
    let attributes = face.attributes.as_ref().context("no attributes for Azure's recorded photo")?;
    let theirs = &azure[0]["faceAttributes"];
    let number = |v: &serde_json::Value| v.as_f64().unwrap_or(f64::NAN);
    let pose = attributes.head_pose.context("no head pose for Azure's recorded photo")?;
    let p = &theirs["headPose"];
    row(
        "Azure's recorded photo: head pose roll, yaw, pitch",
        format!("{:.1}, {:.1}, {:.1}", pose.roll, pose.yaw, pose.pitch),
        &format!(
            "{}, {}, {} (Azure); yaw's sign equal and |pitch| < 10 (issue 14)",
            number(&p["roll"]),
            number(&p["yaw"]),
            number(&p["pitch"])
        ),
    );
    let level = |m: &face_core::Measure| format!("{:?} {:.2}", m.level, m.value).to_lowercase();
    let theirs_level = |key: &str, level_key: &str| {
        format!("{} {}", theirs[key][level_key].as_str().unwrap_or("?"), number(&theirs[key]["value"]))
    };
    row(
        "Azure's recorded photo: blur / exposure / noise (our levels low, medium, high are the service's low, medium, high and under, good, over)",
        format!("{} / {} / {}", level(&attributes.blur), level(&attributes.exposure), level(&attributes.noise)),
        &format!(
            "{} / {} / {} (Azure)",
            theirs_level("blur", "blurLevel"),
            theirs_level("exposure", "exposureLevel"),
            theirs_level("noise", "noiseLevel")
        ),
    );
    row(
        "Azure's recorded photo: glasses / facial hair (moustache, beard, sideburns) / contempt",
        format!(
            "{:?} / {}, {}, {} / {:.2}",
            attributes.glasses,
            attributes.facial_hair.moustache,
            attributes.facial_hair.beard,
            attributes.facial_hair.sideburns,
            attributes.emotion.contempt
        ),
        &format!(
            "{} / {}, {}, {} / {} (Azure)",
            theirs["glasses"].as_str().unwrap_or("?"),
            number(&theirs["facialHair"]["moustache"]),
            number(&theirs["facialHair"]["beard"]),
            number(&theirs["facialHair"]["sideburns"]),
            number(&theirs["emotion"]["contempt"])
        ),
    );
    // The registry's sharp portraits (face_recognition's sdist) beside Azure's.
    let mut shown = Vec::new();
    for name in ["azure_queryface.jpg", "obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg"] {
        let faces = engine.detect(&std::fs::read(dir.join(name))?, &options)?;
        if let Some(a) = faces.first().and_then(|f| f.attributes.as_ref()) {
            shown.push(format!("{name} {}", level(&a.blur)));
        }
    }
    row("blur of the sharp portraits in the test photos", shown.join(", "), "low (Azure: 0.0 on its photo) (issue 14)");
    Ok(())
}

fn load(engine: &Engine, path: &Path, timings: &mut Timings) -> Result<RgbImage> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    timings.time("decode", || engine.decode(&bytes)).with_context(|| format!("decoding {}", path.display()))
}

fn detection_rows(engine: &Engine, data: &Path, timings: &mut Timings) -> Result<()> {
    let dir = data.join("detection");
    let mut truth: Vec<(String, Vec<RectF>)> = Vec::new();
    for r in crate::stats::csv_rows(&dir.join("LABELS.csv"))? {
        let rect = RectF { left: r[3].parse()?, top: r[4].parse()?, width: r[5].parse()?, height: r[6].parse()? };
        match truth.iter_mut().find(|(p, _)| *p == r[0]) {
            Some((_, boxes)) => boxes.push(rect),
            None => truth.push((r[0].clone(), vec![rect])),
        }
    }
    let total: usize = truth.iter().map(|(_, b)| b.len()).sum();
    // Decoded as the served path decodes for the detector (a large JPEG at a DCT scale), the
    // detections mapped back to the photo's pixels.
    let images: Vec<(face_core::Decoded, &Vec<RectF>)> = truth
        .iter()
        .map(|(p, b)| {
            let bytes = std::fs::read(dir.join(p)).with_context(|| format!("reading {p}"))?;
            let decoded = timings
                .time("decode", || face_core::decode_at_least(&bytes, engine.limits(), face_core::DETECT_SIDE))?;
            Ok((decoded, b))
        })
        .collect::<Result<_>>()?;
    for (min_score, reference) in
        [(face_core::DEFAULT_MIN_SCORE, "(ours: chosen threshold)"), (0.6, "43/43 / 0.915"), (0.9, "0.953 / 1.000")]
    {
        let (mut tp, mut fp) = (0, 0);
        // IoU of each matched face's detector box and of its Face API rectangle with the label.
        let (mut box_iou, mut rect_iou) = (Vec::new(), Vec::new());
        for (decoded, boxes) in &images {
            let found =
                timings.time("detect", || engine.detect_faces(&decoded.image, min_score, face_core::MAX_FACES))?;
            let found: Vec<Detection> = found.into_iter().map(|d| d.scaled(decoded.scale as f32)).collect();
            let mut used = vec![false; boxes.len()];
            for d in &found {
                match (0..boxes.len()).find(|&i| !used[i] && boxes[i].iou(&d.rect) >= 0.5) {
                    Some(i) => {
                        used[i] = true;
                        tp += 1;
                        box_iou.push(f64::from(boxes[i].iou(&d.rect)));
                        rect_iou.push(f64::from(boxes[i].iou(&face_core::face_square(&d.landmarks5))));
                    }
                    None => fp += 1,
                }
            }
        }
        if min_score == face_core::DEFAULT_MIN_SCORE {
            let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
            row(
                "mean IoU with dlib's hand-labelled squares: Face API rectangle / detector box",
                format!("{:.3} / {:.3}", mean(&rect_iou), mean(&box_iou)),
                "(the rectangle is drawn from the landmarks in the service's convention)",
            );
        }
        row(
            &format!("YuNet, score {min_score}: recall / precision on the {total} boxes (IoU >= 0.5)"),
            format!("{tp}/{total} ({:.3}) / {:.3}", tp as f64 / total as f64, tp as f64 / (tp + fp).max(1) as f64),
            reference,
        );
    }
    Ok(())
}

fn landmark_rows(engine: &Engine, data: &Path) -> Result<()> {
    let dir = data.join("detection");
    // path -> box index -> 68 points from dlib.
    let mut dlib: Vec<((String, String), Vec<Point>)> = Vec::new();
    for r in crate::stats::csv_rows(&dir.join("landmarks68.csv"))? {
        let key = (r[0].clone(), r[1].clone());
        let p = Point::new(r[3].parse()?, r[4].parse()?);
        match dlib.iter_mut().find(|(k, _)| *k == key) {
            Some((_, pts)) => pts.push(p),
            None => dlib.push((key, vec![p])),
        }
    }
    let mut errors = Vec::new();
    let mut unmatched = 0;
    let mut timings = Timings::default();
    let mut cache: HashMap<String, (RgbImage, Vec<Detection>)> = HashMap::new();
    for ((path, _), truth) in &dlib {
        if truth.len() != 68 {
            continue;
        }
        if !cache.contains_key(path) {
            let img = load(engine, &dir.join(path), &mut timings)?;
            let dets = engine.detect_faces(&img, face_core::DEFAULT_MIN_SCORE, face_core::MAX_FACES)?;
            cache.insert(path.clone(), (img, dets));
        }
        let (img, dets) = &cache[path];
        let centre = Point::mean(truth);
        let eye_corners = truth[36].distance(truth[45]);
        let Some(det) = dets
            .iter()
            .filter(|d| d.rect.center().distance(centre) < eye_corners)
            .min_by(|a, b| a.rect.center().distance(centre).total_cmp(&b.rect.center().distance(centre)))
        else {
            unmatched += 1;
            continue;
        };
        let ours = engine.landmarks68(img, det)?;
        let per_point: Vec<f64> = ours.iter().zip(truth).map(|(a, b)| (a.distance(*b) / eye_corners) as f64).collect();
        errors.push(crate::stats::median(per_point));
    }
    row(
        &format!(
            "68-point landmarks vs dlib's points, median error / eye-corner distance ({} faces, {unmatched} not detected)",
            errors.len()
        ),
        format!("{:.3}", crate::stats::median(errors)),
        "0.057",
    );
    Ok(())
}

/// The photo through the served path (`Engine::detect` on its bytes: a large JPEG decoded at the
/// scale the detector needs, each face described from a decode that keeps its detail), once per
/// recognition model.
fn analyse(engine: &Engine, path: &Path, timings: &mut Timings) -> Result<Analysed> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let mut faces = Vec::new();
    let mut embeddings = HashMap::new();
    for (model, stage) in [(RecognitionModel::SFace, "detect + sface"), (RecognitionModel::FaceApi, "detect + faceapi")]
    {
        let options = face_core::DetectOptions { recognition: Some(model), landmarks: false, ..Default::default() };
        let found = timings
            .time(stage, || engine.detect(&bytes, &options))
            .with_context(|| format!("detecting in {}", path.display()))?;
        if let Some(e) = found.first().and_then(|f| f.embedding.clone()) {
            embeddings.insert(model, e);
        }
        faces = found.into_iter().map(|f| f.detection).collect();
    }
    Ok(Analysed { faces, embeddings })
}

fn verification_rows(engine: &Engine, data: &Path, timings: &mut Timings) -> Result<()> {
    let dir = data.join("verification");
    let labels = crate::stats::csv_rows(&dir.join("LABELS.csv"))?;
    let mut analysed: HashMap<String, Analysed> = HashMap::new();
    for r in &labels {
        analysed.insert(r[0].clone(), analyse(engine, &dir.join(&r[0]), timings)?);
    }
    let missed = analysed.values().filter(|a| a.faces.is_empty()).count();
    row(
        &format!(
            "faces not found among the {} verification images (score {})",
            labels.len(),
            face_core::DEFAULT_MIN_SCORE
        ),
        missed.to_string(),
        "2 (score 0.6)",
    );

    let pairs = crate::stats::csv_rows(&dir.join("pairs.csv"))?;
    for (model, reference) in
        [(RecognitionModel::SFace, "0.9929; 0.9986"), (RecognitionModel::FaceApi, "0.9823; 0.9983")]
    {
        let mut scored: Vec<(f32, bool, bool)> = Vec::new(); // (cosine, same, predicted same)
        for p in &pairs {
            let (Some(a), Some(b)) = (
                analysed.get(&p[0]).and_then(|x| x.embeddings.get(&model)),
                analysed.get(&p[1]).and_then(|x| x.embeddings.get(&model)),
            ) else {
                continue;
            };
            let v = verify(a, b)?;
            scored.push((cosine(&a.vector, &b.vector), p[2] == "1", v.is_identical));
        }
        let correct = scored.iter().filter(|(_, same, pred)| same == pred).count();
        row(
            &format!("{}, at its published threshold: accuracy on {} usable pairs; AUC", model.id(), scored.len()),
            format!("{:.4}; {:.4}", correct as f64 / scored.len().max(1) as f64, crate::stats::auc(&scored)),
            reference,
        );
    }

    let split = crate::stats::csv_rows(&dir.join("identify_split.csv"))?;
    for model in [RecognitionModel::SFace, RecognitionModel::FaceApi] {
        let gallery: Vec<(&str, &Embedding)> = split
            .iter()
            .filter(|r| r[2] == "gallery")
            .filter_map(|r| analysed.get(&r[0]).and_then(|a| a.embeddings.get(&model)).map(|e| (r[1].as_str(), e)))
            .collect();
        let (mut usable, mut right) = (0, 0);
        for probe in split.iter().filter(|r| r[2] == "probe") {
            let Some(e) = analysed.get(&probe[0]).and_then(|a| a.embeddings.get(&model)) else { continue };
            usable += 1;
            let best =
                gallery.iter().max_by(|a, b| cosine(&e.vector, &a.1.vector).total_cmp(&cosine(&e.vector, &b.1.vector)));
            if best.is_some_and(|(id, _)| *id == probe[1]) {
                right += 1;
            }
        }
        row(
            &format!("identification top-1, {usable} usable probes, {}", model.id()),
            format!("{:.3}", right as f64 / usable.max(1) as f64),
            if model == RecognitionModel::SFace { "1.000 (38 probes)" } else { "" },
        );
    }
    Ok(())
}

/// Every file under badinput/, sorted.
fn badinput_files(data: &Path) -> Result<Vec<String>> {
    let dir = data.join("badinput");
    let mut files = Vec::new();
    let mut stack = vec![dir.clone()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if !matches!(path.extension().and_then(|e| e.to_str()), Some("csv" | "md")) {
                files.push(path.canonicalize()?.display().to_string());
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Every file in badinput/, through the engine natively and on wasm32-wasip1 in wasmtime: faces
/// or a typed error, never a panic, and the same outcome on both targets.
fn badinput_rows(data: &Path) -> Result<()> {
    let dir = data.join("badinput");
    let files = badinput_files(data)?;
    let native = outcomes(&files, None)?;
    let wasm = outcomes(&files, Some(&dir))?;
    for (label, out) in [("native", &native), ("wasm32-wasip1 in wasmtime", &wasm)] {
        let faces = out.iter().filter(|o| o.starts_with("faces")).count();
        let errors = out.iter().filter(|o| o.starts_with("error")).count();
        row(
            &format!("badinput, {label}: {} files", files.len()),
            format!("{faces} with a result, {errors} typed errors, {} panics", files.len() - faces - errors),
            "every file: faces or a typed error",
        );
    }
    let differing: Vec<String> = files
        .iter()
        .zip(native.iter().zip(&wasm))
        .filter(|(_, (n, w))| !same_outcome(n, w))
        .map(|(f, (n, w))| format!("{f}: native {n} / wasm {w}"))
        .collect();
    row(
        "badinput: same outcome natively and in wasm32 (rectangles exact, embeddings within 1e-3)",
        if differing.is_empty() {
            "all".into()
        } else {
            format!("{} differ: {}", differing.len(), differing.join("; "))
        },
        "all",
    );
    Ok(())
}

/// The guest component in face-server's wasmtime, with each engine backend, against the native
/// core on the verification photos and on badinput/ (host's `guest_vs_native` example): every
/// other row is the native core's, so equal answers here carry them over to each backend.
fn guest_rows(data: &Path) -> Result<()> {
    crate::wasm::guest(&[])?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| crate::util::repo_root().join("target"));
    let dir = data.join("verification");
    let files: Vec<String> = crate::stats::csv_rows(&dir.join("LABELS.csv"))?
        .iter()
        .map(|r| dir.join(&r[0]).display().to_string())
        .collect();
    let bad = badinput_files(data)?;
    let compare = |backend: &str, files: &[String]| -> Result<serde_json::Value> {
        let out = std::process::Command::new(env!("CARGO"))
            .args(["run", "--quiet", "--package", "face-host", "--example", "guest_vs_native", "--"])
            .arg(target.join("wasm32-wasip2/debug/face_wasm.wasm"))
            .arg(crate::util::models_dir())
            .arg(crate::util::cache_dir().join("guest-cache"))
            .arg(backend)
            .args(files)
            .output()
            .context("running guest_vs_native")?;
        if !out.status.success() {
            bail!("guest_vs_native ({backend}) failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        eprint!("{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).context("guest_vs_native's output")
    };
    for backend in ["guest", "tract", "onnxruntime"] {
        guest_row(backend, &compare(backend, &files)?);
        let v = compare(backend, &bad)?;
        row(
            &format!(
                "badinput, face-server guest, backend {backend}, vs native tract ({} files): different outcomes; the same typed error",
                v["files"]
            ),
            format!("{}; {}", v["count_mismatch"], v["same_errors"]),
            "0; every file the native core refuses",
        );
    }
    Ok(())
}

fn guest_row(backend: &str, v: &serde_json::Value) {
    row(
        &format!(
            "face-server guest, backend {backend}, vs native tract on {} verification photos ({} faces): face-count mismatches; max embedding difference; max landmark difference (px)",
            v["files"], v["faces"]
        ),
        format!(
            "{}; {:.1e}; {:.1e}",
            v["count_mismatch"],
            v["max_embedding_diff"].as_f64().unwrap_or(f64::NAN),
            v["max_landmark_diff_px"].as_f64().unwrap_or(f64::NAN)
        ),
        "0; within 1e-4",
    );
}

/// One outcome line per file from face-core's `detect_files` example.
fn outcomes(files: &[String], wasm_dir: Option<&Path>) -> Result<Vec<String>> {
    let mut cmd = std::process::Command::new(env!("CARGO"));
    cmd.args(["run", "--quiet", "--package", "face-core", "--example", "detect_files"]);
    if let Some(dir) = wasm_dir {
        cmd.args(["--target", "wasm32-wasip1"]);
        crate::wasm::wasip1_runner(&mut cmd, &[dir])?;
    }
    let out = cmd.arg("--").args(files).output().context("running detect_files")?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.stdout.is_empty() && !out.status.success() {
        bail!("detect_files produced nothing ({}): {stderr}", out.status);
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut by_file: HashMap<&str, String> = HashMap::new();
    for line in text.lines() {
        if let Some((file, outcome)) = line.split_once('\t') {
            by_file.insert(file, outcome.to_owned());
        }
    }
    // A file with no line means the run died on it (a panic or trap): report it as such.
    Ok(files.iter().map(|f| by_file.get(f.as_str()).cloned().unwrap_or_else(|| "PANIC (no outcome)".into())).collect())
}

fn same_outcome(a: &str, b: &str) -> bool {
    let (ta, tb): (Vec<&str>, Vec<&str>) = (a.split(' ').collect(), b.split(' ').collect());
    ta.len() == tb.len()
        && ta.iter().zip(&tb).all(|(x, y)| {
            if let (Some(x), Some(y)) = (x.strip_prefix('['), y.strip_prefix('[')) {
                let parse = |s: &str| -> Vec<f32> {
                    s.trim_end_matches(']').split(',').filter_map(|v| v.parse().ok()).collect()
                };
                let (vx, vy) = (parse(x), parse(y));
                vx.len() == vy.len() && vx.iter().zip(&vy).all(|(p, q)| (p - q).abs() <= 1e-3)
            } else {
                x == y
            }
        })
}

/// The largest face's attributes, or None when no face is found.
fn attributes_of(engine: &Engine, img: &RgbImage, timings: &mut Timings) -> Result<Option<face_core::Attributes>> {
    let faces = engine.detect_faces(img, face_core::DEFAULT_MIN_SCORE, face_core::MAX_FACES)?;
    let Some(det) = faces.first() else { return Ok(None) };
    let points = engine.landmarks68(img, det)?;
    Ok(Some(timings.time("attributes", || engine.attributes(img, det, &points))?))
}

fn attribute_rows(engine: &Engine, data: &Path, timings: &mut Timings) -> Result<()> {
    let dir = data.join("agegender");
    let (mut errors, mut right, mut missed) = (Vec::new(), 0, 0);
    // (faces, with facial hair >= 0.5) by labelled group; faces answered with a mask.
    let (mut children, mut women, mut men, mut masks) = ((0, 0), (0, 0), (0, 0), 0);
    let rows = crate::stats::csv_rows(&dir.join("LABELS.csv"))?;
    for r in &rows {
        let img = load(engine, &dir.join(&r[0]), timings)?;
        let Some(a) = attributes_of(engine, &img, timings)? else {
            missed += 1;
            continue;
        };
        let age: f32 = r[1].parse()?;
        errors.push((a.age - age).abs() as f64);
        let truth = if r[2] == "male" { face_core::Gender::Male } else { face_core::Gender::Female };
        right += usize::from(a.gender == truth);
        let hair = a.facial_hair.moustache.max(a.facial_hair.beard).max(a.facial_hair.sideburns) >= 0.5;
        let group = if age < 16.0 {
            &mut children
        } else if r[2] == "female" {
            &mut women
        } else {
            &mut men
        };
        group.0 += 1;
        group.1 += usize::from(hair);
        masks += usize::from(a.accessories.iter().any(|x| x.kind == face_core::AccessoryType::Mask));
    }
    let mae = errors.iter().sum::<f64>() / errors.len().max(1) as f64;
    row(
        &format!("age MAE / gender accuracy on agegender ({} faces, {missed} not detected)", errors.len()),
        format!("{mae:.2} / {:.4}", right as f64 / errors.len().max(1) as f64),
        "at most 5.5 / at least 0.92 (face-api.js on its square crop: 5.03 / 0.9275)",
    );
    let rate = |g: (usize, usize)| format!("{:.3} ({} of {})", g.1 as f64 / g.0.max(1) as f64, g.1, g.0);
    row(
        "facial hair (moustache, beard or sideburns >= 0.5) on agegender: children under 16 / women / men",
        format!("{} / {} / {}", rate(children), rate(women), rate(men)),
        "at most 0.02 / at most 0.02 / (men: no labels) (issue 14)",
    );
    row(
        &format!("masks on agegender's bare faces: false-mask rate ({} faces)", errors.len()),
        format!("{:.3} ({masks})", masks as f64 / errors.len().max(1) as f64),
        "0",
    );

    let dir = data.join("attributes");
    let order = ["anger", "contempt", "disgust", "fear", "happiness", "neutral", "sadness", "surprise"];
    let (mut total, mut top1) = (0, 0);
    for r in crate::stats::csv_rows(&dir.join("LABELS.csv"))? {
        let Some(want) = order.iter().position(|l| r.get(2).is_some_and(|x| x == l)) else { continue };
        if r[1] != "emotion" {
            continue;
        }
        let img = load(engine, &dir.join(&r[0]), timings)?;
        total += 1;
        if let Some(a) = attributes_of(engine, &img, timings)? {
            let e = &a.emotion;
            let p = [e.anger, e.contempt, e.disgust, e.fear, e.happiness, e.neutral, e.sadness, e.surprise];
            let best = (0..8).max_by(|&i, &j| p[i].total_cmp(&p[j])).unwrap_or(0);
            top1 += usize::from(best == want);
        }
    }
    row(
        &format!("emotion top-1 on the {total} labelled photos (the eight Face API emotions)"),
        format!("{top1}/{total}"),
        "13 of 14 (face-api.js, 7 classes)",
    );

    // Head pose: the sign of the labelled angle on attributes/headpose. The file names say left
    // and right in the image's frame (right_face.png turns toward the image's right, which is
    // a positive yaw in the Face API's convention; the wryneck photos tilt the top of the head
    // toward that side).
    type Angle = fn(&face_core::HeadPose) -> f32;
    let expect: [(&str, Angle, f32); 6] = [
        ("headpose/left_face.jpeg", |p| p.yaw, -1.0),
        ("headpose/right_face.png", |p| p.yaw, 1.0),
        ("headpose/rise_face.jpeg", |p| p.pitch, -1.0),
        ("headpose/lower_face.jpeg", |p| p.pitch, 1.0),
        ("headpose/left_wryneck.png", |p| p.roll, -1.0),
        ("headpose/right_wryneck.png", |p| p.roll, 1.0),
    ];
    let mut agree = 0;
    let mut seen = Vec::new();
    for (file, angle, sign) in expect {
        let img = load(engine, &dir.join(file), timings)?;
        let pose = attributes_of(engine, &img, timings)?.and_then(|a| a.head_pose);
        let value = pose.as_ref().map(angle).unwrap_or(f32::NAN);
        agree += usize::from(value * sign > 0.0);
        seen.push(format!("{}={value:.0}", file.trim_start_matches("headpose/").split('.').next().unwrap_or(file)));
    }
    row(&format!("head-pose sign agreement on attributes/headpose ({})", seen.join(", ")), format!("{agree}/6"), "6/6");

    // Ladders from one photo: each measure must rise with the distortion it measures.
    let photo =
        load(engine, &data.join("verification/images/lfw_krasserm/Ariel_Sharon/Ariel_Sharon_0001.jpg"), timings)?;
    let measure = |img: &RgbImage, f: fn(&face_core::Attributes) -> f32, t: &mut Timings| -> Result<f32> {
        Ok(attributes_of(engine, img, t)?.map(|a| f(&a)).unwrap_or(f32::NAN))
    };
    let blur: Vec<f32> = [0.0f32, 1.0, 2.0, 4.0]
        .iter()
        .map(|&s| {
            measure(&if s == 0.0 { photo.clone() } else { image::imageops::blur(&photo, s) }, |a| a.blur.value, timings)
        })
        .collect::<Result<_>>()?;
    let exposure: Vec<f32> = [0.3f32, 0.6, 1.0, 1.5, 2.2]
        .iter()
        .map(|&g| {
            let img = RgbImage::from_fn(photo.width(), photo.height(), |x, y| {
                image::Rgb(photo.get_pixel(x, y).0.map(|c| (c as f32 * g).min(255.0) as u8))
            });
            measure(&img, |a| a.exposure.value, timings)
        })
        .collect::<Result<_>>()?;
    let noise: Vec<f32> = [0.0f32, 6.0, 12.0, 24.0]
        .iter()
        .map(|&amp| {
            let mut state = 0x9E37_79B9_7F4A_7C15u64;
            let img = RgbImage::from_fn(photo.width(), photo.height(), |x, y| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let n = ((state % 2001) as f32 / 1000.0 - 1.0) * amp;
                image::Rgb(photo.get_pixel(x, y).0.map(|c| (c as f32 + n).clamp(0.0, 255.0) as u8))
            });
            measure(&img, |a| a.noise.value, timings)
        })
        .collect::<Result<_>>()?;
    for (name, values) in [
        ("blur (Gaussian sigma 0, 1, 2, 4)", blur),
        ("exposure (gain 0.3 to 2.2)", exposure),
        ("noise (uniform +-0, 6, 12, 24)", noise),
    ] {
        let rising = values.windows(2).all(|w| w[0] < w[1]);
        let shown: Vec<String> = values.iter().map(|v| format!("{v:.2}")).collect();
        row(
            &format!("{name}: values along the ladder"),
            format!("{} ({})", shown.join(", "), if rising { "rising" } else { "NOT rising" }),
            "rising",
        );
    }
    Ok(())
}
