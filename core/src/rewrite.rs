//! Graph rewrites made on the ONNX protobuf before a runtime reads it: for onnxruntime
//! ([`onnxruntime_bytes`]: the registry's constant quantized weights folded (`crate::dequant`),
//! then every `PRelu` with stored slopes written as `slope * x + (1 - slope) * Relu(x)`,
//! [`rewrite_prelu`]), and for tract ([`use_face_core_ops`]: those `PRelu`s, the 2x2 stride-2
//! `MaxPool`s and the 3x3 depthwise convolutions with what follows them handed to face-core's
//! own operators, `crate::tract_ops`).
//!
//! SFace follows each of its 27 convolutions with a per-channel `PRelu`. onnxruntime's CPU
//! provider neither fuses `PRelu` into the convolution nor runs it in its blocked (NCHWc) layout,
//! so it converts every activation back and forth around it: measured with onnxruntime 1.32 on
//! one thread, `PRelu` and those conversions took more than half of SFace's time (21 ms of CPU
//! per face). The rewritten form is the same function (x > 0: x; else: slope * x, within a few
//! units in the last place for finite x) in operators onnxruntime fuses and keeps blocked: SFace
//! takes 12 ms. tract ran that form faster than its own `PRelu` too (SFace 48 -> 34 ms natively,
//! one thread), and face-core's one-pass operators faster still (31 -> 23 ms).

use std::collections::{HashMap, HashSet};

use prost::Message;
use tract_onnx::pb::attribute_proto::AttributeType;
use tract_onnx::pb::{AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto};

use crate::dequant::{FLOAT, fold_constant_dequantize, values};
use crate::tract_ops::{self, DEPTHWISE_3X3, DOMAIN, MAXPOOL_2X2, PRELU};

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

/// For tract: every 3x3 depthwise `Conv` that [`fuse_depthwise`] takes becomes one
/// [`DEPTHWISE_3X3`] node with the batch norm and activation after it; then every other
/// standard-domain `PRelu` whose slope is stored with at most one dimension over 1 becomes
/// `crate::tract_ops`' in-place [`PRELU`], and every plain 2x2 stride-2 `MaxPool` its one-pass
/// [`MAXPOOL_2X2`], with the same inputs and outputs. Returns how many nodes it replaced (a
/// fused chain counts once). Operators tract reads any other way (a computed slope, other
/// convolutions and pooling) stay as they are.
pub fn use_face_core_ops(model: &mut ModelProto) -> usize {
    let fused = fuse_depthwise(model);
    let Some(graph) = model.graph.as_mut() else {
        return 0;
    };
    let per_channel: HashSet<&str> = graph
        .initializer
        .iter()
        .filter(|t| t.data_type == FLOAT && t.dims.iter().filter(|&&d| d != 1).count() <= 1)
        .filter(|t| all_values(t).is_some())
        .map(|t| t.name.as_str())
        .collect();
    let mut count = 0;
    for node in graph.node.iter_mut().filter(|n| standard_domain(&n.domain)) {
        let op = match (node.op_type.as_str(), node.input.as_slice(), node.output.len()) {
            ("PRelu", [_, s], 1) if per_channel.contains(s.as_str()) => PRELU,
            ("MaxPool", [_], 1) if plain_2x2_stride_2(node) => MAXPOOL_2X2,
            _ => continue,
        };
        node.op_type = op.into();
        node.domain = DOMAIN.into();
        node.attribute.clear();
        count += 1;
    }
    if count + fused > 0 && !model.opset_import.iter().any(|o| o.domain == DOMAIN) {
        model.opset_import.push(OperatorSetIdProto { domain: DOMAIN.into(), version: 1 });
    }
    count + fused
}

