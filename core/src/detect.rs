//! Face detection with YuNet (2023mar): letterbox into the smallest of the detector's input sizes
//! (`DETECTOR_SHAPES`) that holds the photo scaled to 640 on its longer side, decode the
//! anchor-free heads at strides 8, 16 and 32, then non-maximum suppression.
//!
//! Choices, measured with `cargo xtask eval` on shared/data (see ARCHITECTURE.md):
//! - the image is scaled so its longer side is 640, but never enlarged more than 2x: a face that
//!   fills the whole input is outside what YuNet saw in training and scores low (at 0.9, every
//!   150x150 face crop enlarged to 640 was missed);
//! - score threshold 0.8 (YuNet's score is sqrt(cls * obj));
//! - NMS at IoU 0.3, as OpenCV's FaceDetectorYN.

use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::geometry::{Point, RectF};
use crate::model::{DETECTOR_SHAPES, Model};

pub(crate) const INPUT: usize = 640;
const STRIDES: [usize; 3] = [8, 16, 32];
/// Default minimum score for a detection.
pub const DEFAULT_MIN_SCORE: f32 = 0.8;
pub(crate) const MAX_UPSCALE: f32 = 2.0;
pub(crate) const NMS_IOU: f32 = 0.3;

/// One face found by the detector, in image pixels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    pub rect: RectF,
    pub score: f32,
    /// Eye (image left), eye (image right), nose tip, mouth corner (image left), mouth corner (image right).
    pub landmarks5: [Point; 5],
}

impl Detection {
    /// The detection in the coordinates of an image `k` times larger on each axis.
    pub fn scaled(self, k: f32) -> Detection {
        let r = self.rect;
        Detection {
            rect: RectF { left: r.left * k, top: r.top * k, width: r.width * k, height: r.height * k },
            score: self.score,
            landmarks5: self.landmarks5.map(|p| Point::new(p.x * k, p.y * k)),
        }
    }
}

pub(crate) fn detect(model: &Model, img: &RgbImage, min_score: f32, max_faces: usize) -> Result<Vec<Detection>> {
    if !(0.0..=1.0).contains(&min_score) {
        return Err(Error::InvalidArgument { reason: format!("min_score {min_score} is outside 0..1") });
    }
    let (w, h) = (img.width() as f32, img.height() as f32);
    let (nw, nh) = scaled_size(img.width(), img.height());
    // The scale actually applied on each axis, after rounding to whole pixels.
    let (sx, sy) = (nw as f32 / w, nh as f32 / h);
    let [_, _, canvas_h, canvas_w] = input_shape(nw as usize, nh as usize);
    // BGR, 0..255, planar, image in the top-left corner and black elsewhere (as OpenCV pads).
    let input = crate::tensor::resize_planar(img, nw as usize, nh as usize, (canvas_w, canvas_h), [2, 1, 0]);
    let outputs = model.run(&[1, 3, canvas_h, canvas_w], input)?;
    if outputs.len() != 12 {
        return Err(Error::Model {
            model: model.name(),
            reason: format!("expected 12 outputs, got {}", outputs.len()),
        });
    }
    let mut found = Vec::new();
    for (level, &stride) in STRIDES.iter().enumerate() {
        // Output order in the file: cls_8,16,32, obj_8,16,32, bbox_8,16,32, kps_8,16,32.
        let (cls, obj, bbox, kps) = (&outputs[level], &outputs[3 + level], &outputs[6 + level], &outputs[9 + level]);
        let cols = canvas_w / stride;
        let n = cols * (canvas_h / stride);
        if cls.len() != n || obj.len() != n || bbox.len() != 4 * n || kps.len() != 10 * n {
            return Err(Error::Model {
                model: model.name(),
                reason: format!("outputs at stride {stride} do not have the shapes of YuNet at {canvas_w}x{canvas_h}"),
            });
        }
        let s = stride as f32;
        for idx in 0..n {
            let score = (cls[idx].clamp(0.0, 1.0) * obj[idx].clamp(0.0, 1.0)).sqrt();
            if score < min_score || !score.is_finite() {
                continue;
            }
            let (row, col) = ((idx / cols) as f32, (idx % cols) as f32);
            let b = &bbox[idx * 4..idx * 4 + 4];
            let (cx, cy) = ((col + b[0]) * s, (row + b[1]) * s);
            let (bw, bh) = (b[2].exp() * s, b[3].exp() * s);
            let k = &kps[idx * 10..idx * 10 + 10];
            let landmarks5 =
                std::array::from_fn(|n| Point::new((k[2 * n] + col) * s / sx, (k[2 * n + 1] + row) * s / sy));
            let rect = RectF { left: (cx - bw / 2.0) / sx, top: (cy - bh / 2.0) / sy, width: bw / sx, height: bh / sy };
            let finite = [rect.left, rect.top, rect.width, rect.height].iter().all(|v| v.is_finite())
                && landmarks5.iter().all(|p| p.x.is_finite() && p.y.is_finite());
            let detection = Detection { rect, score, landmarks5 };
            if finite && rect.width > 0.0 && rect.height > 0.0 && centre_inside(&detection, w, h) {
                found.push(detection);
            }
        }
    }
    let mut kept = nms(found, NMS_IOU);
    // The Face API ranks faces by rectangle size, largest first.
    kept.sort_by(|a, b| b.rect.area().total_cmp(&a.rect.area()));
    kept.truncate(max_faces);
    Ok(kept)
}

