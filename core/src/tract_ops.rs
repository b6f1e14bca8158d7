//! Three operators face-core hands tract in place of its own, where the models spent their time
//! on passes over memory rather than arithmetic: a `PRelu` whose slope is stored, one value per
//! channel (SFace's 27); a 2x2 stride-2 `MaxPool` (YuNet's 4); and a 3x3 depthwise `Conv` with
//! the `BatchNormalization` and `Relu` or `PRelu` after it folded in (SFace's 13, YuNet's 20 and
//! its heads' 6 single-channel ones, and those of face-api.js's landmark, expression and
//! age/gender nets padded on every side: 12, 12 and 13). `use_face_core_ops` (rewrite.rs)
//! rewrites those nodes to [`PRELU`], [`MAXPOOL_2X2`] and [`DEPTHWISE_3X3`]; [`register`]
//! teaches tract's ONNX reader to build them.
//!
//! Why: tract runs a `PRelu` as two elementwise chains over the activation (its own form a
//! comparison, a product and a selection), each allocating its output; it pools through a
//! general patch scanner; and after a depthwise convolution it makes a pass for the batch norm
//! and one for the activation. Measured natively on one thread (2-core Xeon, AVX-512): SFace's
//! 27 rewritten `PRelu`s took 7.2 of its 31 ms, YuNet's four poolings 4.9 of its 28 ms at
//! 640x480, its depthwise convolutions and their `Relu`s 9 ms. These do each in one pass: the
//! `PRelu` in place on the activation it is handed (tract frees an activation after its last
//! reader, so it is the only one), the pooling reading two rows at a time, the convolution
//! applying its activation to each output row while it is still in cache. All compare and
//! select instead of calling `f32::max`, which is a library call on wasm32. The values are the
//! ONNX operators' own for values that are not NaN: x > 0 ? x : slope * x, the largest of each
//! 2x2 window (floor-rounded sides), and the convolution's sums up to float rounding (added in
//! another order, batch norm folded into the weights). After them SFace takes 23 ms and YuNet
//! about 20.

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;

/// The operator type the rewrite gives a stored-slope, per-channel `PRelu`.
pub(crate) const PRELU: &str = "FaceCorePRelu";
/// The operator type the rewrite gives a plain 2x2 stride-2 `MaxPool`.
pub(crate) const MAXPOOL_2X2: &str = "FaceCoreMaxPool2x2";
/// The operator type the rewrite gives a 3x3 depthwise `Conv` (padding 1, stride 1 or 2) with
/// the `BatchNormalization` and the `Relu` or per-channel `PRelu` that follow it folded in.
pub(crate) const DEPTHWISE_3X3: &str = "FaceCoreDepthwise3x3";
/// The operator domain of all three.
pub(crate) const DOMAIN: &str = "face-core";

/// Teaches `onnx` to read [`PRELU`], [`MAXPOOL_2X2`] and [`DEPTHWISE_3X3`] nodes.
pub(crate) fn register(onnx: &mut tract_onnx::Onnx) {
    onnx.op_register.insert(PRELU, prelu);
    onnx.op_register.insert(MAXPOOL_2X2, maxpool_2x2);
    onnx.op_register.insert(DEPTHWISE_3X3, depthwise_3x3);
}

fn prelu(_: &ParsingContext, _: &NodeProto) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    Ok((expand(PReluExpansion), vec![]))
}

fn maxpool_2x2(_: &ParsingContext, _: &NodeProto) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    Ok((expand(MaxPoolExpansion), vec![]))
}

fn depthwise_3x3(_: &ParsingContext, node: &NodeProto) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let stride: i64 = node.get_attr_opt("stride")?.unwrap_or(1);
    ensure!(stride == 1 || stride == 2, "{}: stride {stride}, not 1 or 2", node.name);
    let activation = match node.get_attr_opt::<&str>("activation")?.unwrap_or("none") {
        "none" => DepthwiseActivation::None,
        "relu" => DepthwiseActivation::Relu,
        "prelu" => DepthwiseActivation::PRelu,
        other => bail!("{}: unknown activation {other:?}", node.name),
    };
    Ok((expand(DepthwiseExpansion { stride: stride as usize, activation }), vec![]))
}

