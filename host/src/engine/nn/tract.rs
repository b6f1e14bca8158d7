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
        let outputs = self.plan.run_shaped(&shape, data, &mut keep_going);
        clear_upper_vector_state();
        let outputs = outputs.map_err(|e| backend_error(format!("{}: {e}", self.info.name)))?;
        Ok(Some(
            outputs
                .iter()
                .enumerate()
                .map(|(i, (shape, values))| output_tensor(i.to_string(), shape, values))
                .collect(),
        ))
    }
}

/// Clears the upper halves of the vector registers (`vzeroupper`) after tract's kernels, before
/// control returns to the guest.
///
/// tract's x86-64 kernels (AVX2/FMA and AVX-512) return with the registers' upper halves in use.
/// The guest's code, compiled by Cranelift, is largely legacy-SSE code, and on Intel processors
/// every SSE instruction that runs while those halves are in use pays a merge with them: measured
/// on a Xeon with AVX-512 (`cargo xtask stages`), the guest's own steps on a 12 MP photo (decode,
/// resize, crops: the same code as under the other backends) took over 1 s instead of 90 ms
/// after a tract call, the "cliff" of the `tract` backend. AMD processors do not pay it, which is
/// why it came and went with the machine. A no-op where AVX is absent.
fn clear_upper_vector_state() {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx") {
        // SAFETY: AVX is present (checked just above); `vzeroupper` zeroes only the upper halves
        // of the vector registers, which no Rust value lives in across this call.
        #[allow(unsafe_code)]
        unsafe {
            std::arch::x86_64::_mm256_zeroupper()
        }
    }
}

/// Whether the upper halves of the first 16 vector registers, those legacy-SSE code shares, are
/// in use now (XINUSE, read with `xgetbv(1)`: the upper 128 bits of ymm0-15 and the upper 256
/// bits of zmm0-15; zmm16-31, which glibc's copies use, do not slow SSE code); `None` where the
/// processor cannot tell.
#[cfg(test)]
pub(super) fn upper_vector_state_in_use() -> Option<bool> {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{__cpuid, __cpuid_count, _xgetbv};
        // Leaf 0xD sub-leaf 1 only where leaf 0 says it exists.
        let xinuse = __cpuid(0).eax >= 0xD && __cpuid_count(0xD, 1).eax & 0b100 != 0;
        if !xinuse || !std::arch::is_x86_feature_detected!("xsave") {
            return None;
        }
        // SAFETY: XSAVE and XGETBV with ECX = 1 are present (checked above).
        #[allow(unsafe_code)]
        let state = unsafe { _xgetbv(1) };
        const YMM_HI128: u64 = 1 << 2;
        const ZMM_HI256: u64 = 1 << 6;
        Some(state & (YMM_HI128 | ZMM_HI256) != 0)
    }
    #[cfg(not(target_arch = "x86_64"))]
    None
}
