//! The engine: loaded models and the detect-and-embed pipeline.

use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::attributes::{self, AttributeModels, Attributes};
use crate::decode::{DecodeLimits, decode, decode_at_least, decode_choosing, decode_scaled, scale_keeping};
use crate::detect::{self, DEFAULT_MIN_SCORE, Detection};
use crate::embed::{self, Embedding, RecognitionModel};
use crate::error::{Error, Result};
use crate::geometry::{Point, RectF};
use crate::landmarks::{self, FaceLandmarks};
use crate::model::{MODELS, Model, ModelInfo, Runner};

/// The ONNX files the engine runs, as bytes (the engine never reads files itself).
#[derive(Debug, Clone, Copy)]
pub struct ModelBytes<'a> {
    /// YuNet 2023mar, folded to fp32.
    pub detector: &'a [u8],
    /// face-api.js FaceLandmark68Net.
    pub landmarks68: &'a [u8],
    /// SFace 2021dec, folded to fp32.
    pub sface: &'a [u8],
    /// face-api.js FaceRecognitionNet.
    pub faceapi_recognizer: &'a [u8],
    /// The attribute nets, for `DetectOptions::attributes`; `None` leaves attributes out.
    pub attributes: Option<AttributeBytes<'a>>,
}

impl ModelBytes<'_> {
    /// The bytes of the model `info` names (`MODELS`); empty for an attribute net not given.
    pub fn of(&self, info: &ModelInfo) -> &[u8] {
        let attributes = self.attributes.as_ref();
        match info.name {
            n if n == MODELS[0].name => self.detector,
            n if n == MODELS[1].name => self.landmarks68,
            n if n == MODELS[2].name => self.sface,
            n if n == MODELS[3].name => self.faceapi_recognizer,
            n if n == MODELS[4].name => attributes.map_or(&[], |a| a.age_gender),
            n if n == MODELS[5].name => attributes.map_or(&[], |a| a.expression),
            _ => &[],
        }
    }
}

/// The attribute nets as bytes.
#[derive(Debug, Clone, Copy)]
pub struct AttributeBytes<'a> {
    /// face-api.js AgeGenderNet.
    pub age_gender: &'a [u8],
    /// face-api.js FaceExpressionNet.
    pub expression: &'a [u8],
}

/// The engine's model files, owned, as `cargo xtask models` writes them; `bytes()` lends them
/// as `ModelBytes`. The one way every native caller loads the engine:
/// `Engine::new(&ModelSet::read_with(read)?.bytes())`.
#[derive(Debug, Clone, Default)]
pub struct ModelSet {
    pub detector: Vec<u8>,
    pub landmarks68: Vec<u8>,
    pub sface: Vec<u8>,
    pub faceapi_recognizer: Vec<u8>,
    pub age_gender: Vec<u8>,
    pub expression: Vec<u8>,
}

impl ModelSet {
    /// The file names `cargo xtask models` writes (models/manifest.toml), in field order: the
    /// `file` of each entry of `MODELS`.
    pub const FILES: [&'static str; 6] =
        [MODELS[0].file, MODELS[1].file, MODELS[2].file, MODELS[3].file, MODELS[4].file, MODELS[5].file];

    /// Reads each file through `read` (the caller's I/O: a file system, a fetch, a bundle).
    pub fn read_with<E>(mut read: impl FnMut(&'static str) -> Result<Vec<u8>, E>) -> Result<ModelSet, E> {
        let [detector, landmarks68, sface, faceapi_recognizer, age_gender, expression] = Self::FILES;
        Ok(ModelSet {
            detector: read(detector)?,
            landmarks68: read(landmarks68)?,
            sface: read(sface)?,
            faceapi_recognizer: read(faceapi_recognizer)?,
            age_gender: read(age_gender)?,
            expression: read(expression)?,
        })
    }

    pub fn bytes(&self) -> ModelBytes<'_> {
        ModelBytes {
            detector: &self.detector,
            landmarks68: &self.landmarks68,
            sface: &self.sface,
            faceapi_recognizer: &self.faceapi_recognizer,
            attributes: Some(AttributeBytes { age_gender: &self.age_gender, expression: &self.expression }),
        }
    }
}

/// The most faces one image yields, as in the Face API.
pub const MAX_FACES: usize = 100;
/// Detector threshold inside a caller-given face rectangle.
const TARGET_MIN_SCORE: f32 = 0.5;

/// What `Engine::detect` computes beyond the boxes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DetectOptions {
    pub min_score: f32,
    pub max_faces: usize,
    /// Compute the 68 points and the 27 Face API landmarks.
    pub landmarks: bool,
    /// Compute an embedding with this model.
    pub recognition: Option<RecognitionModel>,
    /// Compute all the attributes (needs the attribute models).
    pub attributes: bool,
}