/// What follows the depthwise sums, as the rewrite found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum DepthwiseActivation {
    None,
    Relu,
    /// A per-channel `PRelu`, its slopes the node's fourth input.
    PRelu,
}

/// What the three operators' rules share: `arity` inputs, one output, f32 in and out. (The
/// output's rank follows from its shape, which each operator's rules give.)
fn f32_rules<'r, 'p: 'r>(
    s: &mut Solver<'r>,
    inputs: &'p [TensorProxy],
    outputs: &'p [TensorProxy],
    arity: usize,
) -> InferenceResult {
    check_input_arity(inputs, arity)?;
    check_output_arity(outputs, 1)?;
    s.equals(&inputs[0].datum_type, f32::datum_type())?;
    s.equals(&outputs[0].datum_type, &inputs[0].datum_type)
}

/// Whether a slope of `shape`, broadcast against NCHW as ONNX does (from the right), gives one
/// value per channel of `channels` (`[C, 1, 1]`, `[1, C, 1, 1]`) or one for all. A `[C]` slope
/// would vary along the width instead.
pub(crate) fn channel_slope(shape: &[usize], channels: usize) -> bool {
    let values: usize = shape.iter().product();
    values == 1 || (values == channels && shape.len() >= 3 && shape[shape.len() - 3] == channels)
}

/// f32 values compared by their bits, so the operators holding them are `Eq` as tract asks.
#[derive(Debug, Clone)]
struct Values(Vec<f32>);

impl PartialEq for Values {
    fn eq(&self, other: &Self) -> bool {
        self.0.iter().map(|v| v.to_bits()).eq(other.0.iter().map(|v| v.to_bits()))
    }
}

impl Eq for Values {}

impl std::ops::Deref for Values {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        &self.0
    }
}

/// The values of a constant input of a node being wired, as f32.
fn constant(model: &TypedModel, outlet: OutletId, prefix: &str, what: &str) -> TractResult<Vec<f32>> {
    let Some(konst) = model.outlet_fact(outlet)?.konst.clone() else {
        bail!("{prefix}: the {what} is not a constant");
    };
    Ok(konst.cast_to::<f32>()?.try_as_plain_ram()?.as_slice::<f32>()?.to_vec())
}

/// `PRelu(x, slope)` as the ONNX reader sees it: wired as [`ChannelPRelu`] once the slope is
/// known to be a constant.
#[derive(Debug, Clone, Hash)]
struct PReluExpansion;

impl Expansion for PReluExpansion {
    fn name(&self) -> StaticName {
        PRELU.into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        f32_rules(s, inputs, outputs, 2)?;
        s.equals(&inputs[0].shape, &outputs[0].shape)
    }

    fn wire(&self, prefix: &str, model: &mut TypedModel, inputs: &[OutletId]) -> TractResult<TVec<OutletId>> {
        let rank = model.outlet_fact(inputs[0])?.rank();
        let Some(konst) = model.outlet_fact(inputs[1])?.konst.clone() else {
            bail!("{prefix}: the PRelu's slope is not a constant");
        };
        let over_one: Vec<usize> = (0..konst.rank()).filter(|&a| konst.shape()[a] != 1).collect();
        let axis = match over_one.as_slice() {
            [] => None,
            // Broadcast from the right: the slope's axis `a` is the input's `rank - slope rank + a`.
            [a] if konst.rank() <= rank => Some(rank - konst.rank() + a),
            _ => bail!("{prefix}: the PRelu's slope has shape {:?}, not one value per channel", konst.shape()),
        };
        let slopes = Values(constant(model, inputs[1], prefix, "PRelu's slope")?);
        model.wire_node(prefix, ChannelPRelu { axis, slopes }, &inputs[..1])
    }
}

/// x > 0 ? x : slope * x, with one slope for each index of `axis` (or one for all).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ChannelPRelu {
    axis: Option<usize>,
    slopes: Values,
}

