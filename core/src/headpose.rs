//! Head pose from the 68 landmarks: a scaled-orthographic fit of fifteen rigid points of a mean
//! 3-D face to their image positions, by least squares; the rotation is then read as roll, yaw and
//! pitch in degrees.
//!
//! The points are the ones expressions barely move: the nose (bridge, tip, base and wings), the
//! four eye corners and the jaw contour beside the cheekbones (1, 2, 14, 15). Mouth and chin are
//! left out: a smile lifts the mouth corners and an open mouth drops the chin, which a fit through
//! them reads as pitch. Each point's x and y are its mean frontal position over the 400 faces of
//! shared/data/agegender (found by the face-api.js landmark net, in the frame of the outer eye
//! corners, mirrored halves averaged), so a frontal face fits with no bias; its depth comes from
//! facial anthropometry (outer eye corners about 0.45 of their distance behind the nose tip, the
//! jaw contour about 1.1). The deep jaw points steady pitch and yaw against the nose's
//! individual shape; their cost is that a profile past about 40 degrees of yaw reads low, because
//! the contour a net finds there is the silhouette, not the same point of the face.
//!
//! Angles are in the Face API's convention, as its recorded answers fix the signs: roll > 0 is the
//! head tilted clockwise in the image (Azure's sample rotates the face rectangle by `roll`), yaw >
//! 0 the face turned toward the image's right (the subject's left), pitch > 0 the face turned
//! down.

use serde::{Deserialize, Serialize};

use crate::geometry::Point;

/// Roll, yaw and pitch in degrees.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HeadPose {
    pub roll: f32,
    pub yaw: f32,
    pub pitch: f32,
}

/// 68-point indices and the mean face's coordinates (x right, y up, z toward the viewer; the
/// outer eye corners 450 apart, the nose tip at the origin).
const MODEL: [(usize, [f64; 3]); 15] = [
    (1, [-369.0, 96.0, -495.0]),
    (2, [-353.0, 2.0, -495.0]),
    (14, [353.0, 2.0, -495.0]),
    (15, [369.0, 96.0, -495.0]),
    (27, [0.0, 189.0, -143.0]),
    (28, [0.0, 121.0, -105.0]),
    (29, [0.0, 57.0, -60.0]),
    (30, [0.0, 0.0, 0.0]),
    (31, [-63.0, -31.0, -113.0]),
    (33, [0.0, -49.0, -68.0]),
    (35, [63.0, -31.0, -113.0]),
    (36, [-225.0, 203.0, -203.0]),
    (39, [-100.0, 195.0, -150.0]),
    (42, [100.0, 195.0, -150.0]),
    (45, [225.0, 203.0, -203.0]),
];

fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
}

fn unit(a: [f64; 3]) -> Option<[f64; 3]> {
    let n = dot(a, a).sqrt();
    (n > 1e-12 && n.is_finite()).then(|| [a[0] / n, a[1] / n, a[2] / n])
}

fn inverse(m: [[f64; 3]; 3]) -> Option<[[f64; 3]; 3]> {
    let c0 = cross(m[1], m[2]);
    let c1 = cross(m[2], m[0]);
    let c2 = cross(m[0], m[1]);
    let det = dot(m[0], c0);
    if det.abs() < 1e-12 || !det.is_finite() {
        return None;
    }
    // The inverse's columns are the cofactor rows over the determinant.
    Some([
        [c0[0] / det, c1[0] / det, c2[0] / det],
        [c0[1] / det, c1[1] / det, c2[1] / det],
        [c0[2] / det, c1[2] / det, c2[2] / det],
    ])
}