impl Default for DetectOptions {
    fn default() -> Self {
        DetectOptions {
            min_score: DEFAULT_MIN_SCORE,
            max_faces: MAX_FACES,
            landmarks: true,
            recognition: None,
            attributes: false,
        }
    }
}

/// A face rectangle in whole pixels, inside the image, as the Face API reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rectangle {
    pub left: u32,
    pub top: u32,
    pub width: u32,
    pub height: u32,
}

impl Rectangle {
    /// Rounds `r` to pixels and clips it to a `w x h` image.
    pub fn clipped(r: &RectF, w: u32, h: u32) -> Rectangle {
        let x1 = r.left.round().clamp(0.0, w as f32) as u32;
        let y1 = r.top.round().clamp(0.0, h as f32) as u32;
        let x2 = (r.left + r.width).round().clamp(0.0, w as f32) as u32;
        let y2 = (r.top + r.height).round().clamp(0.0, h as f32) as u32;
        Rectangle { left: x1, top: y1, width: x2.saturating_sub(x1), height: y2.saturating_sub(y1) }
    }
}

/// Where the Face API's face rectangle sits between the eyes' midpoint (0) and the mouth's (1).
const RECT_CENTRE: f32 = 0.43;
/// The rectangle's side per unit of `hypot(inter-ocular distance, eye-to-mouth distance)`.
const RECT_SIDE: f32 = 1.5;

/// The Face API's face rectangle, from the five points: a square from about the brows to the
/// chin, centred on the face, as the service draws it (the detector's own box, taller and from
/// the hairline, stays in `Detection::rect`). Its side grows with both the inter-ocular and the
/// eye-to-mouth distance, so it holds its size as the head turns or nods; its centre is 0.43 of
/// the way from the eyes' midpoint to the mouth's. The two constants are fitted to Azure's
/// recorded answer for the official SDK's `facefindsimilar.queryface.jpg` (left 31, top 84,
/// side 97; ours: left 30, top 84, side 97); `cargo xtask eval` reports the fit.
pub fn face_square(points: &[Point; 5]) -> RectF {
    let [eye_l, eye_r, _, mouth_l, mouth_r] = *points;
    let eyes = Point::new((eye_l.x + eye_r.x) / 2.0, (eye_l.y + eye_r.y) / 2.0);
    let mouth = Point::new((mouth_l.x + mouth_r.x) / 2.0, (mouth_l.y + mouth_r.y) / 2.0);
    let ocular = (eye_r.x - eye_l.x).hypot(eye_r.y - eye_l.y);
    let eye_mouth = (mouth.x - eyes.x).hypot(mouth.y - eyes.y);
    let side = RECT_SIDE * ocular.hypot(eye_mouth);
    let centre = Point::new(eyes.x + RECT_CENTRE * (mouth.x - eyes.x), eyes.y + RECT_CENTRE * (mouth.y - eyes.y));
    RectF { left: centre.x - side / 2.0, top: centre.y - side / 2.0, width: side, height: side }
}

/// The steps of [`Engine::detect_observed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The photo is decoded (at the scale the step needs).
    Decoded,
    /// The detector has run: its input made, the model run, boxes decoded and suppressed.
    Detected,
    /// Every face is described: crops, landmarks, embeddings, attributes.
    Described,
}

/// A large JPEG is decoded at the smallest DCT scale whose longer side keeps at least this many
/// pixels: half again the detector's 640, so the detector's input is resampled from more pixels
/// than it has (a 4032x3024 photo is decoded at 1/4, 1008x756; 1920x1080 at 1/2).
pub const DETECT_SIDE: u32 = 960;

/// A face is described (68 landmarks, embedding) from a decode in which its detector box keeps at
/// least this many pixels on its longer side: more than the largest net input (150, the
/// face-api.js recognizer), so the crops are resampled down from about their own size or more.
pub const FACE_DETAIL: f32 = 160.0;

