//! Appearance attributes no licensable model in the registries predicts: glasses, facial hair,
//! hair, makeup, occlusion and accessories, and the contempt share of the emotion. Each is derived
//! from the 68 landmarks and the colours and edges around them, by the rules below, and measured
//! by `cargo xtask eval`.
//!
//! Everything is sampled in a face frame: the origin is the midpoint of the two eye centres, the
//! unit is the distance between them (`d`), `a` runs along the eye line toward the image's right
//! and `b` across it toward the chin, so roll and scale drop out. A region is a rectangle in that
//! frame, sampled on a 9x9 grid; its colour is the per-channel median in CIE L*a*b* (D65) and its
//! edge energy the mean absolute luminance difference across `d/24` pixels along `a` (`ta`) and
//! along `b` (`tb`). The skin reference is the median of the two cheeks and the nose ridge.
//!
//! - **glasses**: a frame puts a horizontal edge across the nose bridge, between the eyes at eye
//!   level, where bare skin has almost none. `score = (tb(bridge) - tb(ridge below it)) / 8`,
//!   clamped to 0..1; glasses above 0.5. Sunglasses are told from reading glasses on the lens
//!   region: the lens hides the eye, so both eye regions are darker than 0.45 of the skin's L*,
//!   their 90th percentile of L* under 0.6 of it (no white of the eye shows) and their edges fewer
//!   than the cheeks'; a dark frame or a shadowed socket darkens the median but leaves the eye's
//!   white and edges. Swimming goggles are not told apart and never reported.
//! - **facialHair**: moustache (between the nose base and the upper lip) and beard (the chin
//!   below the lower lip, and both sides of the mouth): hair is darker than skin, or (grey and
//!   white hair) as light but without the skin's tint, and full of edges. Per region,
//!   `score = max(clamp((darkness - 0.08) / 0.22), clamp((greyness - 0.35) / 0.3)) * clamp(edges / 1.5)`,
//!   where darkness is the L* drop from the skin over max(skin L*, 50), greyness is
//!   `1 - (C*/L*)region / (C*/L*)skin` for regions at least 0.8 of the skin's L*, and edges the
//!   region's edge energy over the skin's. Sideburns: the same score in front of the ears, counted only
//!   beside a moustache or beard (`* clamp(2 * max(moustache, beard))`), since head hair falls
//!   over the temples of many faces without facial hair. The three scores are then weighed by
//!   the gender and age nets (`weigh_facial_hair`): a beard on a child or a woman is rare enough
//!   that the cues are more often wrong there than right.
//! - **hair**: the scalp region 1.2 to 1.45 `d` above the eye line. `invisible` when under half
//!   of it is in the image or it holds headwear; `bald = clamp(1 - ΔE/30)` against the forehead's
//!   colour (the cheeks' when the forehead is covered); the hair colours are a softmax (τ = 8)
//!   over the L*a*b* distance to a prototype of each (black, brown, blond, red, gray, white), plus
//!   `other` for saturated colours or hues no hair has, each scaled by `1 - bald`.
//! - **makeup**: lipMakeup when the lips' a* (redness) exceeds the skin's by more than 14;
//!   eyeMakeup when the upper eyelids are more chromatic than the skin, or darker than 0.7 of its
//!   L* on a face with lip makeup.
//! - **occlusion**: only regions at least half in the image count. Forehead: the band above the
//!   brows is further than ΔE 28 from the skin (a fringe, a hat, a hand in another colour). Eye:
//!   an eye region has fewer edges than the cheeks (an open or closed eye always has more);
//!   dark lenses count as sunglasses, not occlusion. Mouth: a mask (below), or lips with fewer
//!   edges than the cheeks, further than ΔE 20 from the skin and no redder than it by 8.
//! - **accessories**: glasses with the glasses score as confidence; a mask when the cheeks are
//!   further than ΔE 18 from the skin above a mask's edge (under the eyes, between the brows)
//!   and the lips show fewer edges than the cheeks and are no redder than the skin by 5, and the
//!   cheeks have at most 1.2 times the edges of the skin above (a beard differs from the skin as
//!   much as a mask, but is full of edges), confidence `clamp(ΔE / 36)`; headwear when the
//!   scalp region's colour is `other`.
//! - **contempt**: the Facial Action Coding System codes contempt as a one-sided lip-corner
//!   raise (AU12/AU14 on one side). `asymmetry` is the difference in height of the two mouth
//!   corners relative to the mouth's centre line, over the mouth width (under 0.03 on 90% of
//!   LFW portraits); `clamp((asymmetry - 0.03) / 0.1) * 0.8 * (1 - happiness)` of the neutral
//!   and happiness mass moves to contempt, so the eight emotions still sum to 1. The
//!   `1 - happiness` keeps a broad smile, which raises both corners, from reading as contempt.

