//! `PRelu` with stored slopes rewritten as `slope * x + (1 - slope) * Relu(x)` ([`rewrite_prelu`],
//! for tract and onnxruntime alike), 2x2 stride-2 `MaxPool`s as comparisons of strided views
//! ([`rewrite_maxpool`], for tract on wasm32), and the graph onnxruntime is handed
//! ([`onnxruntime_bytes`]): the registry's constant quantized weights folded (`crate::dequant`),
//! then rewritten.
//!
//! SFace follows each of its 27 convolutions with a per-channel `PRelu`. onnxruntime's CPU
//! provider neither fuses `PRelu` into the convolution nor runs it in its blocked (NCHWc) layout,
//! so it converts every activation back and forth around it: measured with onnxruntime 1.32 on
//! one thread, `PRelu` and those conversions took more than half of SFace's time (21 ms of CPU
//! per face). The rewritten form is the same function (x > 0: x; else: slope * x, within a few
//! units in the last place for finite x) in operators onnxruntime fuses and keeps blocked: SFace
//! takes 12 ms. tract, too, runs the rewritten form faster (SFace 48 -> 34 ms natively, one
//! thread), so `TractPlan::load` rewrites as well.

use std::collections::{HashMap, HashSet};

use prost::Message;
use tract_onnx::pb::{GraphProto, ModelProto, NodeProto, TensorProto};

use crate::dequant::{FLOAT, fold_constant_dequantize, values};

/// ONNX's element type code for int64.
const INT64: i32 = 7;

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

