//! Image decoding with the Face API's input limits: JPEG, PNG, GIF (first frame) and BMP, EXIF
//! orientation applied, sizes checked before any pixel is decoded.

use std::io::Cursor;

use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, RgbImage};

use crate::error::{Error, Result};

/// Limits on what `decode` accepts. The defaults are the Face API v1.0 limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    pub min_file_bytes: usize,
    pub max_file_bytes: usize,
    pub min_side: u32,
    pub max_side: u32,
    /// Most bytes the decoder may allocate; guards against images whose header lies.
    pub max_alloc_bytes: u64,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            min_file_bytes: 1024,
            max_file_bytes: 6 * 1024 * 1024,
            min_side: 36,
            max_side: 4096,
            // A 4096x4096 RGBA16 frame plus the decoder's working buffers.
            max_alloc_bytes: 256 * 1024 * 1024,
        }
    }
}

/// Decodes `bytes` into an upright RGB image at full size.
pub fn decode(bytes: &[u8], limits: &DecodeLimits) -> Result<RgbImage> {
    decode_scaled(bytes, limits, 1).map(|d| d.image)
}

/// A photo decoded at `1/scale` of its size on each axis, upright.
#[derive(Debug, Clone)]
pub struct Decoded {
    pub image: RgbImage,
    /// Photo pixels per decoded pixel on each axis: 1, 2, 4 or 8. A point `p` of `image` is the
    /// point `p * scale` of the photo.
    pub scale: u32,
    /// The photo's own size, upright.
    pub width: u32,
    pub height: u32,
}

/// The scales a JPEG can be decoded at in the DCT domain (the inverse transform of each 8x8
/// block computed at 1x1, 2x2, 4x4 or 8x8).
pub const SCALES: [u32; 4] = [8, 4, 2, 1];

/// Decodes a photo at the smallest size whose longer side is still at least `min_side` pixels:
/// a large JPEG at 1/2, 1/4 or 1/8 in the DCT domain, which skips most of the inverse transform,
/// the colour conversion and the memory of a full decode; any other photo at full size.
pub fn decode_at_least(bytes: &[u8], limits: &DecodeLimits, min_side: u32) -> Result<Decoded> {
    decode_choosing(bytes, limits, |w, h| scale_keeping(w, h, min_side))
}

/// The coarsest of `SCALES` at which a `width x height` photo keeps `min_side` whole pixels on
/// its longer side (1 when none does): with 960, a photo under 1920 pixels is decoded in full.
pub(crate) fn scale_keeping(width: u32, height: u32, min_side: u32) -> u32 {
    let long = width.max(height);
    SCALES.into_iter().find(|&k| long / k >= min_side).unwrap_or(1)
}

/// Decodes a photo at `1/scale` of its size (`scale` 1, 2, 4 or 8) where it is a JPEG, at full
/// size otherwise; the sizes, orientation and limits are checked as for a full decode.
pub fn decode_scaled(bytes: &[u8], limits: &DecodeLimits, scale: u32) -> Result<Decoded> {
    if !SCALES.contains(&scale) {
        return Err(Error::InvalidArgument { reason: format!("decode scale {scale} is not one of 1, 2, 4, 8") });
    }
    decode_choosing(bytes, limits, |_, _| scale)
}

/// Checks the file and its header, asks `choose` for a scale (1, 2, 4 or 8; others read as 1)
/// given the photo's upright size, and decodes at that scale where the format allows.
pub fn decode_choosing(bytes: &[u8], limits: &DecodeLimits, choose: impl FnOnce(u32, u32) -> u32) -> Result<Decoded> {
    if bytes.len() < limits.min_file_bytes {
        return Err(Error::FileTooSmall { bytes: bytes.len(), min: limits.min_file_bytes });
    }
    if bytes.len() > limits.max_file_bytes {
        return Err(Error::FileTooLarge { bytes: bytes.len(), max: limits.max_file_bytes });
    }
    let format = image::guess_format(bytes).map_err(|_| Error::UnsupportedFormat { detected: None })?;
    if !matches!(format, ImageFormat::Jpeg | ImageFormat::Png | ImageFormat::Gif | ImageFormat::Bmp) {
        return Err(Error::UnsupportedFormat { detected: Some(format!("{format:?}")) });
    }
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut decoder_limits = image::Limits::default();
    decoder_limits.max_alloc = Some(limits.max_alloc_bytes);
    reader.limits(decoder_limits);
    // Sides are checked by us from the header (to report them); the decoder enforces the allocation cap.
    let mut decoder = reader.into_decoder().map_err(classify)?;
    let (width, height) = decoder.dimensions();
    check_dimensions(width, height, limits)?;
    // The header's promise of pixels, checked before a byte of them is decoded.
    let needed = decoder.total_bytes();
    if needed > limits.max_alloc_bytes {
        return Err(Error::DecompressionBomb {
            reason: format!(
                "{width}x{height} pixels need {needed} bytes decoded, over the {} byte limit",
                limits.max_alloc_bytes
            ),
        });
    }
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let (upright_w, upright_h) = match orientation {
        Orientation::Rotate90 | Orientation::Rotate270 | Orientation::Rotate90FlipH | Orientation::Rotate270FlipH => {
            (height, width)
        }
        _ => (width, height),
    };
    let scale = Some(choose(upright_w, upright_h)).filter(|k| SCALES.contains(k)).unwrap_or(1);
    let scaled = if format == ImageFormat::Jpeg && scale > 1 {
        jpeg_scaled(bytes, limits, (width, height), scale)
    } else {
        None
    };
    let (mut image, scale) = match scaled {
        Some(image) => (DynamicImage::ImageRgb8(image), scale),
        None => (DynamicImage::from_decoder(decoder).map_err(classify)?, 1),
    };
    image.apply_orientation(orientation);
    Ok(Decoded { image: image.into_rgb8(), scale, width: upright_w, height: upright_h })
}