/// Every standard-domain 3x3 depthwise `Conv` (one group per channel, one input channel per
/// group, padding 1, stride 1 or 2, stored weights and bias) becomes one [`DEPTHWISE_3X3`] node
/// with what follows it folded in, where it is the only reader of the value before it and that
/// value is no graph output: a `BatchNormalization` with stored parameters (into the weights and
/// bias), then a `Relu` or a `PRelu` with stored per-channel slopes. Returns how many `Conv`s it
/// replaced. Operator sets before 9 (`BatchNormalization`'s older forms) are left as they are.
fn fuse_depthwise(model: &mut ModelProto) -> usize {
    let Some((graph, mut names)) = graph_from_opset(model, 9) else {
        return 0;
    };
    // By name: the f32 tensors stored, each with the dimensions it is read with. Their values
    // are decoded only for the nodes that may be fused (a model's weights are tens of MB).
    let mut stored: Stored = graph
        .initializer
        .iter()
        .filter(|t| t.data_type == FLOAT)
        .map(|t| (t.name.as_str(), (t.dims.clone(), t)))
        .collect();
    // A stored tensor reshaped by a stored shape (how the registry's SFace gives each
    // convolution its folded weights) counts as stored in its new shape.
    let shapes: HashMap<&str, Vec<i64>> = graph
        .initializer
        .iter()
        .filter(|t| t.data_type == INT64 && t.dims.len() == 1 && t.raw_data.len() == 8 * t.dims[0] as usize)
        .map(|t| {
            (t.name.as_str(), t.raw_data.chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().unwrap())).collect())
        })
        .collect();
    for node in graph.node.iter().filter(|n| standard_domain(&n.domain) && n.op_type == "Reshape") {
        let ([data, shape], [out]) = (node.input.as_slice(), node.output.as_slice()) else { continue };
        let (Some(&(ref from, t)), Some(dims)) = (stored.get(data.as_str()), shapes.get(shape.as_str())) else {
            continue;
        };
        if dims.iter().all(|&d| d > 0) && dims.iter().product::<i64>() == from.iter().product::<i64>() {
            stored.insert(out.as_str(), (dims.clone(), t));
        }
    }
    let mut readers: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, node) in graph.node.iter().enumerate() {
        for input in node.input.iter().filter(|i| !i.is_empty()) {
            readers.entry(input.as_str()).or_default().push(i);
        }
    }
    let outputs: HashSet<&str> = graph.output.iter().map(|o| o.name.as_str()).collect();
    // The node that alone reads `value`, when `value` is no graph output.
    let only_reader = |value: &str| match readers.get(value).map(Vec::as_slice) {
        Some(&[i]) if !outputs.contains(value) => Some(i),
        _ => None,
    };
    // (index of the Conv, the nodes folded into it, the new node, its new initializers)
    let mut fusions: Vec<(usize, Vec<usize>, NodeProto, Vec<TensorProto>)> = Vec::new();
    for (i, conv) in graph.node.iter().enumerate() {
        let Some((stride, mut weights, mut bias)) = depthwise_conv(conv, &stored) else {
            continue;
        };
        let channels = bias.len();
        let mut folded = Vec::new();
        let mut output = conv.output[0].clone();
        let norm = only_reader(&output).and_then(|j| Some((j, batch_norm(&graph.node[j], channels, &stored)?)));
        if let Some((j, [scale, shift, mean, var])) = norm {
            let epsilon = graph.node[j].attribute.iter().find(|a| a.name == "epsilon").map_or(1e-5, |a| a.f);
            for c in 0..channels {
                let factor = f64::from(scale[c]) / (f64::from(var[c]) + f64::from(epsilon)).sqrt();
                for w in &mut weights[9 * c..9 * (c + 1)] {
                    *w = (f64::from(*w) * factor) as f32;
                }
                bias[c] = ((f64::from(bias[c]) - f64::from(mean[c])) * factor + f64::from(shift[c])) as f32;
            }
            folded.push(j);
            output = graph.node[j].output[0].clone();
        }
        let (mut activation, mut slope) = ("none", None);
        if let Some(j) = only_reader(&output) {
            let node = &graph.node[j];
            match (node.op_type.as_str(), node.input.as_slice(), standard_domain(&node.domain)) {
                ("Relu", [_], true) => activation = "relu",
                ("PRelu", [_, s], true)
                    if stored_values(&stored, s).is_some_and(|(dims, _)| channel_slope(&dims, channels)) =>
                {
                    (activation, slope) = ("prelu", Some(s.clone()));
                }
                _ => {}
            }
            if activation != "none" {
                folded.push(j);
                output = node.output[0].clone();
            }
        }
        let (w_name, b_name) =
            (names.fresh(format!("{}__dw_weights", conv.name)), names.fresh(format!("{}__dw_bias", conv.name)));
        let tensor = |name: &str, dims: Vec<i64>, values: &[f32]| TensorProto {
            name: name.into(),
            dims,
            data_type: FLOAT,
            raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..Default::default()
        };
        let made = vec![
            tensor(&w_name, vec![channels as i64, 1, 3, 3], &weights),
            tensor(&b_name, vec![channels as i64], &bias),
        ];
        let mut input = vec![conv.input[0].clone(), w_name, b_name];
        input.extend(slope);
        let attribute = vec![
            AttributeProto {
                name: "stride".into(),
                r#type: AttributeType::Int as i32,
                i: stride,
                ..Default::default()
            },
            AttributeProto {
                name: "activation".into(),
                r#type: AttributeType::String as i32,
                s: activation.as_bytes().to_vec(),
                ..Default::default()
            },
        ];
        let node = NodeProto {
            name: conv.name.clone(),
            op_type: DEPTHWISE_3X3.into(),
            domain: DOMAIN.into(),
            input,
            output: vec![output],
            attribute,
            ..Default::default()
        };
        fusions.push((i, folded, node, made));
    }
    let count = fusions.len();
    let folded: HashSet<usize> = fusions.iter().flat_map(|(_, f, _, _)| f.iter().copied()).collect();
    let mut replacing: HashMap<usize, NodeProto> = HashMap::new();
    for (i, _, node, made) in fusions {
        graph.initializer.extend(made);
        replacing.insert(i, node);
    }
    let nodes = std::mem::take(&mut graph.node);
    graph.node = nodes
        .into_iter()
        .enumerate()
        .filter(|(i, _)| !folded.contains(i))
        .map(|(i, node)| replacing.remove(&i).unwrap_or(node))
        .collect();
    count
}

