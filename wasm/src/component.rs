//! The guest face-server runs in wasmtime: `wit/face.wit` exported over face-core. Its models
//! run either on the host, as `wasi:nn` graphs loaded by name (`init-named`), or in here with
//! tract (`init`).

use std::cell::RefCell;
use std::sync::Arc;
use std::time::Instant;

use face_core::{AttributeBytes, Engine, Model, ModelBytes, ModelInfo, RectF, Runner, Step};

wit_bindgen::generate!({ path: "wit", world: "face-engine", generate_all });

use face::engine::types as wit;
use wasi::nn::{graph, inference::GraphExecutionContext, tensor};

thread_local! {
    static ENGINE: RefCell<Option<Engine>> = const { RefCell::new(None) };
    /// Microseconds of the model calls since the last `detect` began, by role.
    static MODEL_MICROS: RefCell<[u64; 4]> = const { RefCell::new([0; 4]) };
    /// The last `detect`'s steps, for `timings`.
    static TIMINGS: RefCell<Vec<(String, u64)>> = const { RefCell::new(Vec::new()) };
    /// The host graphs' execution contexts, indexed by `NnRunner::index`, with their graphs.
    static CONTEXTS: RefCell<Vec<(graph::Graph, GraphExecutionContext)>> = const { RefCell::new(Vec::new()) };
}

/// A model the host runs: one `wasi:nn` execution context of this instance.
struct NnRunner {
    index: usize,
    input: &'static str,
}

impl NnRunner {
    fn load(info: &ModelInfo) -> Result<Arc<dyn Runner>, face_core::Error> {
        let failed = |what: &str, e: wasi::nn::errors::Error| face_core::Error::Model {
            model: info.name,
            reason: format!("{what} ({:?}): {}", e.code(), e.data()),
        };
        let graph = graph::load_by_name(info.name).map_err(|e| failed("the host has no such graph", e))?;
        let context = graph.init_execution_context().map_err(|e| failed("no execution context", e))?;
        let index = CONTEXTS.with(|c| {
            let mut c = c.borrow_mut();
            c.push((graph, context));
            c.len() - 1
        });
        Ok(Arc::new(NnRunner { index, input: info.input }))
    }
}

impl Runner for NnRunner {
    fn run(&self, shape: &[usize], data: Vec<f32>) -> Result<Vec<Vec<f32>>, String> {
        let dims = shape.iter().map(|&d| u32::try_from(d).map_err(|_| format!("dimension {d} is too large")));
        let dims = dims.collect::<Result<Vec<u32>, String>>()?;
        // The f32s cross as their bytes, viewed in place (wasm is little-endian, as wasi:nn's data).
        let input = tensor::Tensor::new(&dims, tensor::TensorType::Fp32, bytemuck::cast_slice(&data));
        drop(data);
        let outputs = CONTEXTS.with(|c| {
            let c = c.borrow();
            let (_, context) = c.get(self.index).ok_or("the execution context is gone")?;
            context
                .compute(vec![(self.input.to_owned(), input)])
                .map_err(|e| format!("the host failed to run it ({:?}): {}", e.code(), e.data()))
        })?;
        outputs
            .into_iter()
            .map(|(name, t)| match t.ty() {
                tensor::TensorType::Fp32 => face_core::f32_from_bytes(&t.data())
                    .ok_or_else(|| format!("output {name} is not a whole number of f32s")),
                other => Err(format!("output {name} is {other:?}, f32 was expected")),
            })
            .collect()
    }
}

/// The roles of the models, in `MODEL_MICROS` order, for `timings`.
const ROLES: [&str; 4] = ["detector", "landmarks", "recognizer", "attributes"];

fn role(model: &str) -> usize {
    match model {
        m if m == face_core::MODELS[0].name => 0,
        m if m == face_core::MODELS[1].name => 1,
        m if m == face_core::MODELS[2].name || m == face_core::MODELS[3].name => 2,
        _ => 3,
    }
}

/// A runner whose calls are timed into `MODEL_MICROS` (the guest's clock; face-core reads none).
struct Timed {
    role: usize,
    inner: Arc<dyn Runner>,
}

impl Timed {
    fn wrap(info: &ModelInfo, inner: Arc<dyn Runner>) -> Arc<dyn Runner> {
        Arc::new(Timed { role: role(info.name), inner })
    }
}

impl Runner for Timed {
    fn run(&self, shape: &[usize], data: Vec<f32>) -> Result<Vec<Vec<f32>>, String> {
        let start = Instant::now();
        let out = self.inner.run(shape, data);
        MODEL_MICROS.with(|m| m.borrow_mut()[self.role] += micros(start.elapsed()));
        out
    }
}