use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::geometry::Point;

/// The eight emotions of the Face API, each 0..1, summing to 1.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Emotion {
    pub anger: f32,
    pub contempt: f32,
    pub disgust: f32,
    pub fear: f32,
    pub happiness: f32,
    pub neutral: f32,
    pub sadness: f32,
    pub surprise: f32,
}

/// Serialised as the Face API spells it: `noGlasses`, `readingGlasses`, ...
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Glasses {
    NoGlasses,
    ReadingGlasses,
    Sunglasses,
    SwimmingGoggles,
}

#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FacialHair {
    pub moustache: f32,
    pub beard: f32,
    pub sideburns: f32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum HairColorType {
    Unknown,
    White,
    Gray,
    Blond,
    Brown,
    Red,
    Black,
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HairColor {
    pub color: HairColorType,
    pub confidence: f32,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Hair {
    pub bald: f32,
    pub invisible: bool,
    /// Most likely first; empty when the hair is invisible.
    pub hair_color: Vec<HairColor>,
}

#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Makeup {
    pub eye_makeup: bool,
    pub lip_makeup: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Occlusion {
    pub forehead_occluded: bool,
    pub eye_occluded: bool,
    pub mouth_occluded: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AccessoryType {
    /// `headWear`, as the Face API spells it.
    #[serde(rename = "headWear")]
    Headwear,
    Glasses,
    Mask,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Accessory {
    #[serde(rename = "type")]
    pub kind: AccessoryType,
    pub confidence: f32,
}

/// The appearance attributes of one face.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Appearance {
    pub glasses: Glasses,
    pub facial_hair: FacialHair,
    pub hair: Hair,
    pub makeup: Makeup,
    pub occlusion: Occlusion,
    pub accessories: Vec<Accessory>,
    /// The raw measurements the values above come from.
    pub cues: Cues,
}

impl Appearance {
    /// What is reported when the landmarks are too degenerate to sample around.
    pub(crate) fn unseen() -> Appearance {
        Appearance {
            glasses: Glasses::NoGlasses,
            facial_hair: FacialHair::default(),
            hair: Hair { bald: 0.0, invisible: true, hair_color: Vec::new() },
            makeup: Makeup::default(),
            occlusion: Occlusion::default(),
            accessories: Vec::new(),
            cues: Cues::default(),
        }
    }
}

/// The measurements behind [`Appearance`], for evaluation and tuning.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cues {
    pub glasses: f32,
    pub eye_darkness: f32,
    pub lip_redness: f32,
    pub eyelid_darkness: f32,
    pub eyelid_chroma: f32,
    pub scalp_delta_e: f32,
    pub scalp_inside: f32,
    pub forehead_delta_e: f32,
    pub mouth_delta_e: f32,
    pub mouth_asymmetry: f32,
    pub eye_edges: f32,
    pub mouth_edges: f32,
    pub lower_delta_e: f32,
    pub eye_bright: f32,
    pub lower_edges: f32,
}

/// Face frame: origin between the eye centres, unit the distance between them.
struct Frame {
    ox: f32,
    oy: f32,
    ux: f32,
    uy: f32,
    d: f32,
}

impl Frame {
    fn new(l: &[Point]) -> Option<Frame> {
        let left = Point::mean(&l[36..42]);
        let right = Point::mean(&l[42..48]);
        let d = left.distance(right);
        (d >= 4.0 && d.is_finite()).then(|| Frame {
            ox: (left.x + right.x) / 2.0,
            oy: (left.y + right.y) / 2.0,
            ux: (right.x - left.x) / d,
            uy: (right.y - left.y) / d,
            d,
        })
    }

    fn to_image(&self, a: f32, b: f32) -> (f32, f32) {
        (self.ox + self.d * (a * self.ux - b * self.uy), self.oy + self.d * (a * self.uy + b * self.ux))
    }

    fn to_face(&self, p: Point) -> (f32, f32) {
        let (x, y) = (p.x - self.ox, p.y - self.oy);
        ((x * self.ux + y * self.uy) / self.d, (-x * self.uy + y * self.ux) / self.d)
    }
}

/// A rectangle in the face frame: a0..a1 across, b0..b1 down.
#[derive(Clone, Copy)]
struct Region {
    a0: f32,
    a1: f32,
    b0: f32,
    b1: f32,
}

const fn region(a0: f32, a1: f32, b0: f32, b1: f32) -> Region {
    Region { a0, a1, b0, b1 }
}

#[derive(Clone, Copy, Default)]
struct Sample {
    lab: [f32; 3],
    ta: f32,
    tb: f32,
}

/// What a region looks like.
#[derive(Clone, Copy, Default, Debug)]
struct Stats {
    lab: [f32; 3],
    ta: f32,
    tb: f32,
    /// Share of the grid inside the image.
    inside: f32,
    /// The 90th percentile of L*.
    bright: f32,
}

impl Stats {
    fn chroma(&self) -> f32 {
        self.lab[1].hypot(self.lab[2])
    }

    fn delta_e(&self, other: &Stats) -> f32 {
        self.lab.iter().zip(&other.lab).map(|(p, q)| (p - q).powi(2)).sum::<f32>().sqrt()
    }
}

struct Sampler<'a> {
    img: &'a RgbImage,
    f: Frame,
}

impl Sampler<'_> {
    fn lab_at(&self, x: f32, y: f32) -> [f32; 3] {
        let xi = (x.round().max(0.0) as u32).min(self.img.width() - 1);
        let yi = (y.round().max(0.0) as u32).min(self.img.height() - 1);
        lab(self.img.get_pixel(xi, yi).0)
    }

    fn samples(&self, r: Region) -> (Vec<Sample>, usize) {
        const N: usize = 9;
        let (w, h) = (self.img.width() as f32, self.img.height() as f32);
        let s = (self.f.d / 24.0).max(1.0);
        let (ux, uy, vx, vy) = (self.f.ux * s, self.f.uy * s, -self.f.uy * s, self.f.ux * s);
        let mut out = Vec::with_capacity(N * N);
        for i in 0..N {
            for j in 0..N {
                let a = r.a0 + (r.a1 - r.a0) * (i as f32 + 0.5) / N as f32;
                let b = r.b0 + (r.b1 - r.b0) * (j as f32 + 0.5) / N as f32;
                let (x, y) = self.f.to_image(a, b);
                if x < 0.0 || y < 0.0 || x > w - 1.0 || y > h - 1.0 {
                    continue;
                }
                let l = |dx: f32, dy: f32| self.lab_at(x + dx, y + dy)[0];
                out.push(Sample {
                    lab: self.lab_at(x, y),
                    ta: (l(ux, uy) - l(-ux, -uy)).abs(),
                    tb: (l(vx, vy) - l(-vx, -vy)).abs(),
                });
            }
        }
        (out, N * N)
    }

    fn stats(&self, regions: &[Region]) -> Stats {
        let mut all = Vec::new();
        let mut total = 0;
        for r in regions {
            let (s, n) = self.samples(*r);
            all.extend(s);
            total += n;
        }
        stats(&all, total)
    }
}

