//! The engine pool with the real guest in real wasmtime, for every backend (the models run on the
//! host through wasi:nn with tract or onnxruntime, or inside the guest): results equal to the
//! native core, memory cap and deadline obeyed and violated, a trap that does not disturb the
//! next call.
//!
//! Needs the guest (`cargo build -p face-wasm --target wasm32-wasip2 --features component`, which
//! `scripts/test.sh` runs), the models (`cargo xtask models`) and the test photos
//! (`cargo xtask testdata`).

use std::path::PathBuf;
use std::time::Duration;

use face_host::engine::{BackendKind, CallError, EngineConfig, EnginePool, ModelFiles, guest};

const BACKENDS: [BackendKind; 3] = [BackendKind::Tract, BackendKind::Onnxruntime, BackendKind::Guest];

fn repo() -> PathBuf {
    // At run time (cargo test sets it): clones share one target folder.
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into())
        .join("..")
}

fn cache() -> PathBuf {
    std::env::var_os("FACE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/face"))
}

fn guest_wasm() -> PathBuf {
    if let Some(p) = std::env::var_os("FACE_GUEST_WASM") {
        return p.into();
    }
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| repo().join("target"));
    let path = target.join("wasm32-wasip2/debug/face_wasm.wasm");
    assert!(
        path.exists(),
        "{} missing: build the guest with `cargo build -p face-wasm --target wasm32-wasip2 --features component`",
        path.display()
    );
    path
}

fn config() -> EngineConfig {
    let mut c = EngineConfig::new(guest_wasm(), ModelFiles::in_dir(repo().join("models")), cache().join("guest-cache"));
    c.pool_size = 1;
    c
}

fn config_for(backend: BackendKind) -> EngineConfig {
    EngineConfig { backend, ..config() }
}

fn photo(name: &str) -> Vec<u8> {
    std::fs::read(cache().join("testdata").join(name)).expect("run `cargo xtask testdata` first")
}

fn options(recognition: Option<guest::RecognitionModel>) -> guest::DetectOptions {
    guest::DetectOptions {
        min_score: face_core::DEFAULT_MIN_SCORE,
        max_faces: 100,
        landmarks: true,
        recognition,
        attributes: true,
    }
}