impl ChannelPRelu {
    /// Applies the function to `values` of `shape`, in place.
    fn apply(&self, shape: &[usize], values: &mut [f32]) -> TractResult<()> {
        let (channels, inner) = match self.axis {
            Some(axis) => (shape[axis], shape[axis + 1..].iter().product::<usize>()),
            None => (1, values.len()),
        };
        ensure!(
            self.slopes.len() == channels || self.slopes.len() == 1,
            "{} slopes for {channels} channels",
            self.slopes.len()
        );
        if inner == 0 {
            return Ok(());
        }
        let per_channel = self.slopes.len() > 1;
        for (k, run) in values.chunks_mut(inner).enumerate() {
            let s = self.slopes[if per_channel { k % channels } else { 0 }];
            for v in run {
                *v = if *v > 0.0 { *v } else { *v * s };
            }
        }
        Ok(())
    }
}

impl Op for ChannelPRelu {
    fn name(&self) -> StaticName {
        PRELU.into()
    }

    op_as_typed_op!();
}

impl EvalOp for ChannelPRelu {
    op_out_of_plan!();

    fn eval(&self, _: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        // The activation itself when no other node reads it, else a copy.
        let mut t = input.into_tensor();
        let shape: TVec<usize> = t.shape().into();
        self.apply(&shape, t.try_as_plain_ram_mut()?.as_slice_mut::<f32>()?)?;
        Ok(tvec!(t.into_tvalue()))
    }
}

impl TypedOp for ChannelPRelu {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs[0].datum_type == f32::datum_type(), "FaceCorePRelu takes f32");
        if let Some(axis) = self.axis {
            ensure!(axis < inputs[0].rank(), "the slope's axis {axis} is past the input's rank");
        }
        Ok(tvec!(inputs[0].without_value()))
    }

    as_op!();
}

/// `MaxPool` with a 2x2 window and stride 2, no padding, on NCHW f32.
#[derive(Debug, Clone, Hash)]
struct MaxPoolExpansion;

impl Expansion for MaxPoolExpansion {
    fn name(&self) -> StaticName {
        MAXPOOL_2X2.into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        f32_rules(s, inputs, outputs, 1)?;
        s.equals(&inputs[0].rank, 4)?;
        s.given(&inputs[0].shape, move |s, shape| {
            let pooled: TVec<TDim> = pooled_shape(&shape);
            s.equals(&outputs[0].shape, ShapeFactoid::from(pooled))
        })
    }

    fn wire(&self, prefix: &str, model: &mut TypedModel, inputs: &[OutletId]) -> TractResult<TVec<OutletId>> {
        model.wire_node(prefix, MaxPool2x2, inputs)
    }
}

/// NCHW with H and W halved, rounded down.
fn pooled_shape(shape: &[TDim]) -> TVec<TDim> {
    let mut pooled: TVec<TDim> = shape.into();
    for d in &mut pooled[2..] {
        *d = d.clone() / 2;
    }
    pooled
}

/// The largest value of each 2x2 window, stride 2, of an NCHW f32 tensor.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct MaxPool2x2;

impl MaxPool2x2 {
    /// Pools the `planes` of `height` x `width` values in `input` into `output`.
    fn apply(input: &[f32], output: &mut [f32], height: usize, width: usize) {
        let (h, w) = (height / 2, width / 2);
        if h == 0 || w == 0 {
            return;
        }
        let larger = |a: f32, b: f32| if a > b { a } else { b };
        for (plane, out) in input.chunks_exact(height * width).zip(output.chunks_exact_mut(h * w)) {
            for (y, out_row) in out.chunks_exact_mut(w).enumerate() {
                let top = &plane[2 * y * width..][..2 * w];
                let bottom = &plane[(2 * y + 1) * width..][..2 * w];
                for ((o, t), b) in out_row.iter_mut().zip(top.chunks_exact(2)).zip(bottom.chunks_exact(2)) {
                    *o = larger(larger(t[0], t[1]), larger(b[0], b[1]));
                }
            }
        }
    }
}

