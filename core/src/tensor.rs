//! Turning pixels into model input tensors: bilinear sampling and triangle-filter resizing
//! straight into planar (NCHW) f32.

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

/// `v.clamp(0.0, 255.0).round()` (halves away from zero; NaN reads as 0), without the `roundf`
/// library call that `round` becomes on wasm32 and x86-64: in 0..=255 the fraction `v - trunc(v)`
/// is exact. Comparisons and `trunc` (one wasm instruction) rather than `clamp` and an integer
/// round trip, which took half the detector resize's time in wasm: 1008x756 -> 640x480 went
/// 8.0 -> 6.5 ms in V8, and the guest's `detector-input` at 12 megapixels 13.1 -> 11.6 ms.
#[inline]
fn round_0_255(v: f32) -> f32 {
    let v = if v > 0.0 { if v < 255.0 { v } else { 255.0 } } else { 0.0 };
    let whole = v.trunc();
    whole + if v - whole >= 0.5 { 1.0 } else { 0.0 }
}

/// One output pixel's taps along an axis: the first source index and the normalised weights,
/// without the taps at either end that weigh nothing.
struct Taps {
    first: usize,
    weights: Vec<f32>,
}

/// The taps of `image::imageops::resize` with `FilterType::Triangle` from `from` pixels to `to`,
/// computed with the same f32 operations so the result is the same to the bit.
fn triangle_taps(from: usize, to: usize) -> Vec<Taps> {
    let ratio = from as f32 / to as f32;
    let sratio = ratio.max(1.0);
    let support = sratio; // the triangle kernel's support is 1, widened when shrinking
    (0..to)
        .map(|out| {
            let centre = (out as f32 + 0.5) * ratio;
            let first = ((centre - support).floor() as i64).clamp(0, from as i64 - 1);
            let end = ((centre + support).ceil() as i64).clamp(first + 1, from as i64);
            let centre = centre - 0.5;
            let mut weights: Vec<f32> = (first..end)
                .map(|i| {
                    let x = ((i as f32 - centre) / sratio).abs();
                    if x < 1.0 { 1.0 - x } else { 0.0 }
                })
                .collect();
            let sum: f32 = weights.iter().sum();
            weights.iter_mut().for_each(|w| *w /= sum);
            // The window's end taps often weigh nothing. A sum of non-negative terms is the
            // same to the bit without them (0 + 0 * p is 0, s + 0 * p is s), and their
            // multiplications go. The window always holds a tap with weight, so one stays.
            let lead = weights.iter().take_while(|&&w| w == 0.0).count().min(weights.len() - 1);
            let kept = weights.len() - weights.iter().rev().take_while(|&&w| w == 0.0).count();
            let weights = weights[lead..kept.max(lead + 1)].to_vec();
            Taps { first: first as usize + lead, weights }
        })
        .collect()
}

/// The vertical pass for one output row: `out[i]` is the sum over the taps, in their order, of
/// the tap's source row `raw[(first + k) * stride + i]` times its weight. Sixteen values at a time
/// are summed in registers (one store each, not one per tap), the same operations in the same
/// order as a tap-by-tap pass over the row.
#[inline(always)]
fn vertical_taps(raw: &[u8], stride: usize, taps: &Taps, out: &mut [f32]) {
    const LANES: usize = 16;
    let rows: Vec<&[u8]> = (0..taps.weights.len()).map(|k| &raw[(taps.first + k) * stride..][..out.len()]).collect();
    let whole = out.len() / LANES * LANES;
    for (j, block) in out[..whole].chunks_exact_mut(LANES).enumerate() {
        let mut acc = [0.0f32; LANES];
        for (src, &w) in rows.iter().zip(&taps.weights) {
            let src: &[u8; LANES] = src[j * LANES..][..LANES].try_into().expect("a whole block");
            for (a, &v) in acc.iter_mut().zip(src) {
                *a += v as f32 * w;
            }
        }
        block.copy_from_slice(&acc);
    }
    for (i, o) in out.iter_mut().enumerate().skip(whole) {
        let mut acc = 0.0f32;
        for (src, &w) in rows.iter().zip(&taps.weights) {
            acc += src[i] as f32 * w;
        }
        *o = acc;
    }
}