fn micros(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

struct Component;

export!(Component);

impl Guest for Component {
    fn init(models: wit::Models) -> Result<(), wit::Error> {
        let attributes = (!models.age_gender.is_empty() || !models.expression.is_empty())
            .then(|| AttributeBytes { age_gender: &models.age_gender, expression: &models.expression });
        let bytes = ModelBytes {
            detector: &models.detector,
            landmarks68: &models.landmarks68,
            sface: &models.sface,
            faceapi_recognizer: &models.faceapi_recognizer,
            attributes,
        };
        // tract in here, each model timed.
        let engine = Engine::from_runners(
            |info| {
                let model = Model::load(info, bytes.of(info))?;
                Ok(Timed::wrap(info, model.runner()))
            },
            attributes.is_some(),
        )
        .map_err(error)?;
        ENGINE.with(|e| *e.borrow_mut() = Some(engine));
        Ok(())
    }

    fn init_named(attributes: bool) -> Result<(), wit::Error> {
        CONTEXTS.with(|c| c.borrow_mut().clear());
        let engine = Engine::from_runners(|info| NnRunner::load(info).map(|r| Timed::wrap(info, r)), attributes)
            .map_err(error)?;
        ENGINE.with(|e| *e.borrow_mut() = Some(engine));
        Ok(())
    }

    fn detect(image: Vec<u8>, options: wit::DetectOptions) -> Result<Vec<wit::Face>, wit::Error> {
        with_engine(|engine| {
            MODEL_MICROS.with(|m| *m.borrow_mut() = [0; 4]);
            // Microseconds of each step: decode, detect, describe.
            let mut steps = [0u64; 3];
            let mut last = Instant::now();
            let faces = engine.detect_observed(&image, &detect_options(&options), &mut |step| {
                let i = match step {
                    Step::Decoded => 0,
                    Step::Detected => 1,
                    Step::Described => 2,
                };
                steps[i] += micros(last.elapsed());
                last = Instant::now();
            });
            let models = MODEL_MICROS.with(|m| *m.borrow());
            let mut timings = vec![
                ("decode".to_owned(), steps[0]),
                ("detector-input".to_owned(), steps[1].saturating_sub(models[0])),
                ("crops".to_owned(), steps[2].saturating_sub(models[1] + models[2] + models[3])),
            ];
            timings.extend(ROLES.iter().zip(models).map(|(r, m)| ((*r).to_owned(), m)));
            TIMINGS.with(|t| *t.borrow_mut() = timings);
            Ok(faces.map_err(error)?.into_iter().map(face).collect())
        })
    }

    fn timings() -> Vec<(String, u64)> {
        TIMINGS.with(|t| t.borrow().clone())
    }

    fn embed(image: Vec<u8>, target: wit::Rect, model: wit::RecognitionModel) -> Result<wit::Face, wit::Error> {
        with_engine(|engine| {
            let options = face_core::DetectOptions {
                landmarks: false,
                recognition: Some(recognition(model)),
                ..Default::default()
            };
            let target = RectF { left: target.left, top: target.top, width: target.width, height: target.height };
            engine.face_in_photo(&image, target, &options).map(face).map_err(error)
        })
    }
}

fn with_engine<T>(f: impl FnOnce(&Engine) -> Result<T, wit::Error>) -> Result<T, wit::Error> {
    ENGINE.with(|e| match e.borrow().as_ref() {
        Some(engine) => f(engine),
        None => Err(wit::Error::NotInitialised("call init (model bytes) or init-named (host graphs) first".into())),
    })
}

fn recognition(model: wit::RecognitionModel) -> face_core::RecognitionModel {
    match model {
        wit::RecognitionModel::Sface => face_core::RecognitionModel::SFace,
        wit::RecognitionModel::Faceapi => face_core::RecognitionModel::FaceApi,
    }
}

fn detect_options(o: &wit::DetectOptions) -> face_core::DetectOptions {
    face_core::DetectOptions {
        min_score: o.min_score,
        max_faces: o.max_faces as usize,
        landmarks: o.landmarks,
        recognition: o.recognition.map(recognition),
        attributes: o.attributes,
    }
}

fn point(p: &face_core::Point) -> wit::Point {
    wit::Point { x: p.x, y: p.y }
}

fn face(f: face_core::Face) -> wit::Face {
    let r = f.rectangle;
    let b = f.detection.rect;
    wit::Face {
        rectangle: wit::Rectangle { left: r.left, top: r.top, width: r.width, height: r.height },
        box_: wit::Rect { left: b.left, top: b.top, width: b.width, height: b.height },
        score: f.detection.score,
        landmarks5: f.detection.landmarks5.iter().map(point).collect(),
        landmarks68: f.landmarks68.as_deref().unwrap_or_default().iter().map(point).collect(),
        landmarks27: f.landmarks.map(|l| l.to_array().iter().map(point).collect()).unwrap_or_default(),
        embedding: f.embedding.map(|e| wit::Embedding {
            model: match e.model {
                face_core::RecognitionModel::FaceApi => wit::RecognitionModel::Faceapi,
                _ => wit::RecognitionModel::Sface,
            },
            vector: e.vector,
        }),
        attributes: f.attributes.map(|a| wit::Attributes {
            age: a.age,
            gender: match a.gender {
                face_core::Gender::Male => wit::Gender::Male,
                face_core::Gender::Female => wit::Gender::Female,
            },
            gender_confidence: a.gender_confidence,
            expressions: a.expressions.to_vec(),
            smile: a.smile,
            blur: measure(a.blur),
            exposure: measure(a.exposure),
            noise: measure(a.noise),
            head_pose: a.head_pose.map(|p| wit::HeadPose { roll: p.roll, yaw: p.yaw, pitch: p.pitch }),
            emotion: emotion(&a.emotion),
            glasses: match a.glasses {
                face_core::Glasses::NoGlasses => wit::Glasses::NoGlasses,
                face_core::Glasses::ReadingGlasses => wit::Glasses::ReadingGlasses,
                face_core::Glasses::Sunglasses => wit::Glasses::Sunglasses,
                face_core::Glasses::SwimmingGoggles => wit::Glasses::SwimmingGoggles,
            },
            facial_hair: wit::FacialHair {
                moustache: a.facial_hair.moustache,
                beard: a.facial_hair.beard,
                sideburns: a.facial_hair.sideburns,
            },
            hair: wit::Hair {
                bald: a.hair.bald,
                invisible: a.hair.invisible,
                hair_color: a
                    .hair
                    .hair_color
                    .iter()
                    .map(|c| wit::HairColor { color: hair_color(c.color), confidence: c.confidence })
                    .collect(),
            },
            makeup: wit::Makeup { eye_makeup: a.makeup.eye_makeup, lip_makeup: a.makeup.lip_makeup },
            occlusion: wit::Occlusion {
                forehead_occluded: a.occlusion.forehead_occluded,
                eye_occluded: a.occlusion.eye_occluded,
                mouth_occluded: a.occlusion.mouth_occluded,
            },
            accessories: a
                .accessories
                .iter()
                .map(|x| wit::Accessory {
                    kind: match x.kind {
                        face_core::AccessoryType::Headwear => wit::AccessoryType::Headwear,
                        face_core::AccessoryType::Glasses => wit::AccessoryType::Glasses,
                        face_core::AccessoryType::Mask => wit::AccessoryType::Mask,
                    },
                    confidence: x.confidence,
                })
                .collect(),
        }),
    }
}

fn emotion(e: &face_core::Emotion) -> wit::Emotion {
    wit::Emotion {
        anger: e.anger,
        contempt: e.contempt,
        disgust: e.disgust,
        fear: e.fear,
        happiness: e.happiness,
        neutral: e.neutral,
        sadness: e.sadness,
        surprise: e.surprise,
    }
}

fn hair_color(c: face_core::HairColorType) -> wit::HairColorType {
    use face_core::HairColorType as H;
    match c {
        H::Unknown => wit::HairColorType::Unknown,
        H::White => wit::HairColorType::White,
        H::Gray => wit::HairColorType::Gray,
        H::Blond => wit::HairColorType::Blond,
        H::Brown => wit::HairColorType::Brown,
        H::Red => wit::HairColorType::Red,
        H::Black => wit::HairColorType::Black,
        H::Other => wit::HairColorType::Other,
    }
}

fn measure(m: face_core::Measure) -> wit::Measure {
    wit::Measure {
        value: m.value,
        level: match m.level {
            face_core::Level::Low => wit::Level::Low,
            face_core::Level::Medium => wit::Level::Medium,
            face_core::Level::High => wit::Level::High,
        },
    }
}

fn error(e: face_core::Error) -> wit::Error {
    use face_core::Error as E;
    let message = e.to_string();
    match e {
        E::FileTooSmall { .. } => wit::Error::FileTooSmall(message),
        E::FileTooLarge { .. } => wit::Error::FileTooLarge(message),
        E::UnsupportedFormat { .. } => wit::Error::UnsupportedFormat(message),
        E::CorruptImage { .. } => wit::Error::CorruptImage(message),
        E::ImageTooSmall { .. } => wit::Error::ImageTooSmall(message),
        E::ImageTooLarge { .. } => wit::Error::ImageTooLarge(message),
        E::DecompressionBomb { .. } => wit::Error::DecompressionBomb(message),
        E::NoFace { .. } => wit::Error::NoFace(message),
        E::InvalidArgument { .. } => wit::Error::InvalidArgument(message),
        _ => wit::Error::Model(message),
    }
}