impl Op for MaxPool2x2 {
    fn name(&self) -> StaticName {
        MAXPOOL_2X2.into()
    }

    op_as_typed_op!();
}

impl EvalOp for MaxPool2x2 {
    op_out_of_plan!();

    fn eval(&self, _: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let &[n, c, height, width] = input.shape() else {
            bail!("FaceCoreMaxPool2x2 takes NCHW, not shape {:?}", input.shape());
        };
        let mut output = Tensor::zero::<f32>(&[n, c, height / 2, width / 2])?;
        Self::apply(
            input.try_as_plain_ram()?.as_slice::<f32>()?,
            output.try_as_plain_ram_mut()?.as_slice_mut::<f32>()?,
            height,
            width,
        );
        Ok(tvec!(output.into_tvalue()))
    }
}

impl TypedOp for MaxPool2x2 {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let input = inputs[0];
        ensure!(input.datum_type == f32::datum_type(), "FaceCoreMaxPool2x2 takes f32");
        ensure!(input.rank() == 4, "FaceCoreMaxPool2x2 takes NCHW");
        let shape: TVec<TDim> = input.shape.iter().cloned().collect();
        Ok(tvec!(f32::fact(pooled_shape(&shape))))
    }

    as_op!();
}

/// `FaceCoreDepthwise3x3(x, weights, bias[, slopes])` as the ONNX reader sees it: wired as
/// [`Depthwise3x3`] once its weights are known.
#[derive(Debug, Clone, Hash)]
struct DepthwiseExpansion {
    stride: usize,
    activation: DepthwiseActivation,
}

impl Expansion for DepthwiseExpansion {
    fn name(&self) -> StaticName {
        DEPTHWISE_3X3.into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        f32_rules(s, inputs, outputs, if self.activation == DepthwiseActivation::PRelu { 4 } else { 3 })?;
        s.equals(&inputs[0].rank, 4)?;
        let stride = self.stride;
        s.given(&inputs[0].shape, move |s, shape| {
            s.equals(&outputs[0].shape, ShapeFactoid::from(strided_shape(&shape, stride)))
        })
    }

    fn wire(&self, prefix: &str, model: &mut TypedModel, inputs: &[OutletId]) -> TractResult<TVec<OutletId>> {
        let weights = constant(model, inputs[1], prefix, "weights")?;
        let bias = constant(model, inputs[2], prefix, "bias")?;
        let channels = bias.len();
        ensure!(weights.len() == 9 * channels, "{prefix}: {} weights for {channels} channels", weights.len());
        let slopes = match self.activation {
            DepthwiseActivation::PRelu => {
                let shape =
                    model.outlet_fact(inputs[3])?.konst.as_ref().map(|k| k.shape().to_vec()).unwrap_or_default();
                ensure!(
                    channel_slope(&shape, channels),
                    "{prefix}: a slope of shape {shape:?} is not one per channel of {channels}"
                );
                constant(model, inputs[3], prefix, "PRelu's slope")?
            }
            _ => Vec::new(),
        };
        let (weights, bias, slopes) = (Values(weights), Values(bias), Values(slopes));
        let op = Depthwise3x3 { stride: self.stride, activation: self.activation, weights, bias, slopes };
        model.wire_node(prefix, op, &inputs[..1])
    }
}

/// NCHW with H and W as a 3x3 window, padding 1, at `stride` gives them.
fn strided_shape(shape: &[TDim], stride: usize) -> TVec<TDim> {
    let mut out: TVec<TDim> = shape.into();
    if stride == 2 {
        for d in &mut out[2..] {
            *d = (d.clone() - 1) / 2 + 1;
        }
    }
    out
}

