use face_core::{DetectOptions, FaceLandmarks, RecognitionModel, RgbImage, verify};
use image::{ImageFormat, imageops};

use crate::common::{decoded, encode, engine, photo};

fn embed(name: &str, model: RecognitionModel) -> face_core::Embedding {
    let options = DetectOptions { recognition: Some(model), ..Default::default() };
    let faces = engine().detect(&photo(name), &options).expect("detect");
    assert_eq!(faces.len(), 1, "{name} has one face");
    faces.into_iter().next().unwrap().embedding.expect("embedding")
}

#[test]
fn one_face_with_box_landmarks_and_unit_embedding() {
    let img = decoded("obama.jpg");
    let options = DetectOptions { recognition: Some(RecognitionModel::SFace), ..Default::default() };
    let faces = engine().detect_image(&img, &options).expect("detect");
    assert_eq!(faces.len(), 1);
    let face = &faces[0];
    let r = face.rectangle;
    assert!(r.width >= 36 && r.height >= 36, "{r:?}");
    assert!(r.left + r.width <= img.width() && r.top + r.height <= img.height());
    let l: FaceLandmarks = face.landmarks.expect("landmarks");
    // Geometry a face has: eyes above the nose tip above the mouth; left is left.
    assert!(l.pupil_left.x < l.pupil_right.x);
    assert!(l.eye_left_outer.x < l.eye_left_inner.x && l.eye_right_inner.x < l.eye_right_outer.x);
    assert!(
        l.pupil_left.y < l.nose_tip.y && l.nose_tip.y < l.upper_lip_top.y && l.upper_lip_top.y < l.under_lip_bottom.y
    );
    assert!(l.mouth_left.x < l.mouth_right.x);
    // Every landmark lies in (or very near) the face rectangle.
    let json = serde_json::to_value(l).unwrap();
    let points = json.as_object().unwrap();
    assert_eq!(points.len(), 27);
    for (name, p) in points {
        let (x, y) = (p["x"].as_f64().unwrap(), p["y"].as_f64().unwrap());
        let slack = r.width as f64 * 0.25;
        assert!(
            x > r.left as f64 - slack
                && x < (r.left + r.width) as f64 + slack
                && y > r.top as f64 - slack
                && y < (r.top + r.height) as f64 + slack,
            "{name} at {x},{y} outside {r:?}"
        );
    }
    // The detector's five points agree with the 68-point net's eyes.
    let five = face.detection.landmarks5;
    let eye_span = l.pupil_left.distance(l.pupil_right);
    assert!(five[0].distance(l.pupil_left) < 0.25 * eye_span);
    assert!(five[1].distance(l.pupil_right) < 0.25 * eye_span);
    let e = face.embedding.as_ref().unwrap();
    let norm: f32 = e.vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert_eq!(e.vector.len(), 128);
    assert!((norm - 1.0).abs() < 1e-4);
}

#[test]
fn same_person_is_identical_and_different_people_are_not_with_both_recognizers() {
    for model in RecognitionModel::ALL {
        let (a, b, c) = (embed("obama.jpg", model), embed("obama2.jpg", model), embed("biden.jpg", model));
        let same = verify(&a, &b).unwrap();
        let other = verify(&a, &c).unwrap();
        assert!(same.is_identical, "{model:?}: obama vs obama2 {same:?}");
        assert!(!other.is_identical, "{model:?}: obama vs biden {other:?}");
        assert!(same.confidence > other.confidence);
        assert!((0.0..=1.0).contains(&same.confidence) && (0.0..=1.0).contains(&other.confidence));
    }
}