/// One output pixel of the horizontal pass: `src` holds its `N` taps' pixels (three channels
/// each) and one value more, `weights` the taps' weights (zeros past the pixel's own taps, which
/// leave a sum of non-negative terms unchanged to the bit); each channel's sum in tap order.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[inline(always)]
fn horizontal_taps<const N: usize>(src: &[f32], weights: &[f32; N]) -> [f32; 3] {
    use std::arch::wasm32::{f32x4, f32x4_add, f32x4_extract_lane, f32x4_mul, f32x4_splat};
    // A pixel's three channels and the next value as one four-lane vector (the fourth lane is
    // not used): a third of the scalar pass's operations.
    let src = &src[..N * 3 + 1];
    let mut t = f32x4_splat(0.0);
    for (k, &w) in weights.iter().enumerate() {
        let p = &src[k * 3..k * 3 + 4];
        t = f32x4_add(t, f32x4_mul(f32x4(p[0], p[1], p[2], p[3]), f32x4_splat(w)));
    }
    [f32x4_extract_lane::<0>(t), f32x4_extract_lane::<1>(t), f32x4_extract_lane::<2>(t)]
}

#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
#[inline(always)]
fn horizontal_taps<const N: usize>(src: &[f32], weights: &[f32; N]) -> [f32; 3] {
    horizontal_taps_scalar(src, weights)
}

/// [`horizontal_taps`] one channel at a time, for any number of taps.
#[inline(always)]
fn horizontal_taps_scalar(src: &[f32], weights: &[f32]) -> [f32; 3] {
    let src = &src[..weights.len() * 3];
    let mut t = [0.0f32; 3];
    for (p, &w) in src.chunks_exact(3).zip(weights) {
        t[0] += p[0] * w;
        t[1] += p[1] * w;
        t[2] += p[2] * w;
    }
    t
}

/// The horizontal pass of one output row with every pixel's taps padded to `N`: `weights` holds
/// `N` per output pixel, `row` is padded with zeros past the source row.
fn horizontal_row<const N: usize>(row: &[f32], cols: &[Taps], weights: &[f32], line: &mut [Vec<f32>; 3]) {
    for (x, (taps, w)) in cols.iter().zip(weights.chunks_exact(N)).enumerate() {
        let w: &[f32; N] = w.try_into().expect("N weights");
        let t = horizontal_taps::<N>(&row[taps.first * 3..], w);
        for c in 0..3 {
            line[c][x] = t[c];
        }
    }
}

