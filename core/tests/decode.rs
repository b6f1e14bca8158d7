use face_core::{DecodeLimits, DetectOptions, Error, decode};
use image::{ImageFormat, Rgb, RgbImage, imageops};

use crate::common::{decoded, encode, engine, photo};

#[test]
fn every_supported_format_decodes_to_the_same_size_and_finds_the_face() {
    let original = decoded("obama.jpg");
    for format in [ImageFormat::Png, ImageFormat::Gif, ImageFormat::Bmp, ImageFormat::Jpeg] {
        let bytes = encode(&original, format);
        let img = decode(&bytes, &DecodeLimits::default()).unwrap_or_else(|e| panic!("{format:?}: {e}"));
        assert_eq!(img.dimensions(), original.dimensions(), "{format:?}");
        let faces = engine().detect(&bytes, &Default::default()).expect("detect");
        assert_eq!(faces.len(), 1, "{format:?}");
    }
}

/// Inserts an EXIF APP1 segment carrying `orientation` right after the JPEG's SOI marker.
fn with_exif_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
    let mut tiff = Vec::new();
    tiff.extend_from_slice(b"II*\0");
    tiff.extend_from_slice(&8u32.to_le_bytes()); // first IFD offset
    tiff.extend_from_slice(&1u16.to_le_bytes()); // one entry
    tiff.extend_from_slice(&0x0112u16.to_le_bytes()); // Orientation
    tiff.extend_from_slice(&3u16.to_le_bytes()); // SHORT
    tiff.extend_from_slice(&1u32.to_le_bytes()); // count
    tiff.extend_from_slice(&orientation.to_le_bytes());
    tiff.extend_from_slice(&[0, 0]);
    tiff.extend_from_slice(&0u32.to_le_bytes()); // no next IFD
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend_from_slice(&tiff);
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&app1);
    out.extend_from_slice(&jpeg[2..]);
    out
}

#[test]
fn exif_orientation_is_applied_before_detection() {
    let upright = decoded("obama.jpg");
    // Stored rotated a quarter turn anticlockwise; orientation 6 says "rotate 90 clockwise to view".
    let stored = imageops::rotate270(&upright);
    let plain = encode(&stored, ImageFormat::Jpeg);
    let tagged = with_exif_orientation(&plain, 6);

    let img = decode(&tagged, &DecodeLimits::default()).expect("decode");
    assert_eq!(img.dimensions(), upright.dimensions());
    let faces = engine().detect(&tagged, &Default::default()).expect("detect");
    assert_eq!(faces.len(), 1);
    let untagged = engine().detect(&plain, &Default::default()).expect("detect");
    let (a, b) = (
        faces[0].rectangle,
        engine().detect(&encode(&upright, ImageFormat::Jpeg), &Default::default()).unwrap()[0].rectangle,
    );
    assert!((a.left as i64 - b.left as i64).abs() < 8 && (a.top as i64 - b.top as i64).abs() < 8, "{a:?} vs {b:?}");
    // Without the tag the face lies on its side: a different rectangle, if any.
    assert!(untagged.iter().all(|f| f.rectangle != a));
}

#[test]
fn size_limits_have_their_own_errors() {
    let limits = DecodeLimits::default();
    assert!(matches!(decode(&[], &limits), Err(Error::FileTooSmall { bytes: 0, .. })));
    let huge = vec![0u8; limits.max_file_bytes + 1];
    assert!(matches!(decode(&huge, &limits), Err(Error::FileTooLarge { .. })));

    let small = encode(&RgbImage::from_pixel(30, 200, Rgb([90, 90, 90])), ImageFormat::Bmp);
    assert!(
        matches!(decode(&small, &limits), Err(Error::ImageTooSmall { width: 30, height: 200, .. })),
        "{:?}",
        decode(&small, &limits)
    );
    let wide = encode(&RgbImage::from_pixel(4100, 40, Rgb([90, 90, 90])), ImageFormat::Png);
    assert!(matches!(decode(&wide, &limits), Err(Error::ImageTooLarge { width: 4100, height: 40, .. })));
    let ok = encode(&RgbImage::from_pixel(4096, 36, Rgb([90, 90, 90])), ImageFormat::Png);
    assert!(decode(&ok, &limits).is_ok());
}