/// A JPEG decoded at `1/scale` in the DCT domain (jpeg-decoder's scaled inverse transform), or
/// `None` when this decoder cannot give exactly that scale in RGB or grey (CMYK, 16-bit, a
/// stream it refuses, a frame whose size is not the `stored` one the header check passed): the
/// caller then decodes at full size, with the full decoder's errors.
fn jpeg_scaled(bytes: &[u8], limits: &DecodeLimits, stored: (u32, u32), scale: u32) -> Option<RgbImage> {
    use jpeg_decoder::PixelFormat;
    // The common case (baseline, greyscale or YCbCr, one scan) by the fast path: the same pixels.
    let want = (stored.0.div_ceil(scale), stored.1.div_ceil(scale));
    if let Some((w, h, rgb)) = crate::jpeg::decode_scaled(bytes, scale, limits.max_alloc_bytes)
        && (w, h) == want
    {
        return RgbImage::from_raw(w, h, rgb);
    }
    let mut decoder = jpeg_decoder::Decoder::new(Cursor::new(bytes));
    decoder.set_max_decoding_buffer_size(usize::try_from(limits.max_alloc_bytes).unwrap_or(usize::MAX));
    decoder.read_info().ok()?;
    let info = decoder.info()?;
    let (w, h) = (u32::from(info.width), u32::from(info.height));
    if (w, h) != stored {
        return None;
    }
    let want = (w.div_ceil(scale), h.div_ceil(scale));
    let got = decoder.scale(u16::try_from(want.0).ok()?, u16::try_from(want.1).ok()?).ok()?;
    if (u32::from(got.0), u32::from(got.1)) != want {
        return None;
    }
    let format = decoder.info()?.pixel_format;
    if !matches!(format, PixelFormat::RGB24 | PixelFormat::L8) {
        return None;
    }
    let pixels = decoder.decode().ok()?;
    let channels = if format == PixelFormat::L8 { 1 } else { 3 };
    if pixels.len() != want.0 as usize * want.1 as usize * channels {
        return None;
    }
    let rgb = match format {
        PixelFormat::L8 => pixels.iter().flat_map(|&v| [v, v, v]).collect(),
        _ => pixels,
    };
    RgbImage::from_raw(want.0, want.1, rgb)
}

/// An image from raw RGBA pixels (a browser's `ImageData`), with the same side limits as `decode`.
pub fn from_rgba(rgba: &[u8], width: u32, height: u32, limits: &DecodeLimits) -> Result<RgbImage> {
    check_dimensions(width, height, limits)?;
    // Both sides are at most `max_side` now, so this cannot overflow even on 32-bit targets.
    let expected = width as usize * height as usize * 4;
    if rgba.len() != expected {
        return Err(Error::InvalidArgument {
            reason: format!("{width}x{height} RGBA pixels take {expected} bytes, {} were given", rgba.len()),
        });
    }
    let rgb: Vec<u8> = rgba.chunks_exact(4).flat_map(|p| [p[0], p[1], p[2]]).collect();
    RgbImage::from_raw(width, height, rgb)
        .ok_or_else(|| Error::InvalidArgument { reason: "pixel buffer does not match the size".into() })
}

fn check_dimensions(width: u32, height: u32, limits: &DecodeLimits) -> Result<()> {
    if width > limits.max_side || height > limits.max_side {
        return Err(Error::ImageTooLarge { width, height, max: limits.max_side });
    }
    if width < limits.min_side || height < limits.min_side {
        return Err(Error::ImageTooSmall { width, height, min: limits.min_side });
    }
    Ok(())
}

fn classify(error: image::ImageError) -> Error {
    use image::ImageError as E;
    match error {
        E::Limits(limit) => Error::DecompressionBomb { reason: limit.to_string() },
        // The format passed the check above: this is a feature of it the decoder lacks.
        E::Unsupported(u) => Error::CorruptImage { reason: u.to_string() },
        other => Error::CorruptImage { reason: other.to_string() },
    }
}
