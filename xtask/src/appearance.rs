//! `cargo xtask eval` rows for the derived appearance attributes (glasses, facial hair, hair,
//! makeup, occlusion, accessories, contempt): see face-core's `appearance` for the methods.
//!
//! Glasses and facial hair are scored against labels this project made by looking at the photos
//! of shared/data/agegender (xtask/labels/agegender-appearance.csv). The others have no labels in
//! shared/data: their rows report how often each value comes out on photos where the answer is
//! known for nearly all (no occlusion on LFW portraits, masks on attributes/mask).

use std::path::Path;

use anyhow::{Context, Result};
use face_core::{AccessoryType, Attributes, Engine, Glasses, RgbImage};

use crate::util::repo_root;

struct Seen {
    attributes: Attributes,
    cues: face_core::Cues,
}

fn seen(engine: &Engine, path: &Path, min_score: f32) -> Result<Option<Seen>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let img: RgbImage = engine.decode(&bytes).with_context(|| format!("decoding {}", path.display()))?;
    let faces = engine.detect_faces(&img, min_score, face_core::MAX_FACES)?;
    let Some(det) = faces.first() else { return Ok(None) };
    let points = engine.landmarks68(&img, det)?;
    let attributes = engine.attributes(&img, det, &points)?;
    let cues = face_core::appearance(&img, &points).map(|a| a.cues).unwrap_or_default();
    Ok(Some(Seen { attributes, cues }))
}

/// Accuracy, precision and recall of `predicted` against `truth`.
fn scores(pairs: &[(bool, bool)]) -> String {
    let tp = pairs.iter().filter(|p| p.0 && p.1).count();
    let fp = pairs.iter().filter(|p| p.0 && !p.1).count();
    let fn_ = pairs.iter().filter(|p| !p.0 && p.1).count();
    let right = pairs.iter().filter(|p| p.0 == p.1).count();
    format!(
        "accuracy {:.3}, precision {:.2}, recall {:.2} ({} positives of {})",
        right as f64 / pairs.len().max(1) as f64,
        tp as f64 / (tp + fp).max(1) as f64,
        tp as f64 / (tp + fn_).max(1) as f64,
        tp + fn_,
        pairs.len()
    )
}