fn native() -> face_core::Engine {
    let dir = repo().join("models");
    let models = face_core::ModelSet::read_with(|name| std::fs::read(dir.join(name))).unwrap();
    face_core::Engine::new(&models.bytes()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_backend_gives_the_native_core_results() {
    for backend in BACKENDS {
        // The same kernels natively: plain tract for the guest backend, the host's graphs otherwise.
        let native = match backend {
            BackendKind::Guest => native(),
            _ => face_host::engine::native_engine(&config_for(backend)).expect("native engine on the host graphs"),
        };
        the_guest_gives_the_native_core_results(backend, &native).await;
        if backend != BackendKind::Guest {
            the_host_graphs_embed_as_plain_tract(backend, &native);
        }
    }
}

/// SFace ships as the registry's int8 file: every backend folds it into the same f32 weights
/// (onnxruntime is handed the folded graph), so its embeddings are plain tract's, give or take
/// the kernels' rounding.
fn the_host_graphs_embed_as_plain_tract(backend: BackendKind, host: &face_core::Engine) {
    let options =
        face_core::DetectOptions { recognition: Some(face_core::RecognitionModel::SFace), ..Default::default() };
    let bytes = photo("obama.jpg");
    let ours = host.detect(&bytes, &options).unwrap();
    let plain = native().detect(&bytes, &options).unwrap();
    let (a, b) = (ours[0].embedding.as_ref().unwrap(), plain[0].embedding.as_ref().unwrap());
    let cosine = face_core::cosine(&a.vector, &b.vector);
    assert!(cosine > 0.9999, "{backend:?}: SFace's embedding has cosine {cosine} to plain tract's");
}

async fn the_guest_gives_the_native_core_results(backend: BackendKind, native: &face_core::Engine) {
    let pool = EnginePool::new(config_for(backend)).await.expect("pool starts");
    for (name, model, rec) in [
        ("obama.jpg", guest::RecognitionModel::Sface, face_core::RecognitionModel::SFace),
        ("biden.jpg", guest::RecognitionModel::Faceapi, face_core::RecognitionModel::FaceApi),
    ] {
        let bytes = photo(name);
        let ours = pool.detect(bytes.clone(), options(Some(model))).await.expect("guest detect");
        let theirs = native
            .detect(
                &bytes,
                &face_core::DetectOptions { recognition: Some(rec), attributes: true, ..Default::default() },
            )
            .unwrap();
        assert_eq!(ours.len(), theirs.len(), "{backend:?} {name}");
        for (g, n) in ours.iter().zip(&theirs) {
            // Native kernels differ by CPU (AVX2, AVX-512): a box on a .5 boundary may round apart.
            let (a, b) = (g.rectangle, n.rectangle);
            for (x, y) in [(a.left, b.left), (a.top, b.top), (a.width, b.width), (a.height, b.height)] {
                assert!(x.abs_diff(y) <= 1, "{backend:?} {name}: {a:?} vs {b:?}");
            }
            assert!((g.score - n.detection.score).abs() < 1e-4, "{backend:?} {name}: score");
            let e = n.embedding.as_ref().unwrap();
            let worst = g
                .embedding
                .as_ref()
                .unwrap()
                .vector
                .iter()
                .zip(&e.vector)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(worst < 1e-4, "{backend:?} {name}: embeddings differ by {worst}");
            let (ga, na) = (g.attributes.as_ref().expect("guest attributes"), n.attributes.as_ref().unwrap());
            assert!((ga.age - na.age).abs() < 0.05, "{backend:?} {name}: age {} vs {}", ga.age, na.age);
            assert_eq!(
                matches!(ga.gender, guest::Gender::Male),
                na.gender == face_core::Gender::Male,
                "{backend:?} {name}"
            );
            for (a, b) in ga.expressions.iter().zip(na.expressions) {
                assert!(
                    (a - b).abs() < 1e-3,
                    "{backend:?} {name}: expressions {:?} vs {:?}",
                    ga.expressions,
                    na.expressions
                );
            }
            let (gp, np) = (ga.head_pose.expect("guest head pose"), na.head_pose.unwrap());
            for (a, b) in [(gp.roll, np.roll), (gp.yaw, np.yaw), (gp.pitch, np.pitch)] {
                assert!((a - b).abs() < 0.1, "{backend:?} {name}: head pose {gp:?} vs {np:?}");
            }
            for (a, b) in [(ga.smile, na.smile), (ga.blur.value, na.blur.value), (ga.exposure.value, na.exposure.value)]
            {
                assert!((a - b).abs() < 1e-3, "{backend:?} {name}: {a} vs {b}");
            }
            let (ge, ne) = (&ga.emotion, &na.emotion);
            for (a, b) in [
                (ge.anger, ne.anger),
                (ge.contempt, ne.contempt),
                (ge.disgust, ne.disgust),
                (ge.fear, ne.fear),
                (ge.happiness, ne.happiness),
                (ge.neutral, ne.neutral),
                (ge.sadness, ne.sadness),
                (ge.surprise, ne.surprise),
            ] {
                assert!((a - b).abs() < 1e-3, "{backend:?} {name}: emotion {ge:?} vs {ne:?}");
            }
            // The derived groups: the same values, and the same decisions.
            let variant = |debug: String| debug.rsplit("::").next().unwrap_or_default().to_lowercase();
            assert_eq!(
                variant(format!("{:?}", ga.glasses)),
                variant(format!("{:?}", na.glasses)),
                "{backend:?} {name}"
            );
            let (gh, nh) = (&ga.facial_hair, &na.facial_hair);
            for (a, b) in [(gh.moustache, nh.moustache), (gh.beard, nh.beard), (gh.sideburns, nh.sideburns)] {
                assert!((a - b).abs() < 0.02, "{backend:?} {name}: facial hair {gh:?} vs {nh:?}");
            }
            assert!((ga.hair.bald - na.hair.bald).abs() < 0.02, "{backend:?} {name}: bald");
            assert_eq!(ga.hair.invisible, na.hair.invisible, "{backend:?} {name}");
            assert_eq!(
                ga.hair.hair_color.first().map(|c| variant(format!("{:?}", c.color))),
                na.hair.hair_color.first().map(|c| variant(format!("{:?}", c.color))),
                "{backend:?} {name}: top hair colour"
            );
            assert_eq!(
                (ga.makeup.eye_makeup, ga.makeup.lip_makeup),
                (na.makeup.eye_makeup, na.makeup.lip_makeup),
                "{backend:?} {name}: makeup"
            );
            assert_eq!(
                (ga.occlusion.forehead_occluded, ga.occlusion.eye_occluded, ga.occlusion.mouth_occluded),
                (na.occlusion.forehead_occluded, na.occlusion.eye_occluded, na.occlusion.mouth_occluded),
                "{backend:?} {name}: occlusion"
            );
            assert_eq!(ga.accessories.len(), na.accessories.len(), "{backend:?} {name}: accessories");
            let points = n.landmarks.unwrap().to_array();
            assert_eq!(g.landmarks27.len(), 27);
            for (a, b) in g.landmarks27.iter().zip(points.iter()) {
                assert!(
                    (a.x - b.x).abs() < 1e-2 && (a.y - b.y).abs() < 1e-2,
                    "{backend:?} {name}: landmark {a:?} vs {b:?}"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_errors_arrive_as_their_variants() {
    for backend in BACKENDS {
        let pool = EnginePool::new(config_for(backend)).await.unwrap();
        let err = pool.detect(Vec::new(), options(None)).await.unwrap_err();
        assert!(matches!(err, CallError::Guest(guest::Error::FileTooSmall(_))), "{backend:?}: {err:?}");
        let err = pool.detect(b"not an image at all; ".repeat(100), options(None)).await.unwrap_err();
        assert!(matches!(err, CallError::Guest(guest::Error::UnsupportedFormat(_))), "{backend:?}: {err:?}");
        let nowhere = guest::Rect { left: 0.0, top: 0.0, width: 40.0, height: 40.0 };
        let err = pool.embed(photo("obama.jpg"), nowhere, guest::RecognitionModel::Sface).await.unwrap_err();
        assert!(matches!(err, CallError::Guest(guest::Error::NoFace(_))), "{backend:?}: {err:?}");
        // Errors are answers, not failures: the instance stays.
        assert_eq!(pool.stats().discarded, 0, "{backend:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_that_cannot_load_stops_start_up_with_what_to_do() {
    let mut c = config_for(BackendKind::Onnxruntime);
    c.onnxruntime = cache().join("no-such-dir/libonnxruntime.so");
    let err = EnginePool::new(c).await.unwrap_err().to_string();
    assert!(err.contains("does not exist") && err.contains("Engine:OnnxRuntime"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deadline_is_obeyed_and_violated() {
    // The guest's own code is stopped by epochs and the instance discarded.
    let pool = EnginePool::new(config_for(BackendKind::Guest)).await.unwrap();
    let err = pool
        .detect_within(photo("obama.jpg"), options(Some(guest::RecognitionModel::Sface)), Duration::from_millis(1))
        .await
        .unwrap_err();
    assert!(matches!(err, CallError::Timeout { .. }), "{err:?}");
    assert_eq!(pool.stats().discarded, 1);
    // The next call gets a fresh instance and finishes within the normal deadline.
    let faces =
        pool.detect(photo("obama.jpg"), options(Some(guest::RecognitionModel::Sface))).await.expect("after a timeout");
    assert_eq!(faces.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_memory_cap_is_obeyed_and_violated_and_a_trap_does_not_disturb_the_next_call() {
    // Measure what an instance needs for the models and one ordinary photo...
    let roomy = EnginePool::new(config()).await.unwrap();
    roomy.detect(photo("obama.jpg"), options(Some(guest::RecognitionModel::Sface))).await.unwrap();
    let needed = roomy.stats().peak_memory;
    assert!(needed > 1 << 20, "a decoded photo takes MBs, measured {needed}");
    drop(roomy);

    // ...then cap an instance 64 MB above it (instances differ by a few MB, hash seeds vary):
    // ordinary photos pass; a 4096x4096 RGBA 16-bit PNG (134 MB decoded, then 50 MB as RGB) does
    // not, whatever the allocator kept free from init.
    let mut tight = config();
    tight.memory_limit = needed + (64 << 20);
    let pool = EnginePool::new(tight).await.unwrap();
    let faces =
        pool.detect(photo("obama.jpg"), options(Some(guest::RecognitionModel::Sface))).await.expect("within the cap");
    assert_eq!(faces.len(), 1);

    let big =
        image::ImageBuffer::<image::Rgba<u16>, _>::from_pixel(4096, 4096, image::Rgba([51200, 46080, 40960, 65535]));
    let mut png = std::io::Cursor::new(Vec::new());
    big.write_to(&mut png, image::ImageFormat::Png).unwrap();
    let err = pool.detect(png.into_inner(), options(None)).await.unwrap_err();
    assert!(matches!(err, CallError::MemoryLimit { .. }), "{err:?} (cap {} bytes)", needed + (64 << 20));
    assert_eq!(pool.stats().discarded, 1);

    let faces =
        pool.detect(photo("biden.jpg"), options(Some(guest::RecognitionModel::Sface))).await.expect("after the trap");
    assert_eq!(faces.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_calls_share_a_bounded_pool() {
    let mut c = config();
    c.pool_size = 2;
    let pool = EnginePool::new(c).await.unwrap();
    let calls: Vec<_> = ["obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg"]
        .into_iter()
        .map(|name| {
            let pool = pool.clone();
            tokio::spawn(async move { pool.detect(photo(name), options(None)).await })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap().unwrap().len(), 1);
    }
    let stats = pool.stats();
    assert_eq!((stats.size, stats.idle, stats.discarded), (2, 2, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_compiled_guest_is_never_loaded() {
    use face_host::engine::{GuestSource, precompiled_paths};
    // A copy of the guest with the precompiled file and record that `cargo xtask guest` wrote.
    let dir = cache().join(format!("tamper-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let guest = dir.join("face_wasm.wasm");
    std::fs::copy(guest_wasm(), &guest).unwrap();
    let ((from_file, from_record), (file, record)) = (precompiled_paths(&guest_wasm()), precompiled_paths(&guest));
    std::fs::copy(&from_file, &file).expect("run `cargo xtask guest`: it precompiles the guest");
    std::fs::copy(&from_record, &record).unwrap();
    let mut c = config();
    c.guest = guest.clone();
    c.cache_dir = dir.join("cache");
    let pool = EnginePool::new(c.clone()).await.unwrap();
    assert_eq!(pool.stats().guest_source, GuestSource::Precompiled);
    drop(pool);

    // One byte changed in the machine code: not loaded; compiled from the guest instead, and the
    // fresh compile (it matches the record) goes to the cache.
    let mut bytes = std::fs::read(&file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x5a;
    std::fs::write(&file, &bytes).unwrap();
    let pool = EnginePool::new(c.clone()).await.unwrap();
    assert_eq!(pool.stats().guest_source, GuestSource::Compiled);
    let faces = pool.detect(photo("obama.jpg"), options(None)).await.expect("the compiled guest works");
    assert_eq!(faces.len(), 1);
    drop(pool);
    let pool = EnginePool::new(c.clone()).await.unwrap();
    assert_eq!(pool.stats().guest_source, GuestSource::Cache, "the verified cache entry is used");
    drop(pool);

    // Whoever can write the cache (the data volume) plants the tampered file there: not loaded.
    let entry = std::fs::read_dir(&c.cache_dir).unwrap().flatten().next().expect("a cache entry").path();
    std::fs::rename(&file, &entry).unwrap();
    let pool = EnginePool::new(c).await.unwrap();
    assert_eq!(pool.stats().guest_source, GuestSource::Compiled);
    drop(pool);
    let _ = std::fs::remove_dir_all(&dir);
}

/// obama.jpg enlarged 3.3 times into the corner of a 4032x3024 (12-megapixel) JPEG.
fn phone_photo() -> Vec<u8> {
    let small = face_core::decode(&photo("obama.jpg"), &Default::default()).unwrap();
    let (w, h) = ((small.width() as f32 * 3.3) as u32, (small.height() as f32 * 3.3) as u32);
    let mut canvas = image::RgbImage::from_pixel(4032, 3024, image::Rgb([128, 128, 128]));
    let big = image::imageops::resize(&small, w, h, image::imageops::FilterType::Triangle);
    image::imageops::replace(&mut canvas, &big, 0, 0);
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90).encode_image(&canvas).unwrap();
    out
}

/// What the guest does with a phone photo must not grow with its pixels: a 12-megapixel photo
/// is decoded at the scale the detector needs, so an instance's linear memory grows by a few MB
/// for it, not by the 36 MB of its pixels and the decoder's planes. The memory of a fresh
/// instance is the only state a call leaves behind, and what a photo's cost could grow with
/// from call to call; this holds for every backend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_photo_costs_the_guest_no_more_memory_than_its_detector_needs() {
    let large = phone_photo();
    // A detect as the REST default asks it: faceId (SFace) and landmarks, no attributes (which
    // are measured on the photo's own pixels, so they take a full decode).
    let asked = guest::DetectOptions { attributes: false, ..options(Some(guest::RecognitionModel::Sface)) };
    for backend in BACKENDS {
        let pool = EnginePool::new(config_for(backend)).await.unwrap();
        let faces = pool.detect(photo("obama.jpg"), asked).await.unwrap();
        assert_eq!(faces.len(), 1);
        let after_small = pool.stats().peak_memory;
        let (faces, times) = pool.detect_timed(large.clone(), asked).await.unwrap();
        assert_eq!(faces.len(), 1);
        let grown = pool.stats().peak_memory.saturating_sub(after_small);
        assert!(grown < 16 << 20, "{backend:?}: a 12 MP photo grew the guest's memory by {} MB", grown >> 20);
        // The guest timed its steps, and they fit in the call.
        let names: Vec<&str> = times.steps.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            ["decode", "detector-input", "crops", "detector", "landmarks", "recognizer", "attributes"],
            "{backend:?}"
        );
        let steps: u64 = times.steps.iter().map(|(_, us)| us).sum();
        assert!(steps > 0 && u128::from(steps) <= times.call.as_micros(), "{backend:?}: {times:?}");
    }
}
