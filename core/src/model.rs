//! Loading ONNX bytes into runnable tract plans. Public so that benchmarks time exactly the
//! calls the engine makes.

use std::io::Cursor;
use std::sync::Arc;

use tract_onnx::prelude::*;

use crate::error::{Error, Result, model_err};

/// One loaded model, ready to run.
#[derive(Debug, Clone)]
pub struct Model {
    name: &'static str,
    plan: Arc<TypedRunnableModel>,
}

impl Model {
    /// Parses and optimises ONNX `bytes`. The input shape must be fixed in the file.
    pub fn load(name: &'static str, bytes: &[u8]) -> Result<Model> {
        if bytes.is_empty() {
            return Err(Error::Model { model: name, reason: "no model bytes were given".into() });
        }
        let plan = tract_onnx::onnx()
            .model_for_read(&mut Cursor::new(bytes))
            .and_then(|m| m.into_optimized())
            .and_then(|m| m.into_runnable())
            .map_err(model_err(name))?;
        Ok(Model { name, plan })
    }

    /// Runs the model on one NCHW f32 tensor and returns every output, flattened.
    pub fn run(&self, shape: &[usize], data: Vec<f32>) -> Result<Vec<Vec<f32>>> {
        let input = Tensor::from_shape(shape, &data).map_err(model_err(self.name))?;
        let outputs = self.plan.run(tvec![input.into()]).map_err(model_err(self.name))?;
        outputs
            .iter()
            .map(|t| t.to_plain_array_view::<f32>().map(|v| v.iter().copied().collect()).map_err(model_err(self.name)))
            .collect()
    }

    pub fn name(&self) -> &'static str {
        self.name
    }
}