pub fn rows(engine: &Engine, data: &Path, row: fn(&str, String, &str), print_cues: bool) -> Result<()> {
    // Glasses and facial hair on the hand-labelled agegender photos.
    let labels = std::fs::read_to_string(repo_root().join("xtask/labels/agegender-appearance.csv"))?;
    let (mut glasses, mut glasses_auc, mut hair, mut hair_auc) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut makeup_f, mut makeup_m) = ((0, 0, 0), (0, 0, 0));
    // Rows: labelled without / with glasses; columns: answered none, reading, sunglasses.
    let mut confusion = [[0usize; 3]; 2];
    let gender: std::collections::HashMap<String, String> = crate::stats::csv_rows(&data.join("agegender/LABELS.csv"))?
        .into_iter()
        .map(|r| (r[0].clone(), r[2].clone()))
        .collect();
    for line in labels.lines().filter(|l| !l.starts_with('#')).skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let [path, g, h] = f[..] else { continue };
        let Some(s) = seen(engine, &data.join("agegender").join(path), face_core::DEFAULT_MIN_SCORE)? else { continue };
        let a = &s.attributes;
        let (g, h) = (g == "1", h == "1");
        glasses.push((a.glasses != Glasses::NoGlasses, g));
        let kind = match a.glasses {
            Glasses::NoGlasses => 0,
            Glasses::ReadingGlasses => 1,
            _ => 2,
        };
        confusion[usize::from(g)][kind] += 1;
        glasses_auc.push((s.cues.glasses, g, false));
        let fh = a.facial_hair.moustache.max(a.facial_hair.beard);
        hair.push((fh >= 0.5, h));
        hair_auc.push((fh, h, false));
        let bucket = if gender.get(path).is_some_and(|x| x == "female") { &mut makeup_f } else { &mut makeup_m };
        bucket.0 += 1;
        bucket.1 += usize::from(a.makeup.eye_makeup);
        bucket.2 += usize::from(a.makeup.lip_makeup);
        if print_cues {
            eprintln!(
                "{path} glasses={} {:.2} fh={} m={:.2} b={:.2} s={:.2} lip={:.1} lid={:.2}/{:.1}",
                u8::from(g),
                s.cues.glasses,
                u8::from(h),
                a.facial_hair.moustache,
                a.facial_hair.beard,
                a.facial_hair.sideburns,
                s.cues.lip_redness,
                s.cues.eyelid_darkness,
                s.cues.eyelid_chroma
            );
        }
    }
    let n = glasses.len();
    row(
        &format!(
            "glasses on agegender, {n} faces labelled by this project (ROC AUC {:.3})",
            crate::stats::auc(&glasses_auc)
        ),
        scores(&glasses),
        "no reference (derived method)",
    );
    row(
        "glasses answers on the same faces: labelled without glasses -> none / reading / sunglasses; with glasses -> the same",
        format!(
            "without: {} / {} / {}; with: {} / {} / {}",
            confusion[0][0], confusion[0][1], confusion[0][2], confusion[1][0], confusion[1][1], confusion[1][2]
        ),
        "without: all none; with: reading (no labelled face wears sunglasses) (issue 14)",
    );
    row(
        &format!(
            "facial hair (moustache or beard >= 0.5) on the same faces (ROC AUC {:.3})",
            crate::stats::auc(&hair_auc)
        ),
        scores(&hair),
        "no reference (derived method)",
    );
    let rate = |x: usize, n: usize| format!("{:.2}", x as f64 / n.max(1) as f64);
    row(
        "makeup on the same faces, share with eye / lip makeup: female vs male (no labels; men should be rarer)",
        format!(
            "female {} / {}, male {} / {}",
            rate(makeup_f.1, makeup_f.0),
            rate(makeup_f.2, makeup_f.0),
            rate(makeup_m.1, makeup_m.0),
            rate(makeup_m.2, makeup_m.0)
        ),
        "no reference (derived method)",
    );

    // Hair, occlusion and contempt on the LFW portraits of verification/ (whole heads, no occlusion).
    let dir = data.join("verification");
    let (mut faces, mut bald, mut invisible, mut occluded, mut contempt_top) = (0, 0, 0, [0; 3], 0);
    let mut colours = std::collections::BTreeMap::<String, usize>::new();
    let mut contempt_sum = 0.0f32;
    let (mut pitch, mut yaw, mut verification_masks) = (Vec::new(), Vec::new(), 0);
    for r in crate::stats::csv_rows(&dir.join("LABELS.csv"))? {
        let Some(s) = seen(engine, &dir.join(&r[0]), face_core::DEFAULT_MIN_SCORE)? else { continue };
        let a = &s.attributes;
        faces += 1;
        bald += usize::from(a.hair.bald >= 0.5);
        invisible += usize::from(a.hair.invisible);
        if let Some(c) = a.hair.hair_color.first() {
            *colours.entry(format!("{:?}", c.color).to_lowercase()).or_default() += 1;
        }
        if let Some(p) = a.head_pose {
            pitch.push(f64::from(p.pitch.abs()));
            yaw.push(f64::from(p.yaw.abs()));
        }
        verification_masks += usize::from(a.accessories.iter().any(|x| x.kind == AccessoryType::Mask));
        occluded[0] += usize::from(a.occlusion.forehead_occluded);
        occluded[1] += usize::from(a.occlusion.eye_occluded);
        occluded[2] += usize::from(a.occlusion.mouth_occluded);
        let e = &a.emotion;
        contempt_sum += e.contempt;
        let others = [e.anger, e.disgust, e.fear, e.happiness, e.neutral, e.sadness, e.surprise];
        contempt_top += usize::from(others.iter().all(|&o| e.contempt > o));
        if print_cues {
            eprintln!(
                "{} bald={:.2} dE={:.1} in={:.2} top={:?} occl={:?} fdE={:.1} mdE={:.1} asym={:.3} eyeE={:.2} mouthE={:.2} lowdE={:.1}",
                r[0],
                a.hair.bald,
                s.cues.scalp_delta_e,
                s.cues.scalp_inside,
                a.hair.hair_color.first().map(|c| c.color),
                a.occlusion,
                s.cues.forehead_delta_e,
                s.cues.mouth_delta_e,
                s.cues.mouth_asymmetry,
                s.cues.eye_edges,
                s.cues.mouth_edges,
                s.cues.lower_delta_e
            );
        }
    }
    let shown: Vec<String> = colours.iter().map(|(c, n)| format!("{c} {n}")).collect();
    row(
        &format!("hair on the {faces} LFW faces of verification/: bald >= 0.5 / invisible / top colour"),
        format!("{bald} / {invisible} / {}", shown.join(", ")),
        "no labels; few bald, most black or brown",
    );
    row(
        "occlusion on the same faces: forehead / eye / mouth occluded (almost none are)",
        format!("{} / {} / {}", occluded[0], occluded[1], occluded[2]),
        "near 0 / 0 / 0",
    );
    row(
        &format!(
            "head pose on the same faces (mostly frontal): median |pitch| / |yaw|, degrees ({} fits)",
            pitch.len()
        ),
        format!("{:.1} / {:.1}", crate::stats::median(pitch), crate::stats::median(yaw)),
        "under 8 / under 8 (issue 14)",
    );
    row(
        &format!("masks on the same bare faces: false-mask rate ({faces} faces)"),
        format!("{:.3} ({verification_masks})", verification_masks as f64 / faces.max(1) as f64),
        "0",
    );
    row(
        "contempt on the same faces: mean, and faces where it is the top emotion",
        format!("{:.3}, {contempt_top}", contempt_sum / faces.max(1) as f32),
        "no labels for contempt",
    );

    // Masks and eyes on the labelled files of attributes/.
    let dir = data.join("attributes");
    let (mut masks, mut found, mut masked) = (0, 0, 0);
    let mut eyes = Vec::new();
    for r in crate::stats::csv_rows(&dir.join("LABELS.csv"))? {
        match r[1].as_str() {
            "mask" => {
                masks += 1;
                // The detector misses most masked faces at its default threshold; look harder.
                if let Some(s) = seen(engine, &dir.join(&r[0]), 0.5)? {
                    found += 1;
                    let a = &s.attributes;
                    if print_cues {
                        eprintln!(
                            "{} occlusion={:?} accessories={:?} cues={:?}",
                            r[0], a.occlusion, a.accessories, s.cues
                        );
                    }
                    masked += usize::from(
                        a.occlusion.mouth_occluded || a.accessories.iter().any(|x| x.kind == AccessoryType::Mask),
                    );
                }
            }
            "eyes" => {
                if let Some(s) = seen(engine, &dir.join(&r[0]), face_core::DEFAULT_MIN_SCORE)? {
                    eyes.push(format!(
                        "{} {}",
                        r[2],
                        if s.attributes.occlusion.eye_occluded { "occluded" } else { "clear" }
                    ));
                }
            }
            _ => {}
        }
    }
    row(
        &format!(
            "masks on attributes/mask ({masks} files; 4 are insightface's mask textures with no face): faces found at score 0.5 / mask or mouth occluded"
        ),
        format!("{found} / {masked}"),
        "2 / 2",
    );
    row("eye occlusion on attributes/eyes (closed eyes are not occluded)", eyes.join(", "), "all clear");
    Ok(())
}