/// A 3x3 depthwise `Conv` that [`fuse_depthwise`] takes: its stride, weights and bias (zeros
/// when it has none).
fn depthwise_conv(node: &NodeProto, stored: &Stored) -> Option<(i64, Vec<f32>, Vec<f32>)> {
    if !standard_domain(&node.domain) || node.op_type != "Conv" || node.output.len() != 1 {
        return None;
    }
    let weights = node.input.get(1)?.as_str();
    let &[channels, 1, 3, 3] = stored.get(weights)?.0.as_slice() else { return None };
    let mut stride = None;
    for a in &node.attribute {
        let fits = match a.name.as_str() {
            "group" => a.i == channels,
            "kernel_shape" => a.ints == [3, 3],
            "pads" => a.ints == [1, 1, 1, 1],
            "dilations" => a.ints.iter().all(|&d| d == 1),
            "auto_pad" => a.s.is_empty() || a.s == b"NOTSET",
            "strides" => match a.ints.as_slice() {
                [1, 1] | [2, 2] => {
                    stride = Some(a.ints[0]);
                    true
                }
                _ => false,
            },
            _ => false,
        };
        if !fits {
            return None;
        }
    }
    let has = |name: &str| node.attribute.iter().any(|a| a.name == name);
    if !(has("group") && has("pads")) {
        return None;
    }
    let bias = match node.input.get(2).filter(|b| !b.is_empty()) {
        Some(b) => stored_values(stored, b).filter(|(_, v)| v.len() as i64 == channels)?.1,
        None => vec![0.0; channels as usize],
    };
    Some((stride.unwrap_or(1), stored_values(stored, weights)?.1, bias))
}