#[test]
fn faces_in_a_composed_photo_are_all_found_largest_first() {
    // Obama at full size and Biden at half size, side by side on grey.
    let big = decoded("obama.jpg");
    let small = decoded("biden.jpg");
    let small = imageops::resize(&small, small.width() / 2, small.height() / 2, imageops::FilterType::Triangle);
    let mut canvas = RgbImage::from_pixel(
        big.width() + small.width() + 40,
        big.height().max(small.height()) + 40,
        image::Rgb([128, 128, 128]),
    );
    imageops::replace(&mut canvas, &big, 20, 20);
    imageops::replace(&mut canvas, &small, (big.width() + 20) as i64, 20);
    let bytes = encode(&canvas, ImageFormat::Png);
    let options = DetectOptions { recognition: Some(RecognitionModel::SFace), ..Default::default() };
    let faces = engine().detect(&bytes, &options).expect("detect");
    assert_eq!(faces.len(), 2);
    assert!(
        faces[0].rectangle.width * faces[0].rectangle.height > faces[1].rectangle.width * faces[1].rectangle.height
    );
    assert!(faces[0].rectangle.left < big.width() && faces[1].rectangle.left >= big.width());
    // The faces keep their identities when composed.
    let obama = embed("obama.jpg", RecognitionModel::SFace);
    assert!(verify(faces[0].embedding.as_ref().unwrap(), &obama).unwrap().is_identical);
    assert!(!verify(faces[1].embedding.as_ref().unwrap(), &obama).unwrap().is_identical);

    let limited = DetectOptions { max_faces: 1, ..Default::default() };
    assert_eq!(engine().detect(&bytes, &limited).unwrap().len(), 1);
}

#[test]
fn a_photo_without_a_face_yields_no_face() {
    // A smooth synthetic gradient: nothing face-like.
    let img = RgbImage::from_fn(400, 300, |x, y| image::Rgb([(x / 2) as u8, (y / 2) as u8, 128]));
    assert!(engine().detect_image(&img, &Default::default()).unwrap().is_empty());
}

#[test]
fn partial_faces_do_not_break_the_pipeline() {
    for name in ["obama_partial_face.jpg", "obama_partial_face2.jpg", "32bit.png"] {
        let options = DetectOptions { recognition: Some(RecognitionModel::FaceApi), ..Default::default() };
        let faces = engine().detect(&photo(name), &options).unwrap_or_else(|e| panic!("{name}: {e}"));
        for f in faces {
            assert!(f.embedding.is_some() && f.landmarks.is_some());
        }
    }
}

#[test]
fn a_target_rectangle_selects_that_face_or_says_there_is_none() {
    let big = decoded("obama.jpg");
    let small = decoded("biden.jpg");
    let mut canvas = RgbImage::from_pixel(
        big.width() + small.width() + 200,
        big.height().max(small.height()),
        image::Rgb([128, 128, 128]),
    );
    imageops::replace(&mut canvas, &big, 0, 0);
    imageops::replace(&mut canvas, &small, big.width() as i64, 0);
    let options = DetectOptions { recognition: Some(RecognitionModel::SFace), landmarks: false, ..Default::default() };
    let all = engine().detect_image(&canvas, &options).unwrap();
    assert_eq!(all.len(), 2);
    for face in &all {
        let r = face.detection.rect;
        // A loose, shifted rectangle a user might draw still picks the same face.
        let target = face_core::RectF {
            left: r.left - r.width * 0.1,
            top: r.top + r.height * 0.05,
            width: r.width * 1.15,
            height: r.height * 1.1,
        };
        let picked = engine().face_in_rect(&canvas, target, &options).unwrap();
        assert!(picked.detection.rect.iou(&r) > 0.8, "{:?} vs {r:?}", picked.detection.rect);
        let same = verify(picked.embedding.as_ref().unwrap(), face.embedding.as_ref().unwrap()).unwrap();
        assert!(same.confidence > 0.9, "{same:?}");
    }
    let empty =
        face_core::RectF { left: (big.width() + small.width() + 50) as f32, top: 10.0, width: 120.0, height: 120.0 };
    assert!(matches!(engine().face_in_rect(&canvas, empty, &options), Err(face_core::Error::NoFace { .. })));
    let outside = face_core::RectF { left: 1e6, top: 0.0, width: 50.0, height: 50.0 };
    assert!(matches!(engine().face_in_rect(&canvas, outside, &options), Err(face_core::Error::InvalidArgument { .. })));
}

