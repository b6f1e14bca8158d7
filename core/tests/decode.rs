use face_core::{DecodeLimits, Error, decode};
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
