//! Points, rectangles and the 2-D similarity transform used for alignment.

use serde::{Deserialize, Serialize};

/// A point in image pixels.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Point {
    pub x: f32,
    pub y: f32,
}

impl Point {
    pub const fn new(x: f32, y: f32) -> Self {
        Point { x, y }
    }

    pub fn lerp(self, other: Point, t: f32) -> Point {
        Point::new(self.x + (other.x - self.x) * t, self.y + (other.y - self.y) * t)
    }

    pub fn mean(points: &[Point]) -> Point {
        let n = points.len().max(1) as f32;
        let (sx, sy) = points.iter().fold((0.0, 0.0), |(sx, sy), p| (sx + p.x, sy + p.y));
        Point::new(sx / n, sy / n)
    }

    pub fn distance(self, other: Point) -> f32 {
        ((self.x - other.x).powi(2) + (self.y - other.y).powi(2)).sqrt()
    }
}

/// An axis-aligned rectangle in image pixels (floating point).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct RectF {
    pub left: f32,
    pub top: f32,
    pub width: f32,
    pub height: f32,
}

impl RectF {
    pub fn area(&self) -> f32 {
        self.width.max(0.0) * self.height.max(0.0)
    }

    pub fn center(&self) -> Point {
        Point::new(self.left + self.width / 2.0, self.top + self.height / 2.0)
    }

    pub fn iou(&self, other: &RectF) -> f32 {
        let x1 = self.left.max(other.left);
        let y1 = self.top.max(other.top);
        let x2 = (self.left + self.width).min(other.left + other.width);
        let y2 = (self.top + self.height).min(other.top + other.height);
        let inter = (x2 - x1).max(0.0) * (y2 - y1).max(0.0);
        let union = self.area() + other.area() - inter;
        if union <= 0.0 { 0.0 } else { inter / union }
    }

    /// The smallest rectangle holding every point.
    pub fn bounding(points: &[Point]) -> RectF {
        let (mut x1, mut y1, mut x2, mut y2) = (f32::MAX, f32::MAX, f32::MIN, f32::MIN);
        for p in points {
            x1 = x1.min(p.x);
            y1 = y1.min(p.y);
            x2 = x2.max(p.x);
            y2 = y2.max(p.y);
        }
        if points.is_empty() {
            return RectF::default();
        }
        RectF { left: x1, top: y1, width: x2 - x1, height: y2 - y1 }
    }

    /// Grows the rectangle by `fraction` of its width and height in total, half on each side.
    pub fn pad(&self, fraction: f32) -> RectF {
        let (px, py) = (self.width * fraction, self.height * fraction);
        RectF { left: self.left - px / 2.0, top: self.top - py / 2.0, width: self.width + px, height: self.height + py }
    }

    /// The square of side `max(width, height) * scale` with the same centre.
    pub fn square(&self, scale: f32) -> RectF {
        let side = self.width.max(self.height) * scale;
        let c = self.center();
        RectF { left: c.x - side / 2.0, top: c.y - side / 2.0, width: side, height: side }
    }
}

/// `dst = [a -b; b a] * src + [tx; ty]`: rotation, uniform scale and translation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Similarity {
    pub a: f32,
    pub b: f32,
    pub tx: f32,
    pub ty: f32,
}

impl Similarity {
    /// Least-squares similarity transform taking `src` onto `dst` (Umeyama, no reflection).
    pub fn estimate(src: &[Point], dst: &[Point]) -> Option<Similarity> {
        if src.len() != dst.len() || src.len() < 2 {
            return None;
        }
        let (ms, md) = (Point::mean(src), Point::mean(dst));
        let (mut num_a, mut num_b, mut den) = (0.0f64, 0.0f64, 0.0f64);
        for (s, d) in src.iter().zip(dst) {
            let (sx, sy) = ((s.x - ms.x) as f64, (s.y - ms.y) as f64);
            let (dx, dy) = ((d.x - md.x) as f64, (d.y - md.y) as f64);
            num_a += sx * dx + sy * dy;
            num_b += sx * dy - sy * dx;
            den += sx * sx + sy * sy;
        }
        if den <= f64::EPSILON {
            return None;
        }
        let a = (num_a / den) as f32;
        let b = (num_b / den) as f32;
        let tx = md.x - (a * ms.x - b * ms.y);
        let ty = md.y - (b * ms.x + a * ms.y);
        Some(Similarity { a, b, tx, ty })
    }

    pub fn apply(&self, p: Point) -> Point {
        Point::new(self.a * p.x - self.b * p.y + self.tx, self.b * p.x + self.a * p.y + self.ty)
    }

    pub fn inverse(&self) -> Option<Similarity> {
        let det = self.a * self.a + self.b * self.b;
        if det <= f32::EPSILON {
            return None;
        }
        let (ia, ib) = (self.a / det, -self.b / det);
        let tx = -(ia * self.tx - ib * self.ty);
        let ty = -(ib * self.tx + ia * self.ty);
        Some(Similarity { a: ia, b: ib, tx, ty })
    }
}
