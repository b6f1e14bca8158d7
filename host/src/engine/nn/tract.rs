//! The tract backend: each model's plans optimised once per input shape, run in process.

use std::path::Path;

use anyhow::Result;
use face_core::ModelInfo;
use wasmtime_wasi_nn::backend::{BackendError, BackendExecutionContext, BackendGraph, Id, NamedTensor};
use wasmtime_wasi_nn::{ExecutionContext, Tensor};

use super::*;

/// A model as a tract plan, shared by every instance.
pub(super) struct TractGraph {
    info: &'static ModelInfo,
    plan: TractPlan,
}

impl TractGraph {
    pub(super) fn load(info: &'static ModelInfo, path: &Path) -> Result<TractGraph> {
        let bytes = std::fs::read(path)
            .with_context(|| format!("reading model {}: run `cargo xtask models`", path.display()))?;
        let plan =
            TractPlan::load(&bytes, info.shapes).map_err(|e| anyhow!("loading model {}: {e}", path.display()))?;
        Ok(TractGraph { info, plan })
    }
}

impl BackendGraph for TractGraph {
    fn init_execution_context(&self) -> Result<ExecutionContext, BackendError> {
        Ok(ExecutionContext::from(
            Box::new(TractContext { info: self.info, plan: self.plan.clone() }) as Box<dyn BackendExecutionContext>
        ))
    }
}

struct TractContext {
    info: &'static ModelInfo,
    plan: TractPlan,
}

impl BackendExecutionContext for TractContext {
    fn set_input(&mut self, _id: Id, _tensor: &Tensor) -> Result<(), BackendError> {
        Err(unsupported("set-input"))
    }

    fn get_output(&mut self, _id: Id) -> Result<Tensor, BackendError> {
        Err(unsupported("get-output"))
    }

    fn compute(&mut self, inputs: Option<Vec<NamedTensor>>) -> Result<Option<Vec<NamedTensor>>, BackendError> {
        let (shape, bytes) = checked_input(self.info, inputs.ok_or_else(|| unsupported("compute without inputs"))?)?;
        // tract takes its input as an owned f32 buffer: the one copy after the lift out of the guest.
        let data = face_core::f32_from_bytes(&bytes).ok_or_else(|| backend_error("the input is not f32s".into()))?;
        drop(bytes);
        let outputs = self
            .plan
            .run_shaped(&shape, data, &mut keep_going)
            .map_err(|e| backend_error(format!("{}: {e}", self.info.name)))?;
        Ok(Some(
            outputs
                .iter()
                .enumerate()
                .map(|(i, (shape, values))| output_tensor(i.to_string(), shape, values))
                .collect(),
        ))
    }
}