#[test]
fn formats_outside_the_four_are_refused() {
    let limits = DecodeLimits::default();
    for magic in [&b"II*\0"[..], b"RIFF\0\0\0\0WEBPVP8 "] {
        let mut bytes = magic.to_vec();
        bytes.resize(4096, 0);
        assert!(
            matches!(decode(&bytes, &limits), Err(Error::UnsupportedFormat { detected: Some(_) })),
            "{magic:?}: {:?}",
            decode(&bytes, &limits)
        );
    }
    let text = "this is not an image at all. ".repeat(100).into_bytes();
    assert!(matches!(decode(&text, &limits), Err(Error::UnsupportedFormat { detected: None })));
}

#[test]
fn allocation_cap_is_obeyed_and_violated() {
    // 2000x2000 of one colour: a PNG of a few KB that decodes to 12 MB.
    let bomb = encode(&RgbImage::from_pixel(2000, 2000, Rgb([1, 2, 3])), ImageFormat::Png);
    assert!(bomb.len() < 100_000);
    let roomy = DecodeLimits::default();
    assert!(decode(&bomb, &roomy).is_ok());
    let tight = DecodeLimits { max_alloc_bytes: 4 * 1024 * 1024, ..roomy };
    assert!(matches!(decode(&bomb, &tight), Err(Error::DecompressionBomb { .. })), "{:?}", decode(&bomb, &tight).err());
}

#[test]
fn truncated_and_corrupt_images_give_typed_errors_or_faces() {
    let jpeg = photo("obama.jpg");
    let half = &jpeg[..jpeg.len() / 2];
    match engine().detect(half, &Default::default()) {
        Ok(faces) => assert!(faces.len() <= 1),
        Err(e) => assert!(matches!(e, Error::CorruptImage { .. }), "{e}"),
    }
    let header_only = &jpeg[..1500];
    assert!(engine().detect(header_only, &Default::default()).is_err());
}

/// obama.jpg enlarged 3.3 times in the top-left corner of a 12-megapixel phone photo
/// (4032x3024, grey elsewhere), as a JPEG.
fn phone_photo(upright: &RgbImage) -> Vec<u8> {
    let (w, h) = ((upright.width() as f32 * 3.3).round() as u32, (upright.height() as f32 * 3.3).round() as u32);
    let mut canvas = RgbImage::from_pixel(4032, 3024, Rgb([128, 128, 128]));
    imageops::replace(&mut canvas, &imageops::resize(upright, w, h, imageops::FilterType::Triangle), 0, 0);
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90).encode_image(&canvas).expect("encode");
    out
}

#[test]
fn a_large_jpeg_is_decoded_at_the_dct_scale_the_detector_needs_and_other_formats_in_full() {
    let upright = decoded("obama.jpg");
    let jpeg = phone_photo(&upright);
    let limits = DecodeLimits::default();
    let d = face_core::decode_at_least(&jpeg, &limits, face_core::DETECT_SIDE).expect("decode");
    assert_eq!((d.scale, d.width, d.height, d.image.dimensions()), (4, 4032, 3024, (1008, 756)));
    // Each decoded pixel is the mean of its 4x4 block, near enough to the full decode's.
    let full = decode(&jpeg, &limits).expect("decode");
    let block_mean = |x: u32, y: u32, c: usize| {
        let sum: u32 = (0..16).map(|i| u32::from(full.get_pixel(x * 4 + i % 4, y * 4 + i / 4)[c])).sum();
        sum as f32 / 16.0
    };
    let mut error = 0.0f32;
    for (x, y) in [(100, 100), (504, 300), (700, 600), (1000, 750), (10, 740)] {
        for c in 0..3 {
            error = error.max((f32::from(d.image.get_pixel(x, y)[c]) - block_mean(x, y, c)).abs());
        }
    }
    assert!(error < 12.0, "a 1/4 decode pixel is {error} levels from its block's mean");
    for k in face_core::DECODE_SCALES {
        let s = face_core::decode_scaled(&jpeg, &limits, k).expect("decode");
        assert_eq!((s.scale, s.image.dimensions()), (k, (4032 / k, 3024 / k)), "scale {k}");
    }
    assert!(face_core::decode_scaled(&jpeg, &limits, 3).is_err());
    // A PNG has no DCT: decoded in full whatever is asked.
    let png = encode(&imageops::resize(&upright, 2000, 1600, imageops::FilterType::Triangle), ImageFormat::Png);
    let p = face_core::decode_at_least(&png, &limits, face_core::DETECT_SIDE).expect("decode");
    assert_eq!((p.scale, p.image.dimensions()), (1, (2000, 1600)));
    // A small JPEG too, and its pixels are the full decoder's.
    let small = encode(&upright, ImageFormat::Jpeg);
    let s = face_core::decode_at_least(&small, &limits, face_core::DETECT_SIDE).expect("decode");
    assert_eq!((s.scale, &s.image), (1, &decode(&small, &limits).unwrap()));
}