/// A 3x3 depthwise convolution, zero padding 1, stride 1 or 2, on NCHW f32; each output is the
/// bias and the nine products summed as a fixed tree, then the activation.
///
/// Each channel's plane is copied once, padded (and for stride 2 split into even and odd
/// columns), so every output row is one loop over whole rows that the compiler vectorises:
/// simd128 in wasm, AVX2 natively where the processor has it (no fused multiply-add, so every
/// machine gets the same values).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Depthwise3x3 {
    stride: usize,
    activation: DepthwiseActivation,
    /// Channel-major, 9 per channel.
    weights: Values,
    bias: Values,
    /// One per channel, or one for all: for [`DepthwiseActivation::PRelu`] only.
    slopes: Values,
}

impl Depthwise3x3 {
    /// An output side for an input side of `n`.
    fn side(&self, n: usize) -> usize {
        if self.stride == 2 { n.div_ceil(2) } else { n }
    }

    /// Convolves `input`, planes of `height` x `width`, into `output`.
    fn apply(&self, input: &[f32], output: &mut [f32], height: usize, width: usize) {
        let (oh, ow) = (self.side(height), self.side(width));
        if oh == 0 || ow == 0 {
            return;
        }
        let channels = self.bias.len();
        // The padded plane: rows of `pw` values, (for stride 2: even columns, then odd ones).
        let pw = if self.stride == 2 { 2 * (ow + 1) } else { width + 2 };
        let mut padded = vec![0.0f32; (height + 2) * pw];
        for (k, (plane, out)) in input.chunks_exact(height * width).zip(output.chunks_exact_mut(oh * ow)).enumerate() {
            let c = k % channels;
            self.pad(plane, &mut padded, width, pw);
            let kernel: &[f32; 9] = self.weights[9 * c..][..9].try_into().expect("nine weights");
            let slope = match self.slopes.len() {
                0 => 0.0,
                1 => self.slopes[0],
                _ => self.slopes[c],
            };
            let rows = Rows { padded: &padded, pw, stride: self.stride, kernel, bias: self.bias[c] };
            rows.convolve(out, ow, self.activation, slope);
        }
    }

    /// Copies `plane` into `padded` with a zero border (the border is never written).
    fn pad(&self, plane: &[f32], padded: &mut [f32], width: usize, pw: usize) {
        for (row, dst) in plane.chunks_exact(width).zip(padded[pw..].chunks_exact_mut(pw)) {
            if self.stride == 2 {
                // Padded column j is input column j - 1: even padded columns to the first half.
                // Input column 2i is padded column 2i + 1 (odd), column 2i + 1 is 2i + 2 (even).
                let (even, odd) = dst.split_at_mut(pw / 2);
                for ((pair, o), e) in row.chunks(2).zip(odd.iter_mut()).zip(even[1..].iter_mut()) {
                    *o = pair[0];
                    if let Some(&v) = pair.get(1) {
                        *e = v;
                    }
                }
            } else {
                dst[1..=width].copy_from_slice(row);
            }
        }
    }
}

/// One channel's padded plane and kernel.
struct Rows<'a> {
    padded: &'a [f32],
    pw: usize,
    stride: usize,
    kernel: &'a [f32; 9],
    bias: f32,
}

