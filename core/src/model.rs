//! Running a model: the one seam between the engine and the place its tensor kernels run.
//!
//! Every model call of the engine goes through [`Model::run`], which hands one NCHW f32 tensor to
//! a [`Runner`]. Two runners exist: [`TractPlan`] (tract in-process: native, the npm package, the
//! browser, and face-server's `guest` backend) and, in face-server's guest, a `wasi:nn` graph that
//! the host runs (wasm/src/component.rs). Everything around the call (decoding, preprocessing,
//! output decoding, NMS, alignment, attributes) stays in face-core, wherever the kernels run.

use std::fmt;
use std::io::Cursor;
use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::{SimpleState, bail};

use crate::error::{Error, Result};

/// One of the engine's models: the name it has in errors, in models/manifest.toml and as a
/// `wasi:nn` graph (`load-by-name`); its file; its input, as the engine feeds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelInfo {
    pub name: &'static str,
    pub file: &'static str,
    /// The graph's input name.
    pub input: &'static str,
    /// Every input shape the engine feeds, NCHW, the first the model's usual one. A runner
    /// optimises the model once for each; no other shape is ever run.
    pub shapes: &'static [[usize; 4]],
}

/// The detector's input sizes (its file leaves height and width free): the photo is scaled to
/// 640 on its longer side and goes into the smallest of these that holds it, so a 4:3 landscape
/// photo runs on 3/4 of the pixels and a 16:9 one on 3/5. No portrait sizes: tract runs YuNet
/// slower at 480 or 384 wide than at 640x640 (60 against 40 ms natively), so portrait photos
/// keep the square input.
pub const DETECTOR_SHAPES: [[usize; 4]; 3] = [[1, 3, 640, 640], [1, 3, 480, 640], [1, 3, 384, 640]];

const FACE_112: &[[usize; 4]] = &[[1, 3, 112, 112]];

/// Every model the engine runs: detector, 68 landmarks, SFace, face-api.js recognizer, then the
/// two attribute nets (`MODELS[..4]` are needed, `MODELS[4..]` only for attributes).
pub const MODELS: [ModelInfo; 6] = [
    ModelInfo {
        name: "yunet_2023mar",
        file: "face_detection_yunet_2023mar.onnx",
        input: "input",
        shapes: &DETECTOR_SHAPES,
    },
    ModelInfo { name: "faceapi_landmark68", file: "faceapi_landmark68.onnx", input: "input", shapes: FACE_112 },
    // The registry's block-int8 file (10.7 MB): every runtime loads it folded into the f32
    // weights of `face_recognition_sface_2021dec.onnx` (38.7 MB), which nothing ships.
    ModelInfo {
        name: "sface_2021dec",
        file: "face_recognition_sface_2021dec_int8bq.onnx",
        input: "data",
        shapes: FACE_112,
    },
    ModelInfo {
        name: "faceapi_recognition",
        file: "faceapi_recognition.onnx",
        input: "input",
        shapes: &[[1, 3, 150, 150]],
    },
    ModelInfo { name: "faceapi_age_gender", file: "faceapi_age_gender.onnx", input: "input", shapes: FACE_112 },
    ModelInfo { name: "faceapi_expression", file: "faceapi_expression.onnx", input: "input", shapes: FACE_112 },
];

/// Runs one model's tensor kernels.
pub trait Runner: Send + Sync {
    /// Runs the model on one f32 tensor of `shape` (NCHW) and returns every output, flattened,
    /// in the graph's output order. The error says what failed, for `Error::Model`.
    fn run(&self, shape: &[usize], data: Vec<f32>) -> std::result::Result<Vec<Vec<f32>>, String>;
}

/// One loaded model, ready to run. Cheap to clone.
#[derive(Clone)]
pub struct Model {
    name: &'static str,
    runner: Arc<dyn Runner>,
}

impl fmt::Debug for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Model").field("name", &self.name).finish_non_exhaustive()
    }
}

impl Model {
    /// Parses ONNX `bytes` with tract and optimises it for each of `info`'s input shapes, in
    /// this process.
    pub fn load(info: &'static ModelInfo, bytes: &[u8]) -> Result<Model> {
        let plan = TractPlan::load(bytes, info.shapes).map_err(|reason| Error::Model { model: info.name, reason })?;
        Ok(Model::new(info.name, Arc::new(plan)))
    }

    /// A model whose kernels `runner` runs.
    pub fn new(name: &'static str, runner: Arc<dyn Runner>) -> Model {
        Model { name, runner }
    }

    /// Runs the model on one NCHW f32 tensor and returns every output, flattened.
    pub fn run(&self, shape: &[usize], data: Vec<f32>) -> Result<Vec<Vec<f32>>> {
        self.runner.run(shape, data).map_err(|reason| Error::Model { model: self.name, reason })
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    /// What runs this model's kernels.
    pub fn runner(&self) -> Arc<dyn Runner> {
        self.runner.clone()
    }
}

/// f32 values as the little-endian bytes a `wasi:nn` tensor carries (a copy of the memory on
/// little-endian machines: wasm, x86-64, aarch64).
pub fn f32_to_bytes(values: &[f32]) -> Vec<u8> {
    if cfg!(target_endian = "little") {
        return bytemuck::cast_slice::<f32, u8>(values).to_vec();
    }
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// The f32 values of a `wasi:nn` tensor's little-endian bytes; `None` when the length is not a
/// whole number of f32s.
pub fn f32_from_bytes(bytes: &[u8]) -> Option<Vec<f32>> {
    if !bytes.len().is_multiple_of(4) {
        return None;
    }
    let mut values = vec![0.0f32; bytes.len() / 4];
    if cfg!(target_endian = "little") {
        // One memcpy into the aligned buffer (the bytes themselves may not be aligned for f32).
        bytemuck::cast_slice_mut::<f32, u8>(&mut values).copy_from_slice(bytes);
    } else {
        for (v, b) in values.iter_mut().zip(bytes.chunks_exact(4)) {
            *v = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        }
    }
    Some(values)
}

/// One output of [`TractPlan::run_shaped`]: its shape and its values.
pub type ShapedOutput = (Vec<usize>, Vec<f32>);

/// An ONNX model parsed by tract and optimised once for each input shape it is given. Cheap to
/// clone (the plans are shared); each run has its own state, so one plan serves many threads.
#[derive(Clone)]
pub struct TractPlan {
    plans: Arc<[(Vec<usize>, Arc<TypedRunnableModel>)]>,
}

impl fmt::Debug for TractPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shapes: Vec<&Vec<usize>> = self.plans.iter().map(|(s, _)| s).collect();
        f.debug_struct("TractPlan").field("shapes", &shapes).finish_non_exhaustive()
    }
}

