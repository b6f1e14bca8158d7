//! What the guest returns is checked before the host uses it. The guest is sandboxed, but its
//! answers are still input: a guest built wrong, or one whose arithmetic went astray on an odd
//! image, must not put a NaN into a stored embedding (it would poison every later cosine), an
//! embedding of the wrong length into an index, or a rectangle whose right edge overflows into a
//! crop. An answer that breaks the contract fails the call (500, the detail in the log); it is
//! never passed on.

use super::guest;

/// What the call asked for, which decides what each face must carry.
#[derive(Debug, Clone, Copy)]
pub struct Asked {
    pub max_faces: u32,
    pub landmarks: bool,
    pub recognition: Option<guest::RecognitionModel>,
    pub attributes: bool,
}

impl From<&guest::DetectOptions> for Asked {
    fn from(o: &guest::DetectOptions) -> Asked {
        Asked { max_faces: o.max_faces, landmarks: o.landmarks, recognition: o.recognition, attributes: o.attributes }
    }
}

/// Checks a detect answer against what was asked.
pub fn faces(faces: &[guest::Face], asked: &Asked) -> Result<(), String> {
    if faces.len() > asked.max_faces as usize {
        return Err(format!("{} faces returned, {} at most were asked for", faces.len(), asked.max_faces));
    }
    for (i, f) in faces.iter().enumerate() {
        face(f, asked).map_err(|e| format!("face {i}: {e}"))?;
    }
    Ok(())
}

/// The most step timings the host takes from one guest call.
pub const MAX_TIMINGS: usize = 16;

/// The guest's step timings as the host passes them on (into a `Server-Timing` header): at most
/// `MAX_TIMINGS`, each named in lowercase letters and hyphens (1-32 of them), so a guest cannot
/// forge or break header entries; the others are dropped (they are a report, not an answer).
pub fn timings(mut steps: Vec<(String, u64)>) -> Vec<(String, u64)> {
    steps.retain(|(name, _)| {
        (1..=32).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'-')
    });
    steps.truncate(MAX_TIMINGS);
    steps
}

/// Checks one face against what was asked.
pub fn face(f: &guest::Face, asked: &Asked) -> Result<(), String> {
    let r = &f.rectangle;
    if r.width == 0 || r.height == 0 || r.left.checked_add(r.width).is_none() || r.top.checked_add(r.height).is_none() {
        return Err(format!("the rectangle {r:?} is empty or overflows"));
    }
    let b = &f.box_;
    finite("box", &[b.left, b.top, b.width, b.height])?;
    unit("score", f.score)?;
    if f.landmarks5.len() != 5 {
        return Err(format!("{} eye, nose and mouth points, 5 expected", f.landmarks5.len()));
    }
    points("landmarks5", &f.landmarks5)?;
    if asked.landmarks && (f.landmarks27.len() != 27 || f.landmarks68.len() != 68) {
        return Err(format!(
            "{} Face API landmarks and {} iBUG points, 27 and 68 expected",
            f.landmarks27.len(),
            f.landmarks68.len()
        ));
    }
    points("landmarks27", &f.landmarks27)?;
    points("landmarks68", &f.landmarks68)?;
    match (&asked.recognition, &f.embedding) {
        (None, _) => {}
        (Some(_), None) => return Err("no embedding, one was asked for".into()),
        (Some(model), Some(e)) => {
            if e.model != *model {
                return Err(format!("an embedding of {:?}, {model:?} was asked for", e.model));
            }
            embedding(&e.vector, face_core::RecognitionModel::from(*model).dimensions())?;
        }
    }
    match (asked.attributes, &f.attributes) {
        (false, _) => Ok(()),
        (true, None) => Err("no attributes, they were asked for".into()),
        (true, Some(a)) => attributes(a),
    }
}

/// An embedding: the model's length (`dimensions`), finite, of unit length.
pub fn embedding(v: &[f32], dimensions: usize) -> Result<(), String> {
    if v.len() != dimensions {
        return Err(format!("an embedding of {} values, {dimensions} expected", v.len()));
    }
    finite("embedding", v)?;
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if (norm - 1.0).abs() > 1e-2 {
        return Err(format!("an embedding of norm {norm}, 1 expected"));
    }
    Ok(())
}

fn attributes(a: &guest::Attributes) -> Result<(), String> {
    if !(0.0..=150.0).contains(&a.age) {
        return Err(format!("age {}", a.age));
    }
    unit("genderConfidence", a.gender_confidence)?;
    unit("smile", a.smile)?;
    for (name, m) in [("blur", &a.blur), ("exposure", &a.exposure), ("noise", &a.noise)] {
        unit(name, m.value)?;
    }
    if a.expressions.len() != 7 {
        return Err(format!("{} expressions, 7 expected", a.expressions.len()));
    }
    for x in &a.expressions {
        unit("expression", *x)?;
    }
    if let Some(p) = &a.head_pose {
        for (name, v) in [("roll", p.roll), ("yaw", p.yaw), ("pitch", p.pitch)] {
            if !(-180.0..=180.0).contains(&v) {
                return Err(format!("headPose {name} {v}"));
            }
        }
    }
    let e = &a.emotion;
    for (name, v) in [
        ("anger", e.anger),
        ("contempt", e.contempt),
        ("disgust", e.disgust),
        ("fear", e.fear),
        ("happiness", e.happiness),
        ("neutral", e.neutral),
        ("sadness", e.sadness),
        ("surprise", e.surprise),
    ] {
        unit(name, v)?;
    }
    let h = &a.facial_hair;
    for (name, v) in [("moustache", h.moustache), ("beard", h.beard), ("sideburns", h.sideburns)] {
        unit(name, v)?;
    }
    unit("bald", a.hair.bald)?;
    if a.hair.hair_color.len() > 8 {
        return Err(format!("{} hair colours, 8 at most", a.hair.hair_color.len()));
    }
    for c in &a.hair.hair_color {
        unit("hairColor confidence", c.confidence)?;
    }
    if a.accessories.len() > 3 {
        return Err(format!("{} accessories, 3 at most", a.accessories.len()));
    }
    for x in &a.accessories {
        unit("accessory confidence", x.confidence)?;
    }
    Ok(())
}

/// A value in 0..1, give or take float rounding.
fn unit(name: &str, v: f32) -> Result<(), String> {
    const SLACK: f32 = 1e-3;
    if (-SLACK..=1.0 + SLACK).contains(&v) { Ok(()) } else { Err(format!("{name} {v}, 0..1 expected")) }
}

fn finite(name: &str, v: &[f32]) -> Result<(), String> {
    match v.iter().find(|x| !x.is_finite()) {
        Some(x) => Err(format!("{name} holds {x}")),
        None => Ok(()),
    }
}

fn points(name: &str, p: &[guest::Point]) -> Result<(), String> {
    match p.iter().find(|p| !p.x.is_finite() || !p.y.is_finite()) {
        Some(p) => Err(format!("{name} holds the point ({}, {})", p.x, p.y)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_timings_keep_only_header_safe_names_and_a_bounded_count() {
        let steps = vec![
            ("decode".to_owned(), 5),
            ("detector-input".to_owned(), 6),
            ("a, b;dur=1".to_owned(), 7),
            (String::new(), 8),
            ("Decode".to_owned(), 9),
            ("x".repeat(33), 10),
        ];
        assert_eq!(timings(steps), [("decode".to_owned(), 5), ("detector-input".to_owned(), 6)]);
        let many: Vec<(String, u64)> = (0..40).map(|_| ("step".to_owned(), u64::MAX)).collect();
        assert_eq!(timings(many).len(), MAX_TIMINGS);
    }
}
