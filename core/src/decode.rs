//! Image decoding with the Face API's input limits: JPEG, PNG, GIF (first frame) and BMP, EXIF
//! orientation applied, sizes checked before any pixel is decoded.

use std::io::Cursor;

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

/// Decodes `bytes` into an upright RGB image.
pub fn decode(bytes: &[u8], limits: &DecodeLimits) -> Result<RgbImage> {
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
    let orientation = decoder.orientation().unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut image = DynamicImage::from_decoder(decoder).map_err(classify)?;
    image.apply_orientation(orientation);
    Ok(image.into_rgb8())
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