/// The stored f32 tensors of a graph by name, with the dimensions each is read with (a
/// constant `Reshape` gives its output the tensor it reshapes).
type Stored<'a> = HashMap<&'a str, (Vec<i64>, &'a TensorProto)>;

/// The dimensions and values of the stored tensor `name`, when it holds all its values.
fn stored_values(stored: &Stored, name: &str) -> Option<(Vec<i64>, Vec<f32>)> {
    let (dims, t) = stored.get(name)?;
    Some((dims.clone(), all_values(t)?))
}

/// [`tract_ops::channel_slope`] for a stored tensor's `dims`.
fn channel_slope(dims: &[i64], channels: usize) -> bool {
    let shape: Option<Vec<usize>> = dims.iter().map(|&d| usize::try_from(d).ok()).collect();
    shape.is_some_and(|shape| tract_ops::channel_slope(&shape, channels))
}

/// A `BatchNormalization` in inference form whose four parameters are stored, `channels` each:
/// scale, shift, mean, variance.
fn batch_norm(node: &NodeProto, channels: usize, stored: &Stored) -> Option<[Vec<f32>; 4]> {
    if !standard_domain(&node.domain) || node.op_type != "BatchNormalization" || node.output.len() != 1 {
        return None;
    }
    if node.attribute.iter().any(|a| !matches!(a.name.as_str(), "epsilon" | "momentum")) {
        return None;
    }
    let [_, scale, shift, mean, var] = node.input.as_slice() else { return None };
    let get = |name: &String| stored_values(stored, name).map(|(_, v)| v).filter(|v| v.len() == channels);
    Some([get(scale)?, get(shift)?, get(mean)?, get(var)?])
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

    /// Every model run by face-core's operators (YuNet's poolings and depthwise convolutions,
    /// SFace's PRelus and depthwise convolutions, the face-api.js nets' depthwise convolutions)
    /// gives tract's own outputs up to float rounding: the sums are added in another order and
    /// the batch norms are folded into the weights.
    #[test]
    fn face_cores_operators_compute_every_models_outputs() {
        use crate::model::{MODELS, Runner, TractPlan};
        let mut changed = Vec::new();
        for info in &MODELS {
            // The folder at run time (cargo test sets it): clones at other paths share one
            // target folder, and a test binary built for one of them may run for another.
            let crate_dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into());
            let path = format!("{crate_dir}/../models/{}", info.file);
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}; run `cargo xtask models`"));
            let mut rewritten = ModelProto::decode(&bytes[..]).expect("parses");
            fold_constant_dequantize(&mut rewritten);
            changed.push(use_face_core_ops(&mut rewritten));
            // YuNet not square, as the letterboxed inputs are not, and small.
            let shapes: Vec<[usize; 4]> =
                if info.name == MODELS[0].name { vec![[1, 3, 96, 160], [1, 3, 160, 96]] } else { vec![info.shapes[0]] };
            for shape in shapes {
                let input: Vec<f32> =
                    (0..shape.iter().product::<usize>()).map(|i| ((i * 7919) % 256) as f32 / 255.0).collect();
                let stored = TractPlan::load_as_stored(&bytes, &[shape]).expect("plan");
                let ours = TractPlan::load(&bytes, &[shape]).expect("plan");
                let (want, got) = (stored.run(&shape, input.clone()).unwrap(), ours.run(&shape, input).unwrap());
                assert_eq!(want.len(), got.len());
                for (k, (w, g)) in want.iter().zip(&got).enumerate() {
                    assert_eq!(w.len(), g.len(), "{}: output {k}", info.file);
                    let scale = w.iter().fold(1.0f32, |m, v| m.max(v.abs()));
                    let worst = w.iter().zip(g).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
                    assert!(
                        worst <= 1e-5 * scale,
                        "{} {shape:?}: output {k} differs by {worst} (largest value {scale})",
                        info.file
                    );
                }
            }
        }
        // YuNet: 4 poolings, 20 depthwise convolutions and 6 single-channel 3x3 ones of its heads;
        // the 68-point net 12 of its 15 depthwise (3 are padded on one side only); SFace 13
        // depthwise (with their PRelus) and 14 PRelus; the face-api.js recognizer nothing; the
        // age/gender and expression nets 13 and 12 depthwise.
        assert_eq!(changed, [30, 12, 27, 0, 13, 12]);
    }

    #[test]
    fn a_depthwise_convolution_takes_in_its_batch_norm_and_activation_where_it_alone_feeds_them() {
        let mut m = model(17);
        let graph = m.graph.get_or_insert_with(Default::default);
        let mut weights = slope("w", &[1.0; 18]);
        weights.dims = vec![2, 1, 3, 3];
        let param = |name: &str, v: [f32; 2]| {
            let mut t = slope(name, &v);
            t.dims = vec![2];
            t
        };
        let mut flat = slope("w_flat", &[1.0; 18]);
        flat.dims = vec![18];
        let shape = TensorProto {
            name: "w_shape".into(),
            dims: vec![4],
            data_type: INT64,
            raw_data: [2i64, 1, 3, 3].iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..Default::default()
        };
        graph.initializer = vec![
            weights,
            param("b", [1.0, 2.0]),
            param("gamma", [4.0, 3.0]),
            param("beta", [0.5, 0.0]),
            param("mean", [1.0, 0.0]),
            param("var", [3.0, 8.0]),
            slope("a", &[0.25, -0.5]),
            param("wide", [0.25, -0.5]),
            flat,
            shape,
        ];
        graph.output = vec![tract_onnx::pb::ValueInfoProto { name: "output_y".into(), ..Default::default() }];
        let conv = |name: &str, x: &str, strides: &[i64]| NodeProto {
            name: name.into(),
            op_type: "Conv".into(),
            input: vec![x.into(), "w".into(), "b".into()],
            output: vec![format!("{name}_y")],
            attribute: vec![
                attr_i("group", 2),
                attr_ints("kernel_shape", &[3, 3]),
                attr_ints("pads", &[1, 1, 1, 1]),
                attr_ints("strides", strides),
            ],
            ..Default::default()
        };
        let with = |mut node: NodeProto, attribute: tract_onnx::pb::AttributeProto| {
            node.attribute.retain(|a| a.name != attribute.name);
            node.attribute.push(attribute);
            node
        };
        let step = |op: &str, inputs: &[&str], output: &str| NodeProto {
            name: output.into(),
            op_type: op.into(),
            input: inputs.iter().map(|i| i.to_string()).collect(),
            output: vec![output.into()],
            attribute: if op == "BatchNormalization" { vec![attr_f("epsilon", 1.0)] } else { vec![] },
            ..Default::default()
        };
        let mut no_pads = conv("no_pads", "x", &[1, 1]);
        no_pads.attribute.retain(|a| a.name != "pads");
        let no_bias = NodeProto { input: vec!["x".into(), "w".into()], ..conv("no_bias", "x", &[1, 1]) };
        let reshaped =
            NodeProto { input: vec!["x".into(), "w_4d".into(), "b".into()], ..conv("reshaped", "x", &[1, 1]) };
        graph.node = vec![
            // Conv, batch norm, PRelu: one node.
            conv("full", "x", &[2, 2]),
            step("BatchNormalization", &["full_y", "gamma", "beta", "mean", "var"], "full_bn"),
            step("PRelu", &["full_bn", "a"], "full_out"),
            // Conv, Relu: one node.
            conv("relu", "full_out", &[1, 1]),
            step("Relu", &["relu_y"], "relu_out"),
            // Its output read twice: the Conv alone, its readers stay.
            conv("shared", "relu_out", &[1, 1]),
            step("Relu", &["shared_y"], "shared_a"),
            step("Relu", &["shared_y"], "shared_b"),
            // Its output a graph output: the Conv alone.
            conv("output", "x", &[1, 1]),
            step("BatchNormalization", &["output_y", "gamma", "beta", "mean", "var"], "output_bn"),
            // A batch norm in training form: the Conv alone.
            conv("training", "x", &[1, 1]),
            with(
                step("BatchNormalization", &["training_y", "gamma", "beta", "mean", "var"], "training_bn"),
                attr_i("training_mode", 1),
            ),
            // A slope along the width, not per channel: the Conv alone.
            conv("wide", "x", &[1, 1]),
            step("PRelu", &["wide_y", "wide"], "wide_out"),
            // No bias: taken, with a zero bias. Weights through a stored reshape: taken.
            no_bias,
            step("Reshape", &["w_flat", "w_shape"], "w_4d"),
            reshaped,
            // Not taken: stride 3, no padding given, dilated, one group.
            conv("stride3", "x", &[3, 3]),
            no_pads,
            with(conv("dilated", "x", &[1, 1]), attr_ints("dilations", &[2, 2])),
            with(conv("one_group", "x", &[1, 1]), attr_i("group", 1)),
        ];
        assert_eq!(fuse_depthwise(&mut m), 8);
        let graph = m.graph.as_ref().unwrap();
        let nodes: Vec<(&str, &str, &str)> =
            graph.node.iter().map(|n| (n.name.as_str(), n.op_type.as_str(), n.output[0].as_str())).collect();
        assert_eq!(
            nodes,
            [
                ("full", DEPTHWISE_3X3, "full_out"),
                ("relu", DEPTHWISE_3X3, "relu_out"),
                ("shared", DEPTHWISE_3X3, "shared_y"),
                ("shared_a", "Relu", "shared_a"),
                ("shared_b", "Relu", "shared_b"),
                ("output", DEPTHWISE_3X3, "output_y"),
                ("output_bn", "BatchNormalization", "output_bn"),
                ("training", DEPTHWISE_3X3, "training_y"),
                ("training_bn", "BatchNormalization", "training_bn"),
                ("wide", DEPTHWISE_3X3, "wide_y"),
                ("wide_out", "PRelu", "wide_out"),
                ("no_bias", DEPTHWISE_3X3, "no_bias_y"),
                ("w_4d", "Reshape", "w_4d"),
                ("reshaped", DEPTHWISE_3X3, "reshaped_y"),
                ("stride3", "Conv", "stride3_y"),
                ("no_pads", "Conv", "no_pads_y"),
                ("dilated", "Conv", "dilated_y"),
                ("one_group", "Conv", "one_group_y"),
            ]
        );
        let attrs = |n: &NodeProto| {
            let stride = n.attribute.iter().find(|a| a.name == "stride").unwrap().i;
            let activation = n.attribute.iter().find(|a| a.name == "activation").unwrap().s.clone();
            (stride, String::from_utf8(activation).unwrap(), n.input.len())
        };
        assert_eq!(attrs(&graph.node[0]), (2, "prelu".into(), 4));
        assert_eq!(graph.node[0].input[3], "a");
        assert_eq!(attrs(&graph.node[1]), (1, "relu".into(), 3));
        for k in [2, 5, 7, 9] {
            assert_eq!(attrs(&graph.node[k]), (1, "none".into(), 3), "{}", graph.node[k].name);
        }
        let stored = |name: &str| values(graph.initializer.iter().find(|t| t.name == name).unwrap()).unwrap();
        // Batch norm folded: factor gamma / sqrt(var + 1) = 2 and 1; bias (b - mean) * factor + beta.
        let folded: Vec<f32> = [[2.0; 9], [1.0; 9]].concat();
        assert_eq!(stored(&graph.node[0].input[1]), folded);
        assert_eq!(stored(&graph.node[0].input[2]), [0.5, 2.0]);
        assert_eq!(stored(&graph.node[1].input[1]), [1.0; 18], "no batch norm: the Conv's own weights");
        assert_eq!(stored(&graph.node[1].input[2]), [1.0, 2.0], "and bias");
        assert_eq!(stored(&graph.node[11].input[2]), [0.0, 0.0], "no bias: zeros");
        assert_eq!(stored(&graph.node[13].input[1]), [1.0; 18], "the reshaped weights");
        assert!(m.opset_import.iter().all(|o| o.domain != DOMAIN), "fuse_depthwise alone declares nothing");
        assert_eq!(fuse_depthwise(&mut model(8)), 0, "opset 8: not taken");
    }

    #[test]
    fn a_slope_is_per_channel_only_on_the_channel_axis_of_nchw() {
        assert!(channel_slope(&[2, 1, 1], 2));
        assert!(channel_slope(&[1, 2, 1, 1], 2));
        assert!(channel_slope(&[1], 2) && channel_slope(&[1, 1, 1], 2), "one slope for all");
        assert!(!channel_slope(&[2], 2), "along the width");
        assert!(!channel_slope(&[2, 1], 2), "along the height");
        assert!(!channel_slope(&[3, 1, 1], 2), "another count");
    }

    fn attr_i(name: &str, i: i64) -> tract_onnx::pb::AttributeProto {
        tract_onnx::pb::AttributeProto { name: name.into(), i, r#type: AttributeType::Int as i32, ..Default::default() }
    }

    fn attr_f(name: &str, f: f32) -> tract_onnx::pb::AttributeProto {
        tract_onnx::pb::AttributeProto {
            name: name.into(),
            f,
            r#type: AttributeType::Float as i32,
            ..Default::default()
        }
    }

    fn attr_ints(name: &str, ints: &[i64]) -> tract_onnx::pb::AttributeProto {
        tract_onnx::pb::AttributeProto {
            name: name.into(),
            ints: ints.to_vec(),
            r#type: AttributeType::Ints as i32,
            ..Default::default()
        }
    }

    #[test]
    fn only_per_channel_stored_prelus_and_plain_2x2_stride_2_poolings_change() {
        let pool = |name: &str, attrs: Vec<tract_onnx::pb::AttributeProto>| NodeProto {
            name: name.into(),
            op_type: "MaxPool".into(),
            input: vec!["x".into()],
            output: vec![format!("{name}_y")],
            attribute: attrs,
            ..Default::default()
        };
        let ints = attr_ints;
        let mut m = model(17);
        let graph = m.graph.get_or_insert_with(Default::default);
        let mut grid = slope("grid", &[0.5; 4]);
        grid.dims = vec![2, 2];
        let mut external = slope("external", &[0.5, 0.5]);
        external.raw_data.clear();
        graph.initializer = vec![slope("a", &[0.25, -0.5, 1.5]), grid, external];
        graph.node = vec![
            pool("plain", vec![ints("kernel_shape", &[2, 2]), ints("strides", &[2, 2]), ints("pads", &[0, 0, 0, 0])]),
            pool("three", vec![ints("kernel_shape", &[3, 3]), ints("strides", &[2, 2])]),
            pool("padded", vec![ints("kernel_shape", &[2, 2]), ints("strides", &[2, 2]), ints("pads", &[0, 0, 1, 1])]),
            pool("stride1", vec![ints("kernel_shape", &[2, 2]), ints("strides", &[1, 1])]),
            prelu("per_channel", "a", "y"),
            prelu("computed", "c", "z"),
            prelu("two_axes", "grid", "w"),
            prelu("no_values", "external", "v"),
            NodeProto { domain: "com.example".into(), ..prelu("custom", "a", "u") },
        ];
        assert_eq!(use_face_core_ops(&mut m), 2);
        let graph = m.graph.as_ref().unwrap();
        let changed: Vec<(&str, &str, &str)> = graph
            .node
            .iter()
            .filter(|n| n.domain == DOMAIN)
            .map(|n| (n.name.as_str(), n.op_type.as_str(), n.input[0].as_str()))
            .collect();
        assert_eq!(changed, [("plain", MAXPOOL_2X2, "x"), ("per_channel", PRELU, "x")]);
        assert!(graph.node.iter().filter(|n| n.domain == DOMAIN).all(|n| n.attribute.is_empty()));
        assert_eq!(graph.node.iter().filter(|n| n.op_type == "PRelu").count(), 4);
        assert!(m.opset_import.iter().any(|o| o.domain == DOMAIN), "the domain is declared");
        assert_eq!(use_face_core_ops(&mut m), 0, "nothing left to change");
        assert_eq!(use_face_core_ops(&mut ModelProto::default()), 0, "no graph");
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
