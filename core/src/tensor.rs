//! Turning pixels into model input tensors: bilinear sampling straight into planar (NCHW) f32.

use image::RgbImage;

use crate::geometry::{RectF, Similarity};

/// Samples `img` at (x, y) with bilinear interpolation; outside the image reads as black.
#[inline]
fn sample(img: &RgbImage, x: f32, y: f32) -> [f32; 3] {
    let (w, h) = (img.width() as i64, img.height() as i64);
    // Also rejects NaN and infinities before any cast.
    if !(x > -1.0 && y > -1.0 && x < w as f32 && y < h as f32) {
        return [0.0; 3];
    }
    let x0 = x.floor();
    let y0 = y.floor();
    let (fx, fy) = (x - x0, y - y0);
    let (x0, y0) = (x0 as i64, y0 as i64);
    let raw = img.as_raw();
    let px = |xi: i64, yi: i64| -> [f32; 3] {
        if xi < 0 || yi < 0 || xi >= w || yi >= h {
            return [0.0; 3];
        }
        let i = ((yi * w + xi) * 3) as usize;
        [raw[i] as f32, raw[i + 1] as f32, raw[i + 2] as f32]
    };
    let (p00, p10, p01, p11) = (px(x0, y0), px(x0 + 1, y0), px(x0, y0 + 1), px(x0 + 1, y0 + 1));
    let mut out = [0.0; 3];
    for c in 0..3 {
        let top = p00[c] + (p10[c] - p00[c]) * fx;
        let bottom = p01[c] + (p11[c] - p01[c]) * fx;
        out[c] = top + (bottom - top) * fy;
    }
    out
}

/// Fills a `3 x height x width` planar RGB tensor by mapping each output pixel centre through `map`
/// (output pixel -> source pixel) and sampling the source bilinearly.
pub fn warp_planar(
    img: &RgbImage,
    width: usize,
    height: usize,
    map: impl Fn(f32, f32) -> Option<(f32, f32)>,
) -> Vec<f32> {
    let plane = width * height;
    let mut out = vec![0.0f32; 3 * plane];
    for v in 0..height {
        for u in 0..width {
            let Some((sx, sy)) = map(u as f32, v as f32) else { continue };
            let rgb = sample(img, sx, sy);
            let i = v * width + u;
            out[i] = rgb[0];
            out[plane + i] = rgb[1];
            out[2 * plane + i] = rgb[2];
        }
    }
    out
}

/// face-api.js's input: crop `rect` from the image, pad it to a square with black, centred, then
/// resize to `size`. Returns the tensor and the square (in image coordinates) it covers.
pub fn crop_pad_square(img: &RgbImage, rect: RectF, size: usize) -> (Vec<f32>, RectF) {
    // face-api.js clips the box to the image before padding it to a square.
    let (iw, ih) = (img.width() as f32, img.height() as f32);
    let (x1, y1) = (rect.left.max(0.0), rect.top.max(0.0));
    let (x2, y2) = ((rect.left + rect.width).min(iw), (rect.top + rect.height).min(ih));
    let rect = if x2 > x1 && y2 > y1 { RectF { left: x1, top: y1, width: x2 - x1, height: y2 - y1 } } else { rect };
    let square = rect.square(1.0);
    let scale = square.width / size as f32;
    let (x1, y1) = (rect.left, rect.top);
    let (x2, y2) = (rect.left + rect.width, rect.top + rect.height);
    let tensor = warp_planar(img, size, size, |u, v| {
        let sx = square.left + (u + 0.5) * scale - 0.5;
        let sy = square.top + (v + 0.5) * scale - 0.5;
        // The padding that face-api.js adds around a non-square crop is black.
        if sx < x1 - 0.5 || sx > x2 - 0.5 || sy < y1 - 0.5 || sy > y2 - 0.5 { None } else { Some((sx, sy)) }
    });
    (tensor, square)
}

/// Warps the image through `to_crop` (image -> crop) into a `size x size` crop.
pub fn warp_similarity(img: &RgbImage, to_crop: &Similarity, size: usize) -> Vec<f32> {
    let Some(inverse) = to_crop.inverse() else {
        return vec![0.0; 3 * size * size];
    };
    warp_planar(img, size, size, |u, v| {
        let p = inverse.apply(crate::geometry::Point::new(u, v));
        Some((p.x, p.y))
    })
}
