use face_core::{DetectOptions, Gender, RgbImage};
use image::imageops;

use crate::common::{decoded, engine, model};

fn attributes_of(img: &RgbImage) -> face_core::Attributes {
    let options = DetectOptions { attributes: true, landmarks: false, ..Default::default() };
    let faces = engine().detect_image(img, &options).expect("detect");
    assert_eq!(faces.len(), 1);
    faces.into_iter().next().unwrap().attributes.expect("attributes")
}

#[test]
fn age_gender_and_expressions_are_plausible() {
    for name in ["obama.jpg", "biden.jpg"] {
        let a = attributes_of(&decoded(name));
        assert_eq!(a.gender, Gender::Male, "{name}");
        assert!(a.gender_confidence >= 0.5 && a.gender_confidence <= 1.0);
        assert!((25.0..90.0).contains(&a.age), "{name}: age {}", a.age);
        let sum: f32 = a.expressions.iter().sum();
        assert!((sum - 1.0).abs() < 1e-3, "{name}: expressions sum to {sum}");
        assert!((0.0..=1.0).contains(&a.smile));
    }
}

/// Measures rise along ladders made from one photo: more blur, more light, more noise.
#[test]
fn blur_exposure_and_noise_rise_along_their_ladders() {
    let photo = decoded("obama.jpg");
    let blur: Vec<f32> = [0.0f32, 1.5, 3.0, 6.0]
        .iter()
        .map(|&sigma| {
            attributes_of(&if sigma == 0.0 { photo.clone() } else { imageops::blur(&photo, sigma) }).blur.value
        })
        .collect();
    assert!(blur.windows(2).all(|w| w[0] < w[1]), "blur {blur:?}");

    let gain = |g: f32| {
        RgbImage::from_fn(photo.width(), photo.height(), |x, y| {
            image::Rgb(photo.get_pixel(x, y).0.map(|c| (c as f32 * g).min(255.0) as u8))
        })
    };
    let exposure: Vec<f32> = [0.4f32, 0.7, 1.0, 1.4].iter().map(|&g| attributes_of(&gain(g)).exposure.value).collect();
    assert!(exposure.windows(2).all(|w| w[0] < w[1]), "exposure {exposure:?}");

    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut noisy = |amplitude: f32| {
        RgbImage::from_fn(photo.width(), photo.height(), |x, y| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let n = ((state % 2001) as f32 / 1000.0 - 1.0) * amplitude;
            image::Rgb(photo.get_pixel(x, y).0.map(|c| (c as f32 + n).clamp(0.0, 255.0) as u8))
        })
    };
    let noise: Vec<f32> = [0.0f32, 10.0, 25.0, 50.0].iter().map(|&a| attributes_of(&noisy(a)).noise.value).collect();
    assert!(noise.windows(2).all(|w| w[0] < w[1]), "noise {noise:?}");
}

#[test]
fn attributes_need_their_models() {
    let models = face_core::ModelSet::read_with(|name| Ok::<_, ()>(model(name))).unwrap();
    let plain = face_core::Engine::new(&models.bytes()).unwrap();
    let options = DetectOptions { attributes: true, ..Default::default() };
    let err = plain.detect_image(&decoded("obama.jpg"), &options).unwrap_err();
    assert!(matches!(err, face_core::Error::InvalidArgument { .. }), "{err}");
}