#[test]
fn a_scaled_decode_keeps_the_exif_orientation_and_the_limits() {
    let upright = decoded("obama.jpg");
    let big = imageops::resize(&upright, 3024, 4032, imageops::FilterType::Triangle);
    let stored = imageops::rotate270(&big);
    let mut plain = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut plain, 85).encode_image(&stored).expect("encode");
    let tagged = with_exif_orientation(&plain, 6);
    let d = face_core::decode_at_least(&tagged, &DecodeLimits::default(), face_core::DETECT_SIDE).expect("decode");
    assert_eq!((d.scale, d.width, d.height, d.image.dimensions()), (4, 3024, 4032, (756, 1008)));
    let limits = DecodeLimits { max_side: 4000, ..DecodeLimits::default() };
    assert!(matches!(
        face_core::decode_at_least(&tagged, &limits, face_core::DETECT_SIDE),
        Err(Error::ImageTooLarge { width: 4032, height: 3024, .. })
    ));
}

/// Whether two detect answers for one photo are the same faces within `tolerance` of each
/// face's side: rectangles, 68 landmarks, and embeddings of one person.
fn same_faces(got: &[face_core::Face], want: &[face_core::Face], tolerance: f32) {
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        let (a, b) = (g.rectangle, w.rectangle);
        let side = b.width as f32;
        let off = [(a.left, b.left), (a.top, b.top), (a.width, b.width), (a.height, b.height)]
            .iter()
            .map(|&(x, y)| (x as f32 - y as f32).abs())
            .fold(0.0, f32::max);
        assert!(off <= tolerance * side, "{a:?} against {b:?}");
        let (p, q) = (g.landmarks68.as_ref().unwrap(), w.landmarks68.as_ref().unwrap());
        let worst = p.iter().zip(q).map(|(p, q)| (p.x - q.x).hypot(p.y - q.y)).fold(0.0, f32::max);
        assert!(worst <= tolerance * side, "a landmark moved {worst} pixels of a {side}-pixel face");
        let v = face_core::verify(g.embedding.as_ref().unwrap(), w.embedding.as_ref().unwrap()).unwrap();
        assert!(v.is_identical && v.confidence > 0.9, "{v:?}");
    }
}

