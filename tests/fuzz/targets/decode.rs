//! Decode: any bytes through face-core's decoder with the Face API's limits (JPEG, PNG, GIF,
//! BMP; EXIF orientation), in full and at each DCT scale. It must answer an image within the
//! limits or a typed error, and never panic, run away or allocate past its cap.

#![no_main]

use face_core::DecodeLimits;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    // Small limits as well as the defaults, so the size checks are crossed from both sides.
    let small = DecodeLimits { min_file_bytes: 0, min_side: 1, max_side: 512, ..DecodeLimits::default() };
    for limits in [DecodeLimits::default(), small] {
        if let Ok(image) = face_core::decode(data, &limits) {
            let (w, h) = image.dimensions();
            assert!(
                (limits.min_side..=limits.max_side).contains(&w) && (limits.min_side..=limits.max_side).contains(&h),
                "{w}x{h} is outside the limits {limits:?}"
            );
            assert_eq!(image.as_raw().len(), w as usize * h as usize * 3);
        }
        // The scaled decodes of large JPEGs (jpeg-decoder's DCT scaling) under the same limits: a
        // JPEG at 1/k is its photo's size divided by k, rounded up; any other image in full.
        for k in face_core::DECODE_SCALES {
            if let Ok(d) = face_core::decode_scaled(data, &limits, k) {
                let (w, h) = d.image.dimensions();
                assert!(
                    (limits.min_side..=limits.max_side).contains(&d.width)
                        && (limits.min_side..=limits.max_side).contains(&d.height),
                    "{}x{} is outside the limits {limits:?}",
                    d.width,
                    d.height
                );
                assert!(d.scale == 1 || d.scale == k, "asked 1/{k}, got 1/{}", d.scale);
                assert_eq!((w, h), (d.width.div_ceil(d.scale), d.height.div_ceil(d.scale)), "scale {}", d.scale);
                assert_eq!(d.image.as_raw().len(), w as usize * h as usize * 3);
            }
        }
    }
});