/// The size an image of `width x height` is scaled to for the detector: 640 on its longer side,
/// enlarged at most `MAX_UPSCALE` times.
fn scaled_size(width: u32, height: u32) -> (u32, u32) {
    let (w, h) = (width as f32, height as f32);
    let scale = (INPUT as f32 / w.max(h)).min(MAX_UPSCALE);
    let nw = ((w * scale).round() as u32).clamp(1, INPUT as u32);
    let nh = ((h * scale).round() as u32).clamp(1, INPUT as u32);
    (nw, nh)
}

/// The detector input (NCHW) the engine feeds for an image of `width x height` pixels.
pub fn input_shape_for_image(width: u32, height: u32) -> [usize; 4] {
    let (nw, nh) = scaled_size(width, height);
    input_shape(nw as usize, nh as usize)
}

/// The detector input (NCHW) for an image scaled to `width x height` (each at most 640): the
/// smallest of `DETECTOR_SHAPES` that holds it.
fn input_shape(width: usize, height: usize) -> [usize; 4] {
    DETECTOR_SHAPES
        .into_iter()
        .filter(|&[_, _, h, w]| w >= width && h >= height)
        .min_by_key(|&[_, _, h, w]| h * w)
        .unwrap_or(DETECTOR_SHAPES[0])
}

/// Greedy non-maximum suppression, best score first.
pub(crate) fn nms(mut dets: Vec<Detection>, iou: f32) -> Vec<Detection> {
    dets.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut kept: Vec<Detection> = Vec::new();
    for d in dets {
        if kept.iter().all(|k| k.rect.iou(&d.rect) < iou) {
            kept.push(d);
        }
    }
    kept
}

/// Whether a detection's centre lies in the image (the black padding can yield ghosts outside
/// it; they are dropped before NMS so they cannot suppress a real face at the edge).
fn centre_inside(d: &Detection, w: f32, h: f32) -> bool {
    let c = d.rect.center();
    c.x >= 0.0 && c.y >= 0.0 && c.x < w && c.y < h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_detector_input_is_the_smallest_size_that_holds_the_scaled_photo() {
        for ((w, h), (want_h, want_w)) in [
            ((640, 640), (640, 640)),
            ((640, 480), (480, 640)),
            ((480, 640), (640, 640)),
            ((640, 427), (480, 640)),
            ((640, 360), (384, 640)),
            ((360, 640), (640, 640)),
            ((640, 481), (640, 640)),
            ((512, 640), (640, 640)),
            ((300, 200), (384, 640)),
        ] {
            assert_eq!(input_shape(w, h), [1, 3, want_h, want_w], "{w}x{h}");
        }
        assert!(DETECTOR_SHAPES.iter().all(|s| s[2] % 32 == 0 && s[3] % 32 == 0 && s[2].max(s[3]) == INPUT));
    }
}