impl TractPlan {
    /// Parses ONNX `bytes` once and optimises a plan for each of `shapes` (f32, NCHW). A shape
    /// the file's fixed input dimensions do not allow fails here, naming the shape. Stored-slope
    /// per-channel `PRelu`s, 2x2 stride-2 `MaxPool`s and 3x3 depthwise convolutions (with their
    /// batch norm and activation) run as face-core's own operators (`crate::tract_ops`): one
    /// pass each instead of tract's general ones (natively, one thread: SFace 31 -> 23 ms, YuNet
    /// at 640x480 about 28 -> 20 ms).
    pub fn load(bytes: &[u8], shapes: &[[usize; 4]]) -> std::result::Result<TractPlan, String> {
        Self::load_graph(bytes, shapes, true)
    }

    /// [`TractPlan::load`] with every operator as the file states it (constant quantized weights
    /// still folded), run by tract's own operators: the reference face-core's are checked against.
    pub fn load_as_stored(bytes: &[u8], shapes: &[[usize; 4]]) -> std::result::Result<TractPlan, String> {
        Self::load_graph(bytes, shapes, false)
    }

    fn load_graph(bytes: &[u8], shapes: &[[usize; 4]], rewrite: bool) -> std::result::Result<TractPlan, String> {
        if bytes.is_empty() {
            return Err("no model bytes were given".into());
        }
        if shapes.is_empty() {
            return Err("no input shape was given".into());
        }
        let mut onnx = tract_onnx::onnx();
        crate::tract_ops::register(&mut onnx);
        let mut proto = onnx.proto_model_for_read(&mut Cursor::new(bytes)).map_err(|e| format!("{e:#}"))?;
        // Constant quantized weights (the registry's SFace) become the f32 weights tract takes.
        crate::dequant::fold_constant_dequantize(&mut proto);
        if rewrite {
            crate::rewrite::use_face_core_ops(&mut proto);
        }
        let model = onnx.model_for_proto_model(&proto).map_err(|e| format!("{e:#}"))?;
        let plans = shapes
            .iter()
            .map(|shape| {
                let plan = model
                    .clone()
                    .with_input_fact(0, f32::fact(shape).into())
                    .and_then(|m| m.into_optimized())
                    .and_then(|m| m.into_runnable())
                    .map_err(|e| format!("for input shape {shape:?}: {e:#}"))?;
                Ok((shape.to_vec(), plan))
            })
            .collect::<std::result::Result<Vec<_>, String>>()?;
        Ok(TractPlan { plans: plans.into() })
    }

    /// Whether a plan was optimised for `shape`.
    pub fn takes(&self, shape: &[usize]) -> bool {
        self.plans.iter().any(|(s, _)| s.as_slice() == shape)
    }

    /// Runs the plan on one f32 tensor of `shape`, asking `keep_going` before each node; when it
    /// answers false the run stops with an error. Returns every output with its shape.
    pub fn run_shaped(
        &self,
        shape: &[usize],
        data: Vec<f32>,
        keep_going: &mut dyn FnMut() -> bool,
    ) -> std::result::Result<Vec<ShapedOutput>, String> {
        let Some((_, plan)) = self.plans.iter().find(|(s, _)| s.as_slice() == shape) else {
            let shapes: Vec<&Vec<usize>> = self.plans.iter().map(|(s, _)| s).collect();
            return Err(format!("the input has shape {shape:?}, the model takes {shapes:?}"));
        };
        // The Vec becomes the tensor's buffer: no copy on the way to the kernels.
        let input: Tensor = tract_ndarray::ArrayD::from_shape_vec(shape, data).map_err(|e| format!("{e}"))?.into();
        let mut state = SimpleState::new(plan).map_err(|e| format!("{e:#}"))?;
        let outputs = state
            .run_plan_with_eval(tvec![input.into()], |ctx, op_state, node, inputs| {
                if !keep_going() {
                    bail!("stopped before node {}: the deadline passed", node.name);
                }
                tract_onnx::tract_core::plan::eval(ctx, op_state, node, inputs)
            })
            .map_err(|e| format!("{e:#}"))?;
        outputs
            .iter()
            .map(|t| {
                let values = t.to_plain_array_view::<f32>().map_err(|e| format!("{e:#}"))?;
                Ok((t.shape().to_vec(), values.iter().copied().collect()))
            })
            .collect()
    }
}

impl Runner for TractPlan {
    fn run(&self, shape: &[usize], data: Vec<f32>) -> std::result::Result<Vec<Vec<f32>>, String> {
        Ok(self.run_shaped(shape, data, &mut || true)?.into_iter().map(|(_, values)| values).collect())
    }
}