fn stats(samples: &[Sample], total: usize) -> Stats {
    if samples.is_empty() {
        return Stats::default();
    }
    let median = |f: &dyn Fn(&Sample) -> f32| {
        let mut v: Vec<f32> = samples.iter().map(f).collect();
        v.sort_by(f32::total_cmp);
        v[v.len() / 2]
    };
    let n = samples.len() as f32;
    Stats {
        lab: [median(&|s| s.lab[0]), median(&|s| s.lab[1]), median(&|s| s.lab[2])],
        ta: samples.iter().map(|s| s.ta).sum::<f32>() / n,
        tb: samples.iter().map(|s| s.tb).sum::<f32>() / n,
        inside: samples.len() as f32 / total.max(1) as f32,
        bright: {
            let mut v: Vec<f32> = samples.iter().map(|s| s.lab[0]).collect();
            v.sort_by(f32::total_cmp);
            v[(v.len() * 9 / 10).min(v.len() - 1)]
        },
    }
}

/// sRGB to CIE L*a*b* under D65.
fn lab(rgb: [u8; 3]) -> [f32; 3] {
    let lin = |c: u8| {
        let c = c as f32 / 255.0;
        if c <= 0.04045 { c / 12.92 } else { ((c + 0.055) / 1.055).powf(2.4) }
    };
    let (r, g, b) = (lin(rgb[0]), lin(rgb[1]), lin(rgb[2]));
    let x = (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047;
    let y = 0.2126 * r + 0.7152 * g + 0.0722 * b;
    let z = (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883;
    let f = |t: f32| if t > 0.008856 { t.cbrt() } else { 7.787 * t + 16.0 / 116.0 };
    let (fx, fy, fz) = (f(x), f(y), f(z));
    [116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)]
}

fn clamp01(v: f32) -> f32 {
    if v.is_finite() { v.clamp(0.0, 1.0) } else { 0.0 }
}

fn round3(v: f32) -> f32 {
    (v * 1000.0).round() / 1000.0
}

/// Hair colour prototypes in L*a*b*.
const HAIR_PROTOTYPES: [(HairColorType, [f32; 3]); 6] = [
    (HairColorType::Black, [15.0, 1.0, 2.0]),
    (HairColorType::Brown, [32.0, 8.0, 16.0]),
    (HairColorType::Blond, [62.0, 6.0, 28.0]),
    (HairColorType::Red, [40.0, 25.0, 32.0]),
    (HairColorType::Gray, [55.0, 0.0, 3.0]),
    (HairColorType::White, [82.0, 0.0, 3.0]),
];

fn hair_colors(scalp: &Stats, bald: f32) -> Vec<HairColor> {
    let dist = |p: &[f32; 3]| scalp.lab.iter().zip(p).map(|(x, y)| (x - y).powi(2)).sum::<f32>().sqrt();
    // "Other": saturated colours, or hues no natural hair has (greens, blues, purples).
    let hue = scalp.lab[2].atan2(scalp.lab[1]).to_degrees();
    let natural_hue = (-10.0..=100.0).contains(&hue);
    let other_dist = if scalp.chroma() > 40.0 || (!natural_hue && scalp.chroma() > 12.0) { 5.0 } else { 60.0 };
    let mut scored: Vec<(HairColorType, f32)> =
        HAIR_PROTOTYPES.iter().map(|(c, p)| (*c, dist(p))).chain([(HairColorType::Other, other_dist)]).collect();
    let tau = 8.0;
    let best = scored.iter().map(|s| s.1).fold(f32::INFINITY, f32::min);
    let sum: f32 = scored.iter().map(|s| (-(s.1 - best) / tau).exp()).sum();
    for s in &mut scored {
        s.1 = (-(s.1 - best) / tau).exp() / sum * (1.0 - bald);
    }
    scored.sort_by(|x, y| y.1.total_cmp(&x.1));
    scored.into_iter().map(|(color, c)| HairColor { color, confidence: round3(c) }).collect()
}

/// The appearance attributes of the face with these 68 landmarks; `None` when the landmarks are
/// degenerate (eyes closer than 4 pixels).
pub fn appearance(img: &RgbImage, l: &[Point]) -> Option<Appearance> {
    if l.len() != 68 || img.width() < 2 || img.height() < 2 {
        return None;
    }
    let f = Frame::new(l)?;
    let s = Sampler { img, f };
    let at = |i: usize| s.f.to_face(l[i]);

    let skin = s.stats(&[region(-0.7, -0.4, 0.55, 0.8), region(0.4, 0.7, 0.55, 0.8), region(-0.1, 0.1, 0.2, 0.45)]);
    let skin_l = skin.lab[0].max(1.0);
    let skin_t = skin.ta.max(skin.tb).max(0.5);

    // Glasses: the bridge's horizontal edge against the nose ridge just below it.
    let bridge = s.stats(&[region(-0.12, 0.12, -0.15, 0.1)]);
    let ridge = s.stats(&[region(-0.08, 0.08, 0.2, 0.4)]);
    let glasses_score = clamp01((bridge.tb - ridge.tb) / 8.0);
    let (le, re) = (at(36).0.min(at(39).0), at(42).0.max(at(45).0));
    let eyes = [s.stats(&[region(le, -0.3, -0.12, 0.12)]), s.stats(&[region(0.3, re, -0.12, 0.12)])];
    let eye_darkness = eyes.iter().map(|e| e.lab[0] / skin_l).fold(0.0f32, f32::max);
    let eye_bright = eyes.iter().map(|e| e.bright / skin_l).fold(0.0f32, f32::max);
    // Sunglasses: the lens hides the eye. Both eye regions are dark (median L* under 0.45 of the
    // skin's), no white of the eye shows through (their 90th percentile under 0.6 of it) and the
    // eye's own edges are gone (fewer than the cheeks' in both). A dark frame or a shadowed eye socket
    // darkens the median, but leaves the eye's white and its edges.
    let lens_edges = eyes.iter().map(|e| e.ta.max(e.tb) / skin_t).fold(0.0f32, f32::max);
    let glasses = if glasses_score < 0.5 {
        Glasses::NoGlasses
    } else if eye_darkness < 0.45 && eye_bright < 0.6 && lens_edges < 1.0 {
        Glasses::Sunglasses
    } else {
        Glasses::ReadingGlasses
    };

    // Edge energy over the skin's.
    let edges = |r: &Stats| r.ta.max(r.tb) / skin_t;

    // Facial hair.
    let hairiness = |r: &Stats| {
        if r.inside < 0.5 {
            return 0.0;
        }
        // Dark hair is darker than the skin (measured against at least L* 50, so that naturally
        // darker lips and shadows on dark skin do not count double); grey and white hair is as
        // light but without the skin's colour (chroma per unit of lightness).
        let darkness = (skin.lab[0] - r.lab[0]) / skin_l.max(50.0);
        let tint = |x: &Stats| x.chroma() / x.lab[0].max(1.0);
        let greyness = if r.lab[0] >= 0.8 * skin.lab[0] { 1.0 - tint(r) / tint(&skin).max(0.05) } else { 0.0 };
        let colour = clamp01((darkness - 0.08) / 0.22).max(clamp01((greyness - 0.35) / 0.3));
        round3(colour * clamp01(edges(r) / 1.5))
    };
    let (nose_base, lip_top, lip_bottom, chin) = (at(33), at(51), at(57), at(8));
    let (mouth_l, mouth_r) = (at(48), at(54));
    let half_mouth = ((mouth_r.0 - mouth_l.0) / 2.0).max(0.1);
    let mid = (mouth_l.0 + mouth_r.0) / 2.0;
    let span = (lip_top.1 - nose_base.1).max(0.05);
    let upper_lip = s.stats(&[region(
        mid - 0.7 * half_mouth,
        mid + 0.7 * half_mouth,
        nose_base.1 + 0.3 * span,
        lip_top.1 - 0.1 * span,
    )]);
    let chin_span = (chin.1 - lip_bottom.1).max(0.05);
    let beard = s.stats(&[
        region(
            mid - 0.6 * half_mouth,
            mid + 0.6 * half_mouth,
            lip_bottom.1 + 0.3 * chin_span,
            chin.1 - 0.15 * chin_span,
        ),
        region(mouth_l.0 - 0.3, mouth_l.0 - 0.1, mouth_l.1 - 0.05, lip_bottom.1),
        region(mouth_r.0 + 0.1, mouth_r.0 + 0.3, mouth_r.1 - 0.05, lip_bottom.1),
    ]);
    let (j0, j2, j14, j16) = (at(0), at(2), at(14), at(16));
    let sideburns = [
        s.stats(&[region(j0.0 + 0.05, j0.0 + 0.2, j0.1, j2.1.max(j0.1 + 0.1))]),
        s.stats(&[region(j16.0 - 0.2, j16.0 - 0.05, j16.1, j14.1.max(j16.1 + 0.1))]),
    ];
    let (moustache, beard) = (hairiness(&upper_lip), hairiness(&beard));
    // Head hair falls over the temples of many faces without facial hair: sideburns count only
    // beside a moustache or beard.
    let sideburns = hairiness(&sideburns[0]).max(hairiness(&sideburns[1])) * clamp01(2.0 * moustache.max(beard));
    let facial_hair = FacialHair { moustache, beard, sideburns: round3(sideburns) };

    // Makeup.
    let lip_pairs = [(50, 61), (51, 62), (52, 63), (56, 65), (57, 66), (58, 67)];
    let lip_regions: Vec<Region> = lip_pairs
        .iter()
        .map(|&(o, i)| {
            let (p, q) = (at(o), at(i));
            let c = ((p.0 + q.0) / 2.0, (p.1 + q.1) / 2.0);
            region(c.0 - 0.04, c.0 + 0.04, c.1 - 0.02, c.1 + 0.02)
        })
        .collect();
    let lips = s.stats(&lip_regions);
    let lip_redness = lips.lab[1] - skin.lab[1];
    let lid = |eye_top: (f32, f32), brow: (f32, f32)| {
        let b1 = eye_top.1 - 0.04;
        let b0 = b1 - 0.4 * (eye_top.1 - brow.1).max(0.05);
        region(eye_top.0 - 0.12, eye_top.0 + 0.12, b0, b1)
    };
    let lids = s.stats(&[lid(at(38), at(19)), lid(at(43), at(24))]);
    let eyelid_darkness = lids.lab[0] / skin_l;
    let eyelid_chroma = lids.chroma() - skin.chroma();
    let lip_makeup = lip_redness > 14.0;
    let makeup = Makeup { eye_makeup: eyelid_chroma > 0.0 || (lip_makeup && eyelid_darkness < 0.7), lip_makeup };

    // Occlusion: a region is covered when it is in the image and has fewer edges than its
    // feature always shows (eyes and lips have more than cheeks), or, for the forehead, when it is
    // far from the skin's colour (a fringe or a hat).
    let (brow_l, brow_r) = (at(19), at(24));
    let brow_b = brow_l.1.min(brow_r.1);
    let forehead = s.stats(&[region(-0.5, 0.5, brow_b - 0.45, brow_b - 0.15)]);
    let mouth = lips;
    let eye_edges =
        eyes.iter().map(|e| if e.inside < 0.5 { f32::INFINITY } else { edges(e) }).fold(f32::INFINITY, f32::min);
    let mouth_edges = if mouth.inside < 0.5 { f32::INFINITY } else { edges(&mouth) };
    let eye_occluded = eye_darkness >= 0.45 && eye_edges < 1.0;
    // A mask: the cheeks differ in colour from the skin above the mask's edge (under the eyes and
    // between the brows), and the lips show fewer edges than the cheeks.
    let upper = s.stats(&[
        region(-0.5, -0.25, 0.12, 0.28),
        region(0.25, 0.5, 0.12, 0.28),
        region(-0.12, 0.12, brow_b - 0.1, brow_b + 0.1),
    ]);
    let lower = s.stats(&[region(-0.7, -0.4, 0.55, 0.8), region(0.4, 0.7, 0.55, 0.8)]);
    let lower_delta_e = lower.delta_e(&upper);
    let lower_edges = lower.ta.max(lower.tb) / upper.ta.max(upper.tb).max(0.5);
    // No lips show through a mask (no redder than the skin by 5), and it is smooth: a beard
    // differs from the skin as much as a mask does, but is full of edges.
    let mask = upper.inside >= 0.5
        && lower.inside >= 0.5
        && lower_delta_e > 18.0
        && mouth_edges < 1.0
        && lip_redness < 5.0
        && lower_edges < 1.2;
    let mouth_covered = mask || (mouth_edges < 1.0 && mouth.delta_e(&skin) > 20.0 && lip_redness < 8.0);
    let occlusion = Occlusion {
        forehead_occluded: forehead.inside >= 0.5 && forehead.delta_e(&skin) > 28.0,
        eye_occluded,
        mouth_occluded: mouth_covered,
    };

    // Hair on the scalp, compared with the forehead's skin (the cheeks' when the forehead is
    // covered).
    let scalp = s.stats(&[region(-0.5, 0.5, -1.45, -1.2)]);
    let bare = if occlusion.forehead_occluded || forehead.inside < 0.5 { &skin } else { &forehead };
    let scalp_delta_e = scalp.delta_e(bare);
    let invisible = scalp.inside < 0.5;
    let bald = if invisible { 0.0 } else { round3(clamp01(1.0 - scalp_delta_e / 30.0)) };
    let hair_color = if invisible { Vec::new() } else { hair_colors(&scalp, bald) };
    let headwear = hair_color.first().filter(|c| c.color == HairColorType::Other).map(|c| c.confidence);
    let hair = Hair { bald, invisible: invisible || headwear.is_some_and(|c| c >= 0.5), hair_color };

    // Accessories.
    let mut accessories = Vec::new();
    if let Some(c) = headwear.filter(|&c| c >= 0.5) {
        accessories.push(Accessory { kind: AccessoryType::Headwear, confidence: round3(c) });
    }
    if glasses != Glasses::NoGlasses {
        accessories.push(Accessory { kind: AccessoryType::Glasses, confidence: round3(glasses_score) });
    }
    if mask {
        accessories.push(Accessory { kind: AccessoryType::Mask, confidence: round3(clamp01(lower_delta_e / 36.0)) });
    }

    // Mouth-corner asymmetry for contempt.
    let centre = (lip_top.1 + lip_bottom.1) / 2.0;
    let width = (mouth_r.0 - mouth_l.0).abs().max(0.05);
    let mouth_asymmetry = ((centre - mouth_l.1) - (centre - mouth_r.1)).abs() / width;

    Some(Appearance {
        glasses,
        facial_hair,
        hair,
        makeup,
        occlusion,
        accessories,
        cues: Cues {
            glasses: glasses_score,
            eye_darkness,
            lip_redness,
            eyelid_darkness,
            eyelid_chroma,
            scalp_delta_e,
            scalp_inside: scalp.inside,
            forehead_delta_e: forehead.delta_e(&skin),
            mouth_delta_e: mouth.delta_e(&skin),
            mouth_asymmetry,
            eye_edges,
            mouth_edges,
            lower_delta_e,
            eye_bright,
            lower_edges,
        },
    })
}

/// Facial hair weighed by whom it is seen on: the colour and edge cues above also fire on
/// shadows under the jaw, make-up and a child's soft skin, and a beard on a child or a woman is
/// rare enough that there they are more often wrong than right. Each score is multiplied by
/// `clamp((p_male - 0.5) / 0.4)` (the gender net's probability of a man) and by
/// `clamp((age - 14) / 6)` (the age net's estimate).
pub(crate) fn weigh_facial_hair(hair: FacialHair, p_male: f32, age: f32) -> FacialHair {
    let w = clamp01((p_male - 0.5) / 0.4) * clamp01((age - 14.0) / 6.0);
    FacialHair {
        moustache: round3(hair.moustache * w),
        beard: round3(hair.beard * w),
        sideburns: round3(hair.sideburns * w),
    }
}

/// The Face API's eight emotions from the expression net's seven (neutral, happy, sad, angry,
/// fearful, disgusted, surprised) and the mouth-corner asymmetry: part of the neutral and
/// happiness mass moves to contempt.
pub fn emotion(expressions: &[f32; 7], mouth_asymmetry: f32) -> Emotion {
    let [neutral, happiness, sadness, anger, fear, disgust, surprise] = *expressions;
    // A broad smile raises both corners (AU12 on both sides): whatever asymmetry it shows is
    // not contempt, so the share fades with the happiness the expression net sees.
    let share = clamp01((mouth_asymmetry - 0.03) / 0.1) * 0.8 * (1.0 - happiness).max(0.0);
    Emotion {
        anger,
        contempt: (neutral + happiness) * share,
        disgust,
        fear,
        happiness: happiness * (1.0 - share),
        neutral: neutral * (1.0 - share),
        sadness,
        surprise,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lab_of_white_and_black() {
        let w = lab([255, 255, 255]);
        assert!((w[0] - 100.0).abs() < 0.1 && w[1].abs() < 0.5 && w[2].abs() < 0.5, "{w:?}");
        let k = lab([0, 0, 0]);
        assert!(k[0].abs() < 0.1, "{k:?}");
        let r = lab([255, 0, 0]);
        assert!((r[0] - 53.2).abs() < 0.5 && (r[1] - 80.1).abs() < 1.0, "{r:?}");
    }

    #[test]
    fn emotion_sums_to_one_and_contempt_follows_asymmetry() {
        let e = [0.6, 0.3, 0.02, 0.02, 0.02, 0.02, 0.02];
        for asym in [0.0, 0.1, 0.3] {
            let m = emotion(&e, asym);
            let sum = m.anger + m.contempt + m.disgust + m.fear + m.happiness + m.neutral + m.sadness + m.surprise;
            assert!((sum - 1.0).abs() < 1e-5, "{m:?}");
        }
        assert_eq!(emotion(&e, 0.0).contempt, 0.0);
        assert!(emotion(&e, 0.3).contempt > emotion(&e, 0.1).contempt);
        // A broad smile, however lopsided its corners read, is happiness, not contempt.
        let smile = [0.02, 0.96, 0.004, 0.004, 0.004, 0.004, 0.004];
        assert!(emotion(&smile, 0.3).contempt < 0.04, "{:?}", emotion(&smile, 0.3));
        assert!(emotion(&smile, 0.3).happiness > 0.9);
    }

    #[test]
    fn facial_hair_needs_a_grown_man() {
        let seen = FacialHair { moustache: 0.9, beard: 0.8, sideburns: 0.7 };
        assert_eq!(weigh_facial_hair(seen, 0.98, 40.0), seen);
        for (p_male, age) in [(0.1, 40.0), (0.98, 8.0), (0.5, 30.0)] {
            let w = weigh_facial_hair(seen, p_male, age);
            assert!(w.moustache.max(w.beard).max(w.sideburns) < 0.5, "{p_male} {age}: {w:?}");
        }
    }

    #[test]
    fn hair_colour_confidences() {
        let black = Stats { lab: [14.0, 1.0, 1.0], ..Default::default() };
        let c = hair_colors(&black, 0.0);
        assert_eq!(c[0].color, HairColorType::Black);
        assert_eq!(c.len(), 7);
        assert!((c.iter().map(|h| h.confidence).sum::<f32>() - 1.0).abs() < 0.01);
        let green = Stats { lab: [50.0, -40.0, 30.0], ..Default::default() };
        assert_eq!(hair_colors(&green, 0.0)[0].color, HairColorType::Other);
    }
}
