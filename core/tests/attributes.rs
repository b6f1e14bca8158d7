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
    let plain = face_core::Engine::new(&face_core::ModelBytes { attributes: None, ..models.bytes() }).unwrap();
    let options = DetectOptions { attributes: true, ..Default::default() };
    let err = plain.detect_image(&decoded("obama.jpg"), &options).unwrap_err();
    assert!(matches!(err, face_core::Error::InvalidArgument { .. }), "{err}");
}

/// The 68 points of the one face in `img`.
fn points_of(img: &RgbImage) -> Vec<face_core::Point> {
    let faces = engine().detect_image(img, &DetectOptions::default()).expect("detect");
    faces.into_iter().next().and_then(|f| f.landmarks68).expect("68 landmarks")
}

/// Paints `colour` (with a deterministic speckle of +-`speckle`) over the pixels `inside` accepts.
fn paint(img: &mut RgbImage, colour: [u8; 3], speckle: i32, inside: impl Fn(f32, f32) -> bool) {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    for (x, y, p) in img.enumerate_pixels_mut() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        if inside(x as f32, y as f32) {
            let n = if speckle > 0 { (state % (2 * speckle as u64 + 1)) as i32 - speckle } else { 0 };
            p.0 = colour.map(|c| (c as i32 + n).clamp(0, 255) as u8);
        }
    }
}

fn eye_centres(l: &[face_core::Point]) -> (face_core::Point, face_core::Point) {
    (face_core::Point::mean(&l[36..42]), face_core::Point::mean(&l[42..48]))
}

/// The derived attributes follow what is painted on a real face: a glasses frame, a moustache,
/// lipstick, a green hat, a surgical mask. Before painting, the photo has none of them.
#[test]
fn appearance_follows_what_is_painted_on_the_face() {
    let photo = decoded("obama.jpg");
    let before = attributes_of(&photo);
    assert_eq!(before.glasses, face_core::Glasses::NoGlasses);
    assert!(before.facial_hair.moustache < 0.5, "{:?}", before.facial_hair);
    assert!(!before.makeup.lip_makeup);
    assert!(before.accessories.is_empty(), "{:?}", before.accessories);
    assert!(!before.occlusion.mouth_occluded && !before.occlusion.eye_occluded);
    let e = before.emotion;
    let sum = e.anger + e.contempt + e.disgust + e.fear + e.happiness + e.neutral + e.sadness + e.surprise;
    assert!((sum - 1.0).abs() < 1e-3, "emotions sum to {sum}");
    let colours: f32 = before.hair.hair_color.iter().map(|c| c.confidence).sum();
    assert!(colours <= 1.01 && before.hair.hair_color.windows(2).all(|w| w[0].confidence >= w[1].confidence));

    let l = points_of(&photo);
    let (le, re) = eye_centres(&l);
    let d = le.distance(re);

    // A dark frame: a rim around each eye and a bar across the bridge.
    let mut glasses = photo.clone();
    let rim = |x: f32, y: f32, c: face_core::Point| {
        let (dx, dy) = ((x - c.x).abs() / (0.42 * d), (y - c.y).abs() / (0.28 * d));
        let r = dx.max(dy);
        (0.9..1.0).contains(&r)
    };
    paint(&mut glasses, [20, 20, 20], 0, |x, y| {
        rim(x, y, le) || rim(x, y, re) || (x > le.x && x < re.x && (y - (le.y + re.y) / 2.0).abs() < 0.04 * d)
    });
    let a = attributes_of(&glasses);
    assert_eq!(a.glasses, face_core::Glasses::ReadingGlasses, "{:?}", a.accessories);
    assert!(a.accessories.iter().any(|x| x.kind == face_core::AccessoryType::Glasses));

    // A dark, textured moustache between the nose base and the upper lip.
    let mut moustache = photo.clone();
    let (nose, lip, ml, mr) = (l[33], l[51], l[48], l[54]);
    paint(&mut moustache, [45, 35, 30], 25, |x, y| {
        y > nose.y + 0.1 * (lip.y - nose.y) && y < lip.y && x > ml.x && x < mr.x
    });
    let a = attributes_of(&moustache);
    assert!(a.facial_hair.moustache >= 0.5, "{:?}", a.facial_hair);

    // Red lipstick over the lips.
    let mut lips = photo.clone();
    let (top, bottom) = (l[50].y.min(l[52].y), l[57].y);
    paint(&mut lips, [190, 20, 50], 6, |x, y| y > top && y < bottom && x > ml.x + 0.1 * d && x < mr.x - 0.1 * d);
    assert!(attributes_of(&lips).makeup.lip_makeup);

    // A bright green hat over the scalp.
    let mut hat = photo.clone();
    let mid_y = (le.y + re.y) / 2.0;
    paint(&mut hat, [30, 170, 40], 4, |x, y| y < mid_y - 1.0 * d && (x - (le.x + re.x) / 2.0).abs() < 1.2 * d);
    let a = attributes_of(&hat);
    assert_eq!(a.hair.hair_color.first().map(|c| c.color), Some(face_core::HairColorType::Other));
    assert!(a.hair.invisible);
    assert!(a.accessories.iter().any(|x| x.kind == face_core::AccessoryType::Headwear), "{:?}", a.accessories);

    // A pale blue mask from the middle of the nose to below the chin, jaw to jaw.
    let mut mask = photo.clone();
    let (top, left, right, bottom) = (l[29].y, l[2].x, l[14].x, l[8].y + 0.2 * d);
    paint(&mut mask, [150, 190, 225], 3, |x, y| y > top && y < bottom && x > left && x < right);
    let a = attributes_of(&mask);
    assert!(a.occlusion.mouth_occluded, "{:?}", a.occlusion);
    assert!(a.accessories.iter().any(|x| x.kind == face_core::AccessoryType::Mask), "{:?}", a.accessories);
}