#[test]
fn a_phone_photo_gives_the_faces_of_a_full_decode_in_its_own_pixels() {
    let upright = decoded("obama.jpg");
    let jpeg = phone_photo(&upright);
    let options = DetectOptions { recognition: Some(face_core::RecognitionModel::SFace), ..Default::default() };
    // Decoded at 1/4 and described there (the face is about 770 pixels wide).
    let scaled = engine().detect(&jpeg, &options).expect("detect");
    let full = engine().detect_image(&decode(&jpeg, &DecodeLimits::default()).unwrap(), &options).expect("detect");
    same_faces(&scaled, &full, 0.02);
    // The same face found from its rectangle (AddFace's targetFace) in the large photo.
    let b = scaled[0].rectangle;
    let target =
        face_core::RectF { left: b.left as f32, top: b.top as f32, width: b.width as f32, height: b.height as f32 };
    let found = engine().face_in_photo(&jpeg, target, &options).expect("face in rect");
    let decoded = decode(&jpeg, &DecodeLimits::default()).unwrap();
    let in_full = engine().face_in_rect(&decoded, target, &options).expect("face in rect");
    let (f, g) = (found.rectangle, in_full.rectangle);
    let off = [(f.left, g.left), (f.top, g.top), (f.width, g.width)].iter().map(|&(x, y)| x.abs_diff(y)).max();
    assert!(off.unwrap() as f32 <= 0.02 * g.width as f32, "{f:?} against {g:?}");
    let v = face_core::verify(found.embedding.as_ref().unwrap(), in_full.embedding.as_ref().unwrap()).unwrap();
    assert!(v.is_identical && v.confidence > 0.9, "{v:?}");
}

#[test]
fn a_small_face_in_a_large_photo_is_described_from_a_finer_decode() {
    // The face is about 240 pixels wide in a 4032x3024 photo: found at the 1/4 decode (the
    // detector sees 640 pixels either way), but under FACE_DETAIL there, and at 1/2.
    let upright = decoded("obama.jpg");
    let face = imageops::resize(&upright, 1000, 800, imageops::FilterType::Triangle);
    let mut canvas = RgbImage::from_pixel(4032, 3024, Rgb([120, 110, 100]));
    imageops::replace(&mut canvas, &face, 2000, 1500);
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90).encode_image(&canvas).expect("encode");
    let options = DetectOptions { recognition: Some(face_core::RecognitionModel::SFace), ..Default::default() };
    let scaled = engine().detect(&jpeg, &options).expect("detect");
    assert!(scaled[0].rectangle.width < 300, "{:?}", scaled[0].rectangle);
    let full = engine().detect_image(&decode(&jpeg, &DecodeLimits::default()).unwrap(), &options).expect("detect");
    same_faces(&scaled, &full, 0.03);
}

#[test]
fn a_photo_under_twice_the_detect_side_is_analysed_exactly_as_from_its_full_decode() {
    // obama.jpg is 1137x910: decoded in full by detect and by face_in_photo alike, even for a
    // target large enough to keep its detail at 1/2.
    let bytes = photo("obama.jpg");
    let img = decoded("obama.jpg");
    let options = DetectOptions { recognition: Some(face_core::RecognitionModel::SFace), ..Default::default() };
    let faces = engine().detect(&bytes, &options).unwrap();
    assert_eq!(faces, engine().detect_image(&img, &options).unwrap());
    let r = faces[0].rectangle;
    for grow in [1.0, 1.4] {
        let target = face_core::RectF {
            left: r.left as f32 - (grow - 1.0) * r.width as f32 / 2.0,
            top: r.top as f32 - (grow - 1.0) * r.height as f32 / 2.0,
            width: r.width as f32 * grow,
            height: r.height as f32 * grow,
        };
        assert_eq!(
            engine().face_in_photo(&bytes, target, &options).unwrap(),
            engine().face_in_rect(&img, target, &options).unwrap(),
            "target {target:?}"
        );
    }
}

#[test]
fn a_jpeg_under_1920_pixels_and_a_detect_with_attributes_decode_in_full() {
    let upright = decoded("obama.jpg");
    let limits = DecodeLimits::default();
    let mut jpeg = Vec::new();
    let almost = imageops::resize(&upright, 1919, 1536, imageops::FilterType::Triangle);
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90).encode_image(&almost).expect("encode");
    let d = face_core::decode_at_least(&jpeg, &limits, face_core::DETECT_SIDE).expect("decode");
    assert_eq!((d.scale, d.image.dimensions()), (1, (1919, 1536)));
    // A 12-megapixel photo asked for attributes: its faces are those of the full decode.
    let big = phone_photo(&upright);
    let options = DetectOptions { attributes: true, ..Default::default() };
    let full = engine().detect_image(&decode(&big, &limits).unwrap(), &options).unwrap();
    assert_eq!(engine().detect(&big, &options).unwrap(), full);
}