/// Rewrites every `PRelu` of the standard domain whose slope is a stored f32 tensor; returns how
/// many it rewrote. A `PRelu` with a computed slope is left as it is, and so is a graph whose
/// default operator set is older than 7 (before `Mul` and `Add` broadcast on their own). Every
/// name it adds is one the graph does not use yet.
pub fn rewrite_prelu(model: &mut ModelProto) -> usize {
    let Some((graph, mut names)) = graph_from_opset(model, 7) else {
        return 0;
    };
    let mut fresh = |base: String| names.fresh(base);
    let mut added: Vec<TensorProto> = Vec::new();
    // The complement made for each slope, shared by the PRelus that share the slope.
    let mut complements: HashMap<String, String> = HashMap::new();
    let mut nodes = Vec::with_capacity(graph.node.len());
    let mut count = 0;
    for node in std::mem::take(&mut graph.node) {
        let standard = standard_domain(&node.domain);
        let stored = match (node.op_type.as_str(), node.input.as_slice(), node.output.as_slice()) {
            ("PRelu", [_, s], [_]) if standard => {
                graph.initializer.iter().find(|t| &t.name == s && t.data_type == FLOAT)
            }
            _ => None,
        };
        let Some((slope, slopes)) = stored.and_then(|s| Some((s, all_values(s)?))) else {
            nodes.push(node);
            continue;
        };
        let complement = match complements.get(&slope.name) {
            Some(name) => name.clone(),
            None => {
                let name = fresh(format!("{}__one_minus", slope.name));
                added.push(TensorProto {
                    name: name.clone(),
                    dims: slope.dims.clone(),
                    data_type: FLOAT,
                    raw_data: slopes.iter().flat_map(|s| (1.0 - s).to_le_bytes()).collect(),
                    ..Default::default()
                });
                complements.insert(slope.name.clone(), name.clone());
                name
            }
        };
        let (x, y) = (node.input[0].clone(), node.output[0].clone());
        let step = |op: &str, inputs: &[&str], output: &str| step_of(&node, op, inputs, output);
        let (relu, scaled, kept) =
            (fresh(format!("{y}__relu")), fresh(format!("{y}__scaled")), fresh(format!("{y}__kept")));
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

/// Rewrites every standard-domain `MaxPool` with a 2x2 window, stride 2, no padding, no dilation
/// and one output as the larger of its four strided views: `Slice`s with step 2 compared by
/// `Where(Greater(a, b), a, b)`, the same values (for values that are not NaN). Returns how many
/// it rewrote. For WebAssembly only: tract's 2x2 pooling calls `fmaxf` (the library function
/// `f32::max` becomes on wasm32) for every input value, about a sixth of YuNet's time in the
/// server's guest, while comparisons and selections compile to plain instructions (the guest's
/// `detector` stage at 640x480: 67 -> 58 ms). A graph whose operator set is
/// older than 10 (before `Slice` took steps) is left as it is.
pub fn rewrite_maxpool(model: &mut ModelProto) -> usize {
    let Some((graph, mut names)) = graph_from_opset(model, 10) else {
        return 0;
    };
    let mut fresh = |base: String| names.fresh(base);
    // The four views (top-left, top-right, bottom-left, bottom-right of each window) as starts
    // and ends on the last two axes, step 2: a view from 0 ends one before the side, so an odd
    // side gives floor(side / 2) values like the pooling; one from 1 runs to the end.
    let ints = |name: &str, v: &[i64]| TensorProto {
        name: name.into(),
        dims: vec![v.len() as i64],
        data_type: INT64,
        raw_data: v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        ..Default::default()
    };
    const OPEN: i64 = i64::MAX;
    let values: [(&str, [i64; 2]); 10] = [
        ("start_tl", [0, 0]),
        ("start_tr", [0, 1]),
        ("start_bl", [1, 0]),
        ("start_br", [1, 1]),
        ("end_tl", [-1, -1]),
        ("end_tr", [-1, OPEN]),
        ("end_bl", [OPEN, -1]),
        ("end_br", [OPEN, OPEN]),
        ("axes", [2, 3]),
        ("steps", [2, 2]),
    ];
    let mut consts: Option<[String; 10]> = None;
    let mut nodes = Vec::with_capacity(graph.node.len());
    let mut count = 0;
    for node in std::mem::take(&mut graph.node) {
        if !standard_domain(&node.domain)
            || node.op_type != "MaxPool"
            || node.input.len() != 1
            || node.output.len() != 1
            || !plain_2x2_stride_2(&node)
        {
            nodes.push(node);
            continue;
        }
        let c = consts.get_or_insert_with(|| {
            let c = values.map(|(n, _)| fresh(format!("maxpool__{n}")));
            graph.initializer.extend(c.iter().zip(&values).map(|(name, (_, v))| ints(name, v)));
            c
        });
        let (x, y) = (node.input[0].clone(), node.output[0].clone());
        let step = |op: &str, inputs: &[&str], output: &str| step_of(&node, op, inputs, output);
        let v: [String; 4] = ["tl", "tr", "bl", "br"].map(|k| fresh(format!("{y}__{k}")));
        for (k, view) in v.iter().enumerate() {
            nodes.push(step("Slice", &[&x, &c[k], &c[4 + k], &c[8], &c[9]], view));
        }
        let (top, bottom) = (fresh(format!("{y}__top")), fresh(format!("{y}__bottom")));
        let gt = [&top, &bottom, &y].map(|o| fresh(format!("{o}__gt")));
        for (k, (a, b, out)) in
            [(&v[0], &v[1], &top), (&v[2], &v[3], &bottom), (&top, &bottom, &y)].into_iter().enumerate()
        {
            nodes.push(step("Greater", &[a, b], &gt[k]));
            nodes.push(step("Where", &[&gt[k], a, b], out));
        }
        count += 1;
    }
    graph.node = nodes;
    count
}

/// A node of the rewrite of `node`: `op` of `inputs` into `output`, named after both.
fn step_of(node: &NodeProto, op: &str, inputs: &[&str], output: &str) -> NodeProto {
    NodeProto {
        name: format!("{}__{output}", node.name),
        op_type: op.into(),
        input: inputs.iter().map(|i| i.to_string()).collect(),
        output: vec![output.into()],
        ..Default::default()
    }
}

/// The graph of `model` and the names it uses, when its default operator set is `min` or newer.
fn graph_from_opset(model: &mut ModelProto, min: i64) -> Option<(&mut GraphProto, Names)> {
    let opset = model.opset_import.iter().find(|o| standard_domain(&o.domain))?.version;
    let graph = model.graph.as_mut().filter(|_| opset >= min)?;
    let mut used: HashSet<String> = graph.initializer.iter().map(|t| t.name.clone()).collect();
    used.extend(graph.input.iter().chain(&graph.output).map(|v| v.name.clone()));
    used.extend(graph.node.iter().flat_map(|n| n.output.iter().cloned()));
    Some((graph, Names(used)))
}

/// Whether an operator or operator set is ONNX's own (named by "" or "ai.onnx").
fn standard_domain(domain: &str) -> bool {
    domain.is_empty() || domain == "ai.onnx"
}

/// The names a graph uses, for a rewrite to add only new ones.
struct Names(HashSet<String>);

impl Names {
    /// `base`, or `base_1`, `base_2`... : the first the graph does not use yet, now taken.
    fn fresh(&mut self, base: String) -> String {
        let mut name = base.clone();
        for i in 1.. {
            if !self.0.contains(&name) {
                break;
            }
            name = format!("{base}_{i}");
        }
        self.0.insert(name.clone());
        name
    }
}

/// Whether a `MaxPool` is 2x2, stride 2, unpadded, undilated, floor-rounded and 2-D.
fn plain_2x2_stride_2(node: &NodeProto) -> bool {
    node.attribute.iter().all(|a| match a.name.as_str() {
        "kernel_shape" | "strides" => a.ints == [2, 2],
        "pads" => a.ints.iter().all(|&p| p == 0),
        "dilations" => a.ints.iter().all(|&d| d == 1),
        "ceil_mode" => a.i == 0,
        "auto_pad" => a.s.is_empty() || a.s == b"NOTSET" || a.s == b"VALID",
        "storage_order" => a.i == 0,
        _ => false,
    }) && node.attribute.iter().any(|a| a.name == "kernel_shape")
        && node.attribute.iter().any(|a| a.name == "strides")
}

/// A tensor's values when it holds as many as its dimensions say (not external data).
fn all_values(t: &TensorProto) -> Option<Vec<f32>> {
    let v = values(t).ok()?;
    (v.len() as i64 == t.dims.iter().product::<i64>()).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_slope_becomes_relu_mul_add_and_a_computed_one_stays() {
        let mut model = model(17);
        let graph = model.graph.get_or_insert_with(Default::default);
        graph.initializer = vec![slope("a", &[0.25, -0.5])];
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

    #[test]
    fn names_the_graph_uses_are_not_taken_and_other_prelus_stay() {
        let mut model = model(17);
        let graph = model.graph.get_or_insert_with(Default::default);
        // An unrelated tensor already has the complement's name, and a node the first step's.
        graph.initializer = vec![slope("a", &[0.25, -0.5]), slope("a__one_minus", &[9.0, 9.0]), slope("b", &[0.5])];
        graph.initializer[2].dims = vec![2];
        let custom = NodeProto { domain: "com.example".into(), ..prelu("c", "a", "w") };
        graph.node = vec![prelu("p", "a", "y"), relu_named("y__relu"), custom, prelu("q", "b", "z")];
        assert_eq!(rewrite_prelu(&mut model), 1, "the custom-domain PRelu and the slope without its values stay");
        let graph = model.graph.unwrap();
        let ops: Vec<&str> = graph.node.iter().map(|n| n.op_type.as_str()).collect();
        assert_eq!(ops, ["Relu", "Mul", "Mul", "Add", "Relu", "PRelu", "PRelu"]);
        let complement = &graph.node[2].input[1];
        assert_ne!(complement, "a__one_minus");
        let made = graph.initializer.iter().find(|t| &t.name == complement).unwrap();
        assert_eq!(values(made).unwrap(), [0.75, 1.5]);
        assert_ne!(graph.node[0].output[0], "y__relu", "the rewrite's Relu has a name of its own");
        assert_eq!(graph.node[2].input[0], graph.node[0].output[0]);
    }

    #[test]
    fn an_opset_before_broadcasting_is_left_as_it_is() {
        let mut model = model(6);
        let graph = model.graph.get_or_insert_with(Default::default);
        graph.initializer = vec![slope("a", &[0.25, -0.5])];
        graph.node = vec![prelu("p", "a", "y")];
        assert_eq!(rewrite_prelu(&mut model), 0);
        assert_eq!(rewrite_prelu(&mut ModelProto::default()), 0, "no operator set named");
    }

    /// YuNet's four 2x2 poolings, rewritten, give the very values tract's pooling gives: the
    /// detector's outputs on a photo-like input are equal to the bit.
    #[test]
    fn the_rewritten_maxpool_computes_yunets_outputs_to_the_bit() {
        use crate::model::{Runner, TractPlan};
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../models/face_detection_yunet_2023mar.onnx");
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}; run `cargo xtask models`"));
        let mut rewritten = ModelProto::decode(&bytes[..]).expect("parses");
        assert_eq!(rewrite_maxpool(&mut rewritten), 4);
        assert!(rewritten.graph.as_ref().unwrap().node.iter().all(|n| n.op_type != "MaxPool"));
        // Not square, as the letterboxed inputs are not.
        let shape = [1usize, 3, 96, 160];
        let input: Vec<f32> = (0..shape.iter().product::<usize>()).map(|i| ((i * 7919) % 256) as f32).collect();
        let run = |model: &[u8]| {
            let plan = TractPlan::load_as_stored(model, &[shape]).expect("plan");
            plan.run(&shape, input.clone()).expect("runs")
        };
        let (want, got) = (run(&bytes), run(&rewritten.encode_to_vec()));
        assert_eq!(want.len(), got.len());
        for (k, (w, g)) in want.iter().zip(&got).enumerate() {
            assert_eq!(w.len(), g.len(), "output {k}");
            assert!(w.iter().zip(g).all(|(a, b)| a.to_bits() == b.to_bits()), "output {k} differs");
        }
    }

    #[test]
    fn only_plain_2x2_stride_2_poolings_are_rewritten() {
        let pool = |name: &str, attrs: Vec<tract_onnx::pb::AttributeProto>| NodeProto {
            name: name.into(),
            op_type: "MaxPool".into(),
            input: vec!["x".into()],
            output: vec![format!("{name}_y")],
            attribute: attrs,
            ..Default::default()
        };
        let ints = |name: &str, v: &[i64]| tract_onnx::pb::AttributeProto {
            name: name.into(),
            ints: v.to_vec(),
            ..Default::default()
        };
        let mut m = model(17);
        let graph = m.graph.get_or_insert_with(Default::default);
        graph.node = vec![
            pool("plain", vec![ints("kernel_shape", &[2, 2]), ints("strides", &[2, 2]), ints("pads", &[0, 0, 0, 0])]),
            pool("three", vec![ints("kernel_shape", &[3, 3]), ints("strides", &[2, 2])]),
            pool("padded", vec![ints("kernel_shape", &[2, 2]), ints("strides", &[2, 2]), ints("pads", &[0, 0, 1, 1])]),
            pool("stride1", vec![ints("kernel_shape", &[2, 2]), ints("strides", &[1, 1])]),
        ];
        assert_eq!(rewrite_maxpool(&mut m), 1);
        let kept: Vec<&str> =
            m.graph.as_ref().unwrap().node.iter().filter(|n| n.op_type == "MaxPool").map(|n| n.name.as_str()).collect();
        assert_eq!(kept, ["three", "padded", "stride1"]);
        assert_eq!(rewrite_maxpool(&mut model(9)), 0, "opset 9: Slice takes no steps");
    }

    fn model(opset: i64) -> ModelProto {
        let opset = tract_onnx::pb::OperatorSetIdProto { domain: String::new(), version: opset };
        ModelProto { opset_import: vec![opset], ..Default::default() }
    }

    fn slope(name: &str, values: &[f32]) -> TensorProto {
        TensorProto {
            name: name.into(),
            dims: vec![values.len() as i64, 1, 1],
            data_type: FLOAT,
            raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..Default::default()
        }
    }

    fn prelu(name: &str, slope: &str, output: &str) -> NodeProto {
        NodeProto {
            name: name.into(),
            op_type: "PRelu".into(),
            input: vec!["x".into(), slope.into()],
            output: vec![output.into()],
            ..Default::default()
        }
    }

    fn relu_named(output: &str) -> NodeProto {
        NodeProto { op_type: "Relu".into(), input: vec!["x".into()], output: vec![output.into()], ..Default::default() }
    }
}