impl Rows<'_> {
    fn convolve(&self, out: &mut [f32], ow: usize, activation: DepthwiseActivation, slope: f32) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the processor has AVX2, checked just above.
            #[allow(unsafe_code)]
            unsafe {
                self.convolve_avx2(out, ow, activation, slope)
            };
            return;
        }
        self.convolve_portable(out, ow, activation, slope);
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn convolve_avx2(&self, out: &mut [f32], ow: usize, activation: DepthwiseActivation, slope: f32) {
        self.convolve_portable(out, ow, activation, slope);
    }

    #[inline(always)]
    fn convolve_portable(&self, out: &mut [f32], ow: usize, activation: DepthwiseActivation, slope: f32) {
        let k = self.kernel;
        for (y, out_row) in out.chunks_exact_mut(ow).enumerate() {
            let top = self.stride * y;
            let row = |r: usize| &self.padded[(top + r) * self.pw..][..self.pw];
            // For each kernel row, the three taps' values for output x at the same index.
            let taps = |r: usize| -> [&[f32]; 3] {
                let p = row(r);
                if self.stride == 2 {
                    let (even, odd) = p.split_at(self.pw / 2);
                    [&even[..ow], &odd[..ow], &even[1..=ow]]
                } else {
                    [&p[..ow], &p[1..=ow], &p[2..ow + 2]]
                }
            };
            let ([a0, a1, a2], [b0, b1, b2], [c0, c1, c2]) = (taps(0), taps(1), taps(2));
            // Every tap row exactly as long as the output row, so the loop has no bounds checks.
            let n = out_row.len();
            let [a0, a1, a2, b0, b1, b2, c0, c1, c2] = [a0, a1, a2, b0, b1, b2, c0, c1, c2].map(|t| &t[..n]);
            for (x, o) in out_row.iter_mut().enumerate() {
                // A tree of sums, not a chain: four levels of additions instead of nine.
                let top = (k[0] * a0[x] + k[1] * a1[x]) + (k[2] * a2[x] + self.bias);
                let middle = (k[3] * b0[x] + k[4] * b1[x]) + k[5] * b2[x];
                let bottom = (k[6] * c0[x] + k[7] * c1[x]) + k[8] * c2[x];
                *o = top + (middle + bottom);
            }
            match activation {
                DepthwiseActivation::None => {}
                DepthwiseActivation::Relu => out_row.iter_mut().for_each(|v| *v = if *v > 0.0 { *v } else { 0.0 }),
                DepthwiseActivation::PRelu => {
                    out_row.iter_mut().for_each(|v| *v = if *v > 0.0 { *v } else { *v * slope })
                }
            }
        }
    }
}

impl Op for Depthwise3x3 {
    fn name(&self) -> StaticName {
        DEPTHWISE_3X3.into()
    }

    op_as_typed_op!();
}

impl EvalOp for Depthwise3x3 {
    op_out_of_plan!();

    fn eval(&self, _: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let &[n, c, height, width] = input.shape() else {
            bail!("FaceCoreDepthwise3x3 takes NCHW, not shape {:?}", input.shape());
        };
        ensure!(c == self.bias.len(), "FaceCoreDepthwise3x3: {c} channels, weights for {}", self.bias.len());
        let mut output = Tensor::zero::<f32>(&[n, c, self.side(height), self.side(width)])?;
        self.apply(
            input.try_as_plain_ram()?.as_slice::<f32>()?,
            output.try_as_plain_ram_mut()?.as_slice_mut::<f32>()?,
            height,
            width,
        );
        Ok(tvec!(output.into_tvalue()))
    }
}

