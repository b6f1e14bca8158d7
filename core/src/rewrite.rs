//! The graph onnxruntime is handed ([`onnxruntime_bytes`]): the registry's constant quantized
//! weights folded (`crate::dequant`), and `PRelu` with stored slopes rewritten as
//! `slope * x + (1 - slope) * Relu(x)`.
//!
//! SFace follows each of its 27 convolutions with a per-channel `PRelu`. onnxruntime's CPU
//! provider neither fuses `PRelu` into the convolution nor runs it in its blocked (NCHWc) layout,
//! so it converts every activation back and forth around it: measured with onnxruntime 1.32 on
//! one thread, `PRelu` and those conversions took more than half of SFace's time (21 ms of CPU
//! per face). The rewritten form is the same function (x > 0: x; else: slope * x, up to a
//! rounding of the last bit) in operators onnxruntime fuses and keeps blocked: SFace takes 12 ms.
//! tract runs a `PRelu` as a pass of its own over the activation and fuses the rewritten form into
//! the convolution before it, so `TractPlan::load` rewrites too: SFace 48 -> 34 ms natively.

use std::collections::HashSet;

use prost::Message;
use tract_onnx::pb::{ModelProto, NodeProto, TensorProto};

use crate::dequant::{FLOAT, fold_constant_dequantize, values};

/// An ONNX file as onnxruntime is handed it: constant `DequantizeLinear` nodes folded and
/// stored-slope `PRelu`s rewritten, encoded again; `None` when neither applies, so the caller
/// keeps using the file itself. Parsing errors say what failed.
pub fn onnxruntime_bytes(bytes: &[u8]) -> Result<Option<Vec<u8>>, String> {
    let mut proto = ModelProto::decode(bytes).map_err(|e| format!("not an ONNX model: {e}"))?;
    let folded = fold_constant_dequantize(&mut proto);
    if folded + rewrite_prelu(&mut proto) == 0 {
        return Ok(None);
    }
    Ok(Some(proto.encode_to_vec()))
}

/// Rewrites every `PRelu` whose slope is a stored f32 tensor; returns how many it rewrote. A
/// `PRelu` with a computed slope is left as it is.
pub fn rewrite_prelu(model: &mut ModelProto) -> usize {
    let Some(graph) = model.graph.as_mut() else {
        return 0;
    };
    let mut added: Vec<TensorProto> = Vec::new();
    let mut names: HashSet<String> = graph.initializer.iter().map(|t| t.name.clone()).collect();
    let mut nodes = Vec::with_capacity(graph.node.len());
    let mut count = 0;
    for node in std::mem::take(&mut graph.node) {
        let stored = match (node.op_type.as_str(), node.input.as_slice(), node.output.as_slice()) {
            ("PRelu", [_, s], [_]) => graph.initializer.iter().find(|t| &t.name == s && t.data_type == FLOAT),
            _ => None,
        };
        let Some((slope, slopes)) = stored.and_then(|s| Some((s, values(s).ok()?))) else {
            nodes.push(node);
            continue;
        };
        let complement = format!("{}__one_minus", slope.name);
        if names.insert(complement.clone()) {
            added.push(TensorProto {
                name: complement.clone(),
                dims: slope.dims.clone(),
                data_type: FLOAT,
                raw_data: slopes.iter().flat_map(|s| (1.0 - s).to_le_bytes()).collect(),
                ..Default::default()
            });
        }
        let (x, y) = (node.input[0].clone(), node.output[0].clone());
        let step = |op: &str, inputs: &[&str], output: &str| NodeProto {
            name: format!("{}__{output}", node.name),
            op_type: op.into(),
            input: inputs.iter().map(|i| i.to_string()).collect(),
            output: vec![output.into()],
            ..Default::default()
        };
        let (relu, scaled, kept) = (format!("{y}__relu"), format!("{y}__scaled"), format!("{y}__kept"));
        nodes.push(step("Relu", &[&x], &relu));
        nodes.push(step("Mul", &[&x, &node.input[1]], &scaled));
        nodes.push(step("Mul", &[&relu, &complement], &kept));
        nodes.push(step("Add", &[&scaled, &kept], &y));
        count += 1;
    }
    graph.node = nodes;
    graph.initializer.extend(added);
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_slope_becomes_relu_mul_add_and_a_computed_one_stays() {
        let mut model = ModelProto::default();
        let graph = model.graph.get_or_insert_with(Default::default);
        let slopes: Vec<u8> = [0.25f32, -0.5].iter().flat_map(|v| v.to_le_bytes()).collect();
        graph.initializer = vec![TensorProto {
            name: "a".into(),
            dims: vec![2, 1, 1],
            data_type: FLOAT,
            raw_data: slopes,
            ..Default::default()
        }];
        let prelu = |name: &str, slope: &str, output: &str| NodeProto {
            name: name.into(),
            op_type: "PRelu".into(),
            input: vec!["x".into(), slope.into()],
            output: vec![output.into()],
            ..Default::default()
        };
        graph.node = vec![prelu("p", "a", "y"), prelu("q", "a", "z"), prelu("r", "computed", "w")];
        assert_eq!(rewrite_prelu(&mut model), 2);
        let graph = model.graph.unwrap();
        let ops: Vec<&str> = graph.node.iter().map(|n| n.op_type.as_str()).collect();
        assert_eq!(ops, ["Relu", "Mul", "Mul", "Add", "Relu", "Mul", "Mul", "Add", "PRelu"]);
        assert_eq!(graph.node[3].output, ["y"]);
        assert_eq!(graph.node[7].output, ["z"]);
        // One complement for the shared slope: 1 - a.
        let complements: Vec<&TensorProto> = graph.initializer.iter().filter(|t| t.name == "a__one_minus").collect();
        assert_eq!(complements.len(), 1);
        assert_eq!(values(complements[0]).unwrap(), [0.75, 1.5]);
        assert_eq!(complements[0].dims, [2, 1, 1]);
    }
}