/// The coarsest decode scale, at most `at_most`, at which a face box `side` pixels wide in the
/// photo keeps `FACE_DETAIL` pixels; 1 when even the full photo has fewer.
fn detail_scale(side: f32, at_most: u32) -> u32 {
    crate::decode::SCALES.into_iter().find(|&k| k <= at_most && side / k as f32 >= FACE_DETAIL).unwrap_or(1)
}

fn check_max_faces(max_faces: usize) -> Result<()> {
    if max_faces == 0 || max_faces > MAX_FACES {
        return Err(Error::InvalidArgument { reason: format!("max_faces {max_faces} is outside 1..={MAX_FACES}") });
    }
    Ok(())
}

/// One face and everything computed for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Face {
    pub rectangle: Rectangle,
    pub detection: Detection,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub landmarks68: Option<Vec<Point>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub landmarks: Option<FaceLandmarks>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embedding: Option<Embedding>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attributes: Option<Attributes>,
}

impl Face {
    /// The face in the coordinates of an image `k` times larger on each axis (`width x height`),
    /// its rectangle clipped to that image.
    pub fn scaled(mut self, k: f32, width: u32, height: u32) -> Face {
        if k == 1.0 {
            return self;
        }
        self.detection = self.detection.scaled(k);
        if let Some(points) = &mut self.landmarks68 {
            points.iter_mut().for_each(|p| *p = Point::new(p.x * k, p.y * k));
            self.landmarks = self.landmarks.and(FaceLandmarks::from_68(points));
        }
        self.rectangle = Rectangle::clipped(&face_square(&self.detection.landmarks5), width, height);
        self
    }
}

/// The loaded models. Cheap to share: runs take `&self`.
#[derive(Debug, Clone)]
pub struct Engine {
    detector: Model,
    landmarks68: Model,
    sface: Model,
    faceapi: Model,
    attributes: Option<AttributeModels>,
    limits: DecodeLimits,
}

impl Engine {
    /// Loads every model into tract, in this process (the attribute nets when given). Fails
    /// with `Error::Model` naming the model that would not load.
    pub fn new(models: &ModelBytes<'_>) -> Result<Engine> {
        let attributes = match models.attributes {
            Some(a) => Some(AttributeModels {
                age_gender: Model::load(&MODELS[4], a.age_gender)?,
                expression: Model::load(&MODELS[5], a.expression)?,
            }),
            None => None,
        };
        Ok(Engine {
            detector: Model::load(&MODELS[0], models.detector)?,
            landmarks68: Model::load(&MODELS[1], models.landmarks68)?,
            sface: Model::load(&MODELS[2], models.sface)?,
            faceapi: Model::load(&MODELS[3], models.faceapi_recognizer)?,
            attributes,
            limits: DecodeLimits::default(),
        })
    }