/// The model seam: an engine whose model calls go to other runners (here tract plans wrapped by a
/// counting runner, as the server's guest wraps wasi:nn graphs) gives the same faces, and a
/// runner's failure comes back as `Error::Model` naming the model.
#[test]
fn the_model_seam_carries_every_model_call_and_its_failures() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use face_core::{DetectOptions, Engine, Error, MODELS, ModelInfo, Runner, TractPlan};

    struct Counting(TractPlan, Arc<AtomicUsize>, Arc<std::sync::Mutex<Vec<Vec<usize>>>>);
    impl Runner for Counting {
        fn run(&self, shape: &[usize], data: Vec<f32>) -> Result<Vec<Vec<f32>>, String> {
            assert!(self.0.takes(shape), "the engine feeds a model only the shapes MODELS lists: {shape:?}");
            self.1.fetch_add(1, Ordering::Relaxed);
            self.2.lock().unwrap().push(shape.to_vec());
            self.0.run(shape, data)
        }
    }
    let calls = Arc::new(AtomicUsize::new(0));
    let shapes = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seamed = Engine::from_runners(
        |info: &ModelInfo| {
            let plan = TractPlan::load(&crate::common::model(info.file), info.shapes).expect("model loads");
            Ok(Arc::new(Counting(plan, calls.clone(), shapes.clone())) as Arc<dyn Runner>)
        },
        true,
    )
    .unwrap();
    let options = DetectOptions { recognition: Some(RecognitionModel::SFace), attributes: true, ..Default::default() };
    let ours = seamed.detect(&photo("obama.jpg"), &options).unwrap();
    let theirs = engine().detect(&photo("obama.jpg"), &options).unwrap();
    assert_eq!(ours, theirs);
    // detector, 68 landmarks, SFace, age/gender, expression.
    assert_eq!(calls.load(Ordering::Relaxed), 5);
    // A portrait photo (910x1137, scaled to 512x640) needs the square input; a 16:9 one gets the
    // 640x384 input and the same face, at the same place.
    assert_eq!(shapes.lock().unwrap()[0], [1, 3, 640, 640]);
    let portrait = face_core::decode(&photo("obama.jpg"), &Default::default()).unwrap();
    let mut wide = RgbImage::from_pixel(portrait.height() * 16 / 9, portrait.height(), image::Rgb([90, 90, 90]));
    imageops::replace(&mut wide, &portrait, 0, 0);
    shapes.lock().unwrap().clear();
    let in_wide = seamed.detect(&encode(&wide, ImageFormat::Png), &DetectOptions::default()).unwrap();
    assert_eq!(shapes.lock().unwrap()[0], [1, 3, 384, 640], "{}x{}", wide.width(), wide.height());
    assert_eq!(in_wide.len(), 1);
    let (a, b) = (&in_wide[0].detection.rect, &ours[0].detection.rect);
    assert!((a.left - b.left).abs() < 0.05 * b.width && (a.width - b.width).abs() < 0.1 * b.width, "{a:?} vs {b:?}");

    struct Failing;
    impl Runner for Failing {
        fn run(&self, _: &[usize], _: Vec<f32>) -> Result<Vec<Vec<f32>>, String> {
            Err("the host is gone".into())
        }
    }
    let failing = Engine::from_runners(|_: &ModelInfo| Ok(Arc::new(Failing) as Arc<dyn Runner>), false).unwrap();
    match failing.detect(&photo("obama.jpg"), &options) {
        Err(Error::Model { model, reason }) => {
            assert_eq!(model, MODELS[0].name);
            assert!(reason.contains("the host is gone"), "{reason}");
        }
        other => panic!("expected a model error, got {other:?}"),
    }
}