impl TypedOp for Depthwise3x3 {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let input = inputs[0];
        ensure!(input.datum_type == f32::datum_type(), "FaceCoreDepthwise3x3 takes f32");
        ensure!(input.rank() == 4, "FaceCoreDepthwise3x3 takes NCHW");
        let shape: TVec<TDim> = input.shape.iter().cloned().collect();
        Ok(tvec!(f32::fact(strided_shape(&shape, self.stride))))
    }

    as_op!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prelu_scales_only_what_is_not_positive_by_its_channels_slope() {
        // NCHW, 2 x 3 channels of 2 values; slopes below 0, between 0 and 1, and above 1.
        let op = ChannelPRelu { axis: Some(1), slopes: Values(vec![-0.5, 0.25, 1.5]) };
        let mut values = vec![2.0, -2.0, 4.0, -4.0, 0.0, -1.0, -2.0, 3.0, -4.0, 1.0, -8.0, f32::INFINITY];
        op.apply(&[2, 3, 1, 2], &mut values).unwrap();
        assert_eq!(values, [2.0, 1.0, 4.0, -1.0, 0.0, -1.5, 1.0, 3.0, -1.0, 1.0, -12.0, f32::INFINITY]);
        let one = ChannelPRelu { axis: None, slopes: Values(vec![0.1]) };
        let mut values = vec![-10.0, 10.0];
        one.apply(&[2], &mut values).unwrap();
        assert_eq!(values, [-1.0, 10.0]);
        let wrong = ChannelPRelu { axis: Some(1), slopes: Values(vec![0.1, 0.2]) };
        assert!(wrong.apply(&[1, 3, 1, 1], &mut [0.0; 3]).is_err(), "2 slopes for 3 channels");
        assert!(op.apply(&[1, 3, 0, 2], &mut []).is_ok(), "no values");
    }

    #[test]
    fn the_pooling_takes_the_largest_of_each_window_and_drops_an_odd_last_row_and_column() {
        for (height, width) in [(4, 6), (5, 7), (2, 2), (3, 1)] {
            let planes = 3;
            let input: Vec<f32> = (0..planes * height * width).map(|i| ((i * 7919 + 13) % 97) as f32 - 48.0).collect();
            let (h, w) = (height / 2, width / 2);
            let mut got = vec![0.0; planes * h * w];
            MaxPool2x2::apply(&input, &mut got, height, width);
            let at = |p: usize, y: usize, x: usize| input[(p * height + y) * width + x];
            for p in 0..planes {
                for y in 0..h {
                    for x in 0..w {
                        let want = [
                            at(p, 2 * y, 2 * x),
                            at(p, 2 * y, 2 * x + 1),
                            at(p, 2 * y + 1, 2 * x),
                            at(p, 2 * y + 1, 2 * x + 1),
                        ]
                        .into_iter()
                        .fold(f32::NEG_INFINITY, f32::max);
                        assert_eq!(got[(p * h + y) * w + x], want, "{height}x{width}: plane {p}, ({y}, {x})");
                    }
                }
            }
        }
    }

    #[test]
    fn the_depthwise_convolution_is_the_padded_3x3_sum_then_the_activation() {
        let channels = 3;
        let weights: Vec<f32> = (0..9 * channels).map(|i| ((i * 37) % 11) as f32 * 0.25 - 1.0).collect();
        let bias = vec![0.5, -1.0, 2.0];
        for (height, width) in [(5, 7), (6, 4), (1, 1), (2, 9)] {
            let input: Vec<f32> =
                (0..2 * channels * height * width).map(|i| ((i * 7919 + 3) % 23) as f32 - 11.0).collect();
            for stride in [1, 2] {
                for activation in [DepthwiseActivation::None, DepthwiseActivation::Relu, DepthwiseActivation::PRelu] {
                    let slopes = vec![-0.5, 0.25, 1.5];
                    let op = Depthwise3x3 {
                        stride,
                        activation,
                        weights: Values(weights.clone()),
                        bias: Values(bias.clone()),
                        slopes: Values(slopes),
                    };
                    let (oh, ow) = ((height - 1) / stride + 1, (width - 1) / stride + 1);
                    let mut got = vec![f32::NAN; 2 * channels * oh * ow];
                    op.apply(&input, &mut got, height, width);
                    for plane in 0..2 * channels {
                        let c = plane % channels;
                        let at = |y: isize, x: isize| {
                            let inside = (0..height as isize).contains(&y) && (0..width as isize).contains(&x);
                            if inside { input[(plane * height + y as usize) * width + x as usize] } else { 0.0 }
                        };
                        for y in 0..oh {
                            for x in 0..ow {
                                let mut sum = f64::from(bias[c]);
                                for dy in 0..3 {
                                    for dx in 0..3 {
                                        let v = at((stride * y + dy) as isize - 1, (stride * x + dx) as isize - 1);
                                        sum += f64::from(weights[9 * c + 3 * dy + dx]) * f64::from(v);
                                    }
                                }
                                let want = match activation {
                                    DepthwiseActivation::None => sum,
                                    DepthwiseActivation::Relu => sum.max(0.0),
                                    DepthwiseActivation::PRelu if sum > 0.0 => sum,
                                    DepthwiseActivation::PRelu => sum * f64::from(op.slopes[c]),
                                };
                                let g = got[(plane * oh + y) * ow + x];
                                assert!(
                                    (f64::from(g) - want).abs() < 1e-4,
                                    "{height}x{width}, stride {stride}, {activation:?}: plane {plane} ({y}, {x}): {g} != {want}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}