    /// An engine whose model calls go to runners made by `runner` (for example `wasi:nn` graphs
    /// a host runs), one per entry of `MODELS`; the attribute nets only when `attributes`.
    pub fn from_runners(
        mut runner: impl FnMut(&'static ModelInfo) -> Result<std::sync::Arc<dyn Runner>>,
        attributes: bool,
    ) -> Result<Engine> {
        let mut model = |info: &'static ModelInfo| runner(info).map(|r| Model::new(info.name, r));
        let models: &'static [ModelInfo; 6] = &MODELS;
        let [detector, landmarks68, sface, faceapi, age_gender, expression] = models;
        Ok(Engine {
            detector: model(detector)?,
            landmarks68: model(landmarks68)?,
            sface: model(sface)?,
            faceapi: model(faceapi)?,
            attributes: if attributes {
                Some(AttributeModels { age_gender: model(age_gender)?, expression: model(expression)? })
            } else {
                None
            },
            limits: DecodeLimits::default(),
        })
    }

    /// The attributes of a detected face: the nets' (age, gender, emotion, smile), the measured
    /// (blur, exposure, noise, head pose) and the derived (see `appearance`).
    pub fn attributes(&self, img: &RgbImage, det: &Detection, landmarks68: &[Point]) -> Result<Attributes> {
        let models = self.attributes.as_ref().ok_or_else(|| Error::InvalidArgument {
            reason: "face attributes were asked for, but the engine was created without the attribute models".into(),
        })?;
        if landmarks68.len() != 68 {
            return Err(Error::InvalidArgument {
                reason: format!("68 landmarks are needed, {} were given", landmarks68.len()),
            });
        }
        attributes::attributes(models, img, &face_square(&det.landmarks5), landmarks68)
    }

    /// Replaces the decode limits (defaults: the Face API's).
    pub fn with_limits(mut self, limits: DecodeLimits) -> Engine {
        self.limits = limits;
        self
    }

    pub fn limits(&self) -> &DecodeLimits {
        &self.limits
    }

    /// Decodes `bytes` with this engine's limits.
    pub fn decode(&self, bytes: &[u8]) -> Result<RgbImage> {
        decode(bytes, &self.limits)
    }

    /// Decodes a photo and runs the whole pipeline on it. A large JPEG is decoded at the scale
    /// the detector needs (`DETECT_SIDE`); a face too small at that scale for its crops
    /// (`FACE_DETAIL`) is described from a finer decode; with `attributes`, the photo is decoded
    /// in full. Every coordinate is the photo's own.
    pub fn detect(&self, bytes: &[u8], options: &DetectOptions) -> Result<Vec<Face>> {
        self.detect_observed(bytes, options, &mut |_| {})
    }

    /// [`Engine::detect`], telling `observe` as each step ends, so a caller with a clock can
    /// time them (the engine reads none). A finer decode for small faces is a second `Decoded`.
    pub fn detect_observed(
        &self,
        bytes: &[u8],
        options: &DetectOptions,
        observe: &mut dyn FnMut(Step),
    ) -> Result<Vec<Face>> {
        // The measured attributes (noise above all) are read off the photo's own pixels, so a
        // detect that asks for attributes decodes in full, as before scaled decodes.
        let min_side = if options.attributes { u32::MAX } else { DETECT_SIDE };
        let coarse = decode_at_least(bytes, &self.limits, min_side)?;
        observe(Step::Decoded);
        check_max_faces(options.max_faces)?;
        let detections = self.detect_faces(&coarse.image, options.min_score, options.max_faces)?;
        observe(Step::Detected);
        let coarse_scale = coarse.scale;
        let side = |d: &Detection| d.rect.width.max(d.rect.height) * coarse_scale as f32;
        let finest = detections.iter().map(|d| detail_scale(side(d), coarse_scale)).min().unwrap_or(coarse_scale);
        let photo = if finest < coarse_scale {
            let finer = decode_scaled(bytes, &self.limits, finest)?;
            observe(Step::Decoded);
            finer
        } else {
            coarse
        };
        let to_photo = (coarse_scale / photo.scale) as f32;
        let faces = detections
            .into_iter()
            .map(|d| {
                let face = self.describe(&photo.image, d.scaled(to_photo), options)?;
                Ok(face.scaled(photo.scale as f32, photo.width, photo.height))
            })
            .collect();
        observe(Step::Described);
        faces
    }

    /// The face inside `target` (in the photo's pixels) of an encoded photo, as
    /// [`Engine::face_in_rect`]; a large JPEG is decoded at the coarsest scale that both `detect`
    /// would use (`DETECT_SIDE`) and keeps the target's detail (`FACE_DETAIL`), so a photo that
    /// `detect` decodes in full is decoded in full here too.
    pub fn face_in_photo(&self, bytes: &[u8], target: RectF, options: &DetectOptions) -> Result<Face> {
        let side = target.width.max(target.height);
        let thin = target.width.min(target.height);
        let photo = decode_choosing(bytes, &self.limits, |w, h| {
            let k = detail_scale(side, scale_keeping(w, h, DETECT_SIDE));
            // A target under a pixel at that scale is judged (and refused) at full scale.
            if thin / k as f32 >= 1.0 { k } else { 1 }
        })?;
        let k = photo.scale as f32;
        let target =
            RectF { left: target.left / k, top: target.top / k, width: target.width / k, height: target.height / k };
        Ok(self.face_in_rect(&photo.image, target, options)?.scaled(k, photo.width, photo.height))
    }

    /// Runs the pipeline on a decoded image. Faces are ranked by rectangle size, largest first.
    pub fn detect_image(&self, img: &RgbImage, options: &DetectOptions) -> Result<Vec<Face>> {
        check_max_faces(options.max_faces)?;
        let detections = self.detect_faces(img, options.min_score, options.max_faces)?;
        detections.into_iter().map(|d| self.describe(img, d, options)).collect()
    }

    /// The detector alone.
    pub fn detect_faces(&self, img: &RgbImage, min_score: f32, max_faces: usize) -> Result<Vec<Detection>> {
        detect::detect(&self.detector, img, min_score, max_faces)
    }

    /// The 68 landmarks of a detected face, in image pixels.
    pub fn landmarks68(&self, img: &RgbImage, det: &Detection) -> Result<Vec<Point>> {
        landmarks::landmarks68(&self.landmarks68, img, det)
    }

    /// Embeds a detected face. `landmarks68` is needed by the face-api.js recognizer and computed
    /// when not given.
    pub fn embed(
        &self,
        img: &RgbImage,
        det: &Detection,
        landmarks68: Option<&[Point]>,
        model: RecognitionModel,
    ) -> Result<Embedding> {
        match model {
            RecognitionModel::SFace => embed::sface(&self.sface, img, det),
            RecognitionModel::FaceApi => match landmarks68 {
                Some(points) if points.len() != 68 => Err(Error::InvalidArgument {
                    reason: format!("68 landmarks are needed, {} were given", points.len()),
                }),
                Some(points) => embed::faceapi(&self.faceapi, img, points),
                None => embed::faceapi(&self.faceapi, img, &self.landmarks68(img, det)?),
            },
        }
    }

    /// The face inside a caller-given rectangle (the Face API's `targetFace`): the detector runs
    /// on the area around `target` at a lower threshold, since the caller vouches for a face, and
    /// the detection whose face rectangle overlaps `target` most (IoU at least 0.3) is described
    /// with `options`.
    pub fn face_in_rect(&self, img: &RgbImage, target: RectF, options: &DetectOptions) -> Result<Face> {
        let valid = [target.left, target.top, target.width, target.height].iter().all(|v| v.is_finite());
        if !valid || target.width < 1.0 || target.height < 1.0 {
            return Err(Error::InvalidArgument {
                reason: format!("target rectangle {target:?} is empty or not finite"),
            });
        }
        let (iw, ih) = (img.width() as f32, img.height() as f32);
        let area = target.square(2.0);
        let x1 = area.left.clamp(0.0, iw).floor();
        let y1 = area.top.clamp(0.0, ih).floor();
        let x2 = (area.left + area.width).clamp(0.0, iw).ceil();
        let y2 = (area.top + area.height).clamp(0.0, ih).ceil();
        if x2 - x1 < 1.0 || y2 - y1 < 1.0 {
            return Err(Error::InvalidArgument {
                reason: format!("target rectangle {target:?} lies outside the image"),
            });
        }
        let crop = image::imageops::crop_imm(img, x1 as u32, y1 as u32, (x2 - x1) as u32, (y2 - y1) as u32).to_image();
        let found = self.detect_faces(&crop, TARGET_MIN_SCORE, MAX_FACES)?;
        let best = found
            .into_iter()
            .map(|mut d| {
                d.rect.left += x1;
                d.rect.top += y1;
                for p in &mut d.landmarks5 {
                    p.x += x1;
                    p.y += y1;
                }
                d
            })
            // Compared in the convention the caller's rectangle comes in (detect's faceRectangle).
            .map(|d| (face_square(&d.landmarks5).iou(&target), d))
            .filter(|(iou, _)| *iou >= 0.3)
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, d)| d)
            .ok_or_else(|| Error::NoFace { reason: "no face was detected in the target rectangle".into() })?;
        self.describe(img, best, options)
    }

    /// Everything asked for about one detection.
    pub fn describe(&self, img: &RgbImage, detection: Detection, options: &DetectOptions) -> Result<Face> {
        let needs_68 =
            options.landmarks || options.attributes || options.recognition == Some(RecognitionModel::FaceApi);
        let landmarks68 = if needs_68 { Some(self.landmarks68(img, &detection)?) } else { None };
        let embedding =
            options.recognition.map(|model| self.embed(img, &detection, landmarks68.as_deref(), model)).transpose()?;
        let attributes = match (&landmarks68, options.attributes) {
            (Some(points), true) => Some(self.attributes(img, &detection, points)?),
            _ => None,
        };
        let landmarks = if options.landmarks { landmarks68.as_deref().and_then(FaceLandmarks::from_68) } else { None };
        Ok(Face {
            rectangle: Rectangle::clipped(&face_square(&detection.landmarks5), img.width(), img.height()),
            detection,
            landmarks68: if options.landmarks { landmarks68 } else { None },
            landmarks,
            embedding,
            attributes,
        })
    }
}