/// Resizes `img` to `width x height` with a triangle filter, exactly as
/// `image::imageops::resize(img, width, height, FilterType::Triangle)` does (rows first, then
/// columns, each result rounded to a whole 0..255 value), and writes the result into the top-left
/// corner of a `3 x canvas_h x canvas_w` planar tensor, channel `c` of the image to plane
/// `planes[c]`; the rest stays zero (black). One source row pass per output row, row-major
/// throughout: about 10x faster than the generic resize and no intermediate image.
pub(crate) fn resize_planar(
    img: &RgbImage,
    width: usize,
    height: usize,
    (canvas_w, canvas_h): (usize, usize),
    planes: [usize; 3],
) -> Vec<f32> {
    let plane = canvas_w * canvas_h;
    let mut out = vec![0.0f32; 3 * plane];
    let (iw, ih) = (img.width() as usize, img.height() as usize);
    let (width, height) = (width.min(canvas_w), height.min(canvas_h));
    if iw == 0 || ih == 0 || width == 0 || height == 0 {
        return out;
    }
    let raw = img.as_raw();
    if (iw, ih) == (width, height) {
        for (y, src) in raw.chunks_exact(iw * 3).enumerate() {
            for c in 0..3 {
                let dst = &mut out[planes[c] * plane + y * canvas_w..][..iw];
                for (d, p) in dst.iter_mut().zip(src.chunks_exact(3)) {
                    *d = p[c] as f32;
                }
            }
        }
        return out;
    }
    let rows = triangle_taps(ih, height);
    let cols = triangle_taps(iw, width);
    // Every output pixel's horizontal taps padded with zero weights to 4, 8 or the widest's
    // count, so the pass runs one fixed-length (unrolled) loop per pixel.
    let widest = cols.iter().map(|t| t.weights.len()).max().unwrap_or(1);
    let span = match widest {
        0..=4 => 4,
        5..=8 => 8,
        n => n,
    };
    let weights: Vec<f32> =
        cols.iter().flat_map(|t| t.weights.iter().copied().chain(std::iter::repeat(0.0)).take(span)).collect();
    // The vertical pass's row, then zeros that padded taps and the fourth lane read.
    let mut row = vec![0.0f32; (iw + span) * 3 + 1];
    // One output row per channel, copied into its plane whole.
    let mut line = [vec![0.0f32; width], vec![0.0f32; width], vec![0.0f32; width]];
    for (y, taps) in rows.iter().enumerate() {
        // The vertical pass for this output row, over the full source width.
        vertical_taps(raw, iw * 3, taps, &mut row[..iw * 3]);
        // The horizontal pass, rounded to 0..255 like the u8 image `resize` returns; each sum
        // adds its taps in the same order as the image crate, so the result is the same to the bit.
        match span {
            4 => horizontal_row::<4>(&row, &cols, &weights, &mut line),
            8 => horizontal_row::<8>(&row, &cols, &weights, &mut line),
            _ => {
                for (x, (taps, w)) in cols.iter().zip(weights.chunks_exact(span)).enumerate() {
                    let t = horizontal_taps_scalar(&row[taps.first * 3..], w);
                    for c in 0..3 {
                        line[c][x] = t[c];
                    }
                }
            }
        }
        // Rounded a line at a time, so the compiler keeps the rounding in vectors.
        for values in &mut line {
            for v in values.iter_mut() {
                *v = round_0_255(*v);
            }
        }
        for (c, values) in line.iter().enumerate() {
            out[planes[c] * plane + y * canvas_w..][..width].copy_from_slice(values);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use image::imageops::{self, FilterType};

    use super::*;

    /// A deterministic, busy test picture (gradients and a checkerboard), so rounding shows.
    fn picture(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| {
            let check = if (x / 3 + y / 5) % 2 == 0 { 200 } else { 17 };
            image::Rgb([(x * 255 / w.max(1)) as u8, check, ((x * 7 + y * 13) % 256) as u8])
        })
    }

    #[test]
    fn resize_planar_matches_the_image_crates_triangle_resize_to_the_bit() {
        // Shrinking (both axes, one axis, by large ratios), enlarging, and the same size.
        for ((w, h), (nw, nh)) in [
            ((910, 1137), (512, 640)),
            ((640, 480), (640, 480)),
            ((1000, 333), (640, 213)),
            ((150, 120), (300, 240)),
            ((97, 61), (13, 640)),
            ((1, 1), (2, 2)),
            // The detector's inputs from 12 MP and 1920x1080 photos decoded at 1/4 and 1/2.
            ((1008, 756), (640, 480)),
            ((960, 540), (640, 360)),
            ((1920, 1080), (640, 360)),
            ((2000, 30), (81, 1)),
        ] {
            let img = picture(w, h);
            let expected = imageops::resize(&img, nw, nh, FilterType::Triangle);
            let (cw, ch) = (nw as usize + 3, nh as usize + 1);
            let tensor = resize_planar(&img, nw as usize, nh as usize, (cw, ch), [2, 0, 1]);
            let plane = cw * ch;
            for y in 0..ch {
                for x in 0..cw {
                    let inside = x < nw as usize && y < nh as usize;
                    for (c, p) in [2, 0, 1].into_iter().enumerate() {
                        let want = if inside { expected.get_pixel(x as u32, y as u32)[c] as f32 } else { 0.0 };
                        let got = tensor[p * plane + y * cw + x];
                        assert_eq!(got, want, "{w}x{h} -> {nw}x{nh}: pixel ({x}, {y}) channel {c}");
                    }
                }
            }
        }
    }

    #[test]
    fn rounding_to_0_255_rounds_halves_away_from_zero_and_clamps() {
        for v in [-3.0f32, -0.5, 0.0, 0.49999997, 0.5, 1.5, 2.5, 127.49999, 127.5, 254.5, 254.99998, 255.0, 300.0] {
            assert_eq!(round_0_255(v), v.clamp(0.0, 255.0).round(), "{v}");
        }
        assert_eq!(round_0_255(f32::NAN), 0.0);
        let mut v = 0.0f32;
        while v <= 256.0 {
            assert_eq!(round_0_255(v), v.clamp(0.0, 255.0).round(), "{v}");
            v += 0.013;
        }
    }
}