/// The head pose of a face from its 68 landmarks; `None` when they are too few or degenerate.
pub fn head_pose(landmarks68: &[Point]) -> Option<HeadPose> {
    if landmarks68.len() != 68 {
        return None;
    }
    // Image points with y up, so both sets are right-handed with z toward the viewer.
    let image: Vec<[f64; 2]> =
        MODEL.iter().map(|(i, _)| [f64::from(landmarks68[*i].x), -f64::from(landmarks68[*i].y)]).collect();
    let n = MODEL.len() as f64;
    let mean2 = [image.iter().map(|p| p[0]).sum::<f64>() / n, image.iter().map(|p| p[1]).sum::<f64>() / n];
    let mut mean3 = [0.0; 3];
    for (_, p) in MODEL {
        for k in 0..3 {
            mean3[k] += p[k] / n;
        }
    }
    // Least squares for the 2x3 projection M: M = A B^-1 with A = sum q P^T, B = sum P P^T.
    let mut a = [[0.0; 3]; 2];
    let mut b = [[0.0; 3]; 3];
    for ((_, p), q) in MODEL.iter().zip(&image) {
        let pc = [p[0] - mean3[0], p[1] - mean3[1], p[2] - mean3[2]];
        let qc = [q[0] - mean2[0], q[1] - mean2[1]];
        for r in 0..2 {
            for c in 0..3 {
                a[r][c] += qc[r] * pc[c];
            }
        }
        for r in 0..3 {
            for c in 0..3 {
                b[r][c] += pc[r] * pc[c];
            }
        }
    }
    let bi = inverse(b)?;
    let row = |r: usize| [0, 1, 2].map(|c| (0..3).map(|k| a[r][k] * bi[k][c]).sum::<f64>());
    let r1 = unit(row(0))?;
    let r2 = row(1);
    let r2 = unit([r2[0] - dot(r1, r2) * r1[0], r2[1] - dot(r1, r2) * r1[1], r2[2] - dot(r1, r2) * r1[2]])?;
    let r3 = cross(r1, r2);
    // R = Rz(roll) Ry(yaw) Rx(pitch) in the y-up, z-toward-viewer frame.
    let yaw_up = (-r3[0]).clamp(-1.0, 1.0).asin();
    let pitch_up = r3[1].atan2(r3[2]);
    let roll_up = r2[0].atan2(r1[0]);
    // To the image frame (y down, z away) roll changes sign and pitch keeps it; yaw keeps the
    // y-up frame's sign, which is the Face API's (toward the image's right is positive).
    let pose = HeadPose {
        roll: -roll_up.to_degrees() as f32,
        yaw: yaw_up.to_degrees() as f32,
        pitch: pitch_up.to_degrees() as f32,
    };
    [pose.roll, pose.yaw, pose.pitch].iter().all(|v| v.is_finite()).then_some(pose)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The model's points seen after rotating the face, projected orthographically into an
    /// image (y down), padded to 68 points.
    fn seen(roll: f64, yaw: f64, pitch: f64) -> Vec<Point> {
        let (r, y, p) = (roll.to_radians(), -yaw.to_radians(), pitch.to_radians());
        // Image-frame rotation (x right, y down, z away) Rz(r) Ry(-y) Rx(p), applied to model
        // points converted to that frame (the Face API's yaw turns the other way round y).
        let rx = |v: [f64; 3]| [v[0], v[1] * p.cos() - v[2] * p.sin(), v[1] * p.sin() + v[2] * p.cos()];
        let ry = |v: [f64; 3]| [v[0] * y.cos() + v[2] * y.sin(), v[1], -v[0] * y.sin() + v[2] * y.cos()];
        let rz = |v: [f64; 3]| [v[0] * r.cos() - v[1] * r.sin(), v[0] * r.sin() + v[1] * r.cos(), v[2]];
        let mut points = vec![Point::new(0.0, 0.0); 68];
        for (i, m) in MODEL {
            let v = rz(ry(rx([m[0], -m[1], -m[2]])));
            points[i] = Point::new((400.0 + 0.5 * v[0]) as f32, (300.0 + 0.5 * v[1]) as f32);
        }
        points
    }

    #[test]
    fn recovers_known_rotations_with_the_documented_signs() {
        for (roll, yaw, pitch) in
            [(0.0, 0.0, 0.0), (15.0, 0.0, 0.0), (0.0, 25.0, 0.0), (0.0, 0.0, -20.0), (-10.0, -30.0, 12.0)]
        {
            let pose = head_pose(&seen(roll, yaw, pitch)).unwrap();
            for (got, want) in [(pose.roll, roll), (pose.yaw, yaw), (pose.pitch, pitch)] {
                assert!((f64::from(got) - want).abs() < 0.5, "{roll} {yaw} {pitch}: {pose:?}");
            }
        }
    }

    #[test]
    fn signs_mean_what_the_documentation_says() {
        // Clockwise in the image: the nose tip moves toward the image's left of the bridge.
        let tilted = seen(20.0, 0.0, 0.0);
        assert!(tilted[30].x < tilted[27].x);
        // Yaw > 0: the nose tip moves toward the image's right of the face's centre.
        let turned = seen(0.0, 30.0, 0.0);
        assert!(turned[30].x > (turned[36].x + turned[45].x) / 2.0);
        // Pitch > 0: the nose tip moves down toward the nose base.
        let (level, down) = (seen(0.0, 0.0, 0.0), seen(0.0, 0.0, 25.0));
        assert!(down[33].y - down[30].y < level[33].y - level[30].y);
        // ... and the fit reads each back with that sign.
        assert!(head_pose(&tilted).unwrap().roll > 10.0);
        assert!(head_pose(&turned).unwrap().yaw > 20.0);
        assert!(head_pose(&down).unwrap().pitch > 15.0);
    }

    #[test]
    fn degenerate_input_gives_none() {
        assert!(head_pose(&[]).is_none());
        assert!(head_pose(&vec![Point::new(1.0, 1.0); 68]).is_none());
    }
}
