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
    /// The input shape, NCHW (fixed in every file).
    pub shape: [usize; 4],
}

/// Every model the engine runs: detector, 68 landmarks, SFace, face-api.js recognizer, then the
/// two attribute nets (`MODELS[..4]` are needed, `MODELS[4..]` only for attributes).
pub const MODELS: [ModelInfo; 6] = [
    ModelInfo {
        name: "yunet_2023mar",
        file: "face_detection_yunet_2023mar.onnx",
        input: "input",
        shape: [1, 3, 640, 640],
    },
    ModelInfo { name: "faceapi_landmark68", file: "faceapi_landmark68.onnx", input: "input", shape: [1, 3, 112, 112] },
    ModelInfo {
        name: "sface_2021dec",
        file: "face_recognition_sface_2021dec.onnx",
        input: "data",
        shape: [1, 3, 112, 112],
    },
    ModelInfo {
        name: "faceapi_recognition",
        file: "faceapi_recognition.onnx",
        input: "input",
        shape: [1, 3, 150, 150],
    },
    ModelInfo { name: "faceapi_age_gender", file: "faceapi_age_gender.onnx", input: "input", shape: [1, 3, 112, 112] },
    ModelInfo { name: "faceapi_expression", file: "faceapi_expression.onnx", input: "input", shape: [1, 3, 112, 112] },
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
    /// Parses and optimises ONNX `bytes` with tract, in this process.
    pub fn load(name: &'static str, bytes: &[u8]) -> Result<Model> {
        let plan = TractPlan::load(bytes).map_err(|reason| Error::Model { model: name, reason })?;
        Ok(Model::new(name, Arc::new(plan)))
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
    if bytes.len() % 4 != 0 {
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

/// An ONNX model parsed and optimised by tract for the input shape fixed in its file. Cheap to
/// clone (the plan is shared); each run has its own state, so one plan serves many threads.
#[derive(Clone)]
pub struct TractPlan {
    plan: Arc<TypedRunnableModel>,
    input: Vec<usize>,
}

impl fmt::Debug for TractPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TractPlan").field("input", &self.input).finish_non_exhaustive()
    }
}

impl TractPlan {
    /// Parses and optimises ONNX `bytes`. The input shape must be fixed in the file.
    pub fn load(bytes: &[u8]) -> std::result::Result<TractPlan, String> {
        if bytes.is_empty() {
            return Err("no model bytes were given".into());
        }
        let model = tract_onnx::onnx()
            .model_for_read(&mut Cursor::new(bytes))
            .and_then(|m| m.into_optimized())
            .map_err(|e| format!("{e:#}"))?;
        let input = model
            .input_fact(0)
            .ok()
            .and_then(|f| f.shape.as_concrete().map(<[usize]>::to_vec))
            .ok_or("the model's input shape is not fixed in the file")?;
        let plan = model.into_runnable().map_err(|e| format!("{e:#}"))?;
        Ok(TractPlan { plan, input })
    }

    /// The input shape the plan was optimised for.
    pub fn input_shape(&self) -> &[usize] {
        &self.input
    }

    /// Runs the plan on one f32 tensor of `shape`, asking `keep_going` before each node; when it
    /// answers false the run stops with an error. Returns every output with its shape.
    pub fn run_shaped(
        &self,
        shape: &[usize],
        data: Vec<f32>,
        keep_going: &mut dyn FnMut() -> bool,
    ) -> std::result::Result<Vec<ShapedOutput>, String> {
        if shape != self.input.as_slice() {
            return Err(format!("the input has shape {shape:?}, the model takes {:?}", self.input));
        }
        // The Vec becomes the tensor's buffer: no copy on the way to the kernels.
        let input: Tensor = tract_ndarray::ArrayD::from_shape_vec(shape, data).map_err(|e| format!("{e}"))?.into();
        let mut state = SimpleState::new(&self.plan).map_err(|e| format!("{e:#}"))?;
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
