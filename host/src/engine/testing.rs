//! A small deterministic face engine for tests of the API's resources: no guest, no models.
//! Each photo the `image` crate can read has one face, centred, half the photo's shorter side;
//! its embedding is drawn from the SHA-256 of the photo's bytes, so the same photo gives the
//! same face and two photos give faces about as far apart as two strangers'. A photo under 36
//! pixels a side has none. Attributes are not computed (`Unavailable`): tests of them run the
//! real engine. Answers pass the same contract check as the guest's (`checked`).

use std::io::Cursor;

use sha2::{Digest, Sha256};

use super::{Analyser, CallError, CallTimes, EngineFuture, GuestSource, PoolStats, checked, guest};

/// The test engine.
#[derive(Debug, Default)]
pub struct TestEngine;

fn dimensions(image: &[u8]) -> Result<(u32, u32), CallError> {
    let reader = image::ImageReader::new(Cursor::new(image))
        .with_guessed_format()
        .map_err(|e| CallError::Guest(guest::Error::UnsupportedFormat(e.to_string())))?;
    if reader.format().is_none() {
        return Err(CallError::Guest(guest::Error::UnsupportedFormat("not a JPEG, PNG, GIF or BMP".into())));
    }
    reader.into_dimensions().map_err(|e| CallError::Guest(guest::Error::CorruptImage(e.to_string())))
}

/// The embedding of a photo: unit length, from its bytes' digest.
fn embedding(image: &[u8], model: guest::RecognitionModel) -> guest::Embedding {
    let dims = face_core::RecognitionModel::from(model).dimensions();
    let mut vector = Vec::with_capacity(dims);
    let mut block = Sha256::digest(image);
    while vector.len() < dims {
        vector.extend(block.iter().map(|b| f32::from(*b) - 127.5));
        block = Sha256::digest(block);
    }
    vector.truncate(dims);
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    vector.iter_mut().for_each(|x| *x /= norm);
    guest::Embedding { model, vector }
}

/// Points spread over `r`, `n` of them.
fn points(r: &guest::Rect, n: usize) -> Vec<guest::Point> {
    (0..n)
        .map(|i| {
            let t = (i as f32 + 0.5) / n as f32;
            guest::Point { x: r.left + r.width * t, y: r.top + r.height * (0.25 + 0.5 * t) }
        })
        .collect()
}

/// The face at `r` of the photo `image`.
fn face(image: &[u8], r: guest::Rect, landmarks: bool, model: Option<guest::RecognitionModel>) -> guest::Face {
    guest::Face {
        rectangle: guest::Rectangle {
            left: r.left as u32,
            top: r.top as u32,
            width: (r.width as u32).max(1),
            height: (r.height as u32).max(1),
        },
        box_: r,
        score: 0.99,
        landmarks5: points(&r, 5),
        landmarks68: if landmarks { points(&r, 68) } else { vec![] },
        landmarks27: if landmarks { points(&r, 27) } else { vec![] },
        embedding: model.map(|m| embedding(image, m)),
        attributes: None,
    }
}

impl Analyser for TestEngine {
    fn detect_timed(
        &self,
        image: Vec<u8>,
        options: guest::DetectOptions,
    ) -> EngineFuture<'_, (Vec<guest::Face>, CallTimes)> {
        Box::pin(async move {
            if options.attributes {
                return Err(CallError::Unavailable("the test engine computes no attributes".into()));
            }
            let (w, h) = dimensions(&image)?;
            if w < 36 || h < 36 {
                return Ok((vec![], CallTimes::default()));
            }
            let side = (w.min(h) / 2) as f32;
            let r =
                guest::Rect { left: (w as f32 - side) / 2.0, top: (h as f32 - side) / 2.0, width: side, height: side };
            let faces = vec![face(&image, r, options.landmarks, options.recognition)];
            checked::faces(&faces, &checked::Asked::from(&options)).map_err(CallError::Broken)?;
            Ok((faces, CallTimes::default()))
        })
    }

    fn embed(
        &self,
        image: Vec<u8>,
        target: guest::Rect,
        model: guest::RecognitionModel,
    ) -> EngineFuture<'_, guest::Face> {
        Box::pin(async move {
            let (w, h) = dimensions(&image)?;
            if target.left + target.width > w as f32 || target.top + target.height > h as f32 {
                return Err(CallError::Guest(guest::Error::NoFace("targetFace is outside the image".into())));
            }
            let face = face(&image, target, false, Some(model));
            let asked = checked::Asked { max_faces: 1, landmarks: false, recognition: Some(model), attributes: false };
            checked::face(&face, &asked).map_err(CallError::Broken)?;
            Ok(face)
        })
    }

    fn stats(&self) -> PoolStats {
        PoolStats { size: 1, idle: 1, guest_source: GuestSource::Compiled, ..PoolStats::default() }
    }
}
