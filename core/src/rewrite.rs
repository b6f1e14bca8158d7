//! `PRelu` with stored slopes rewritten as `slope * x + (1 - slope) * Relu(x)` ([`rewrite_prelu`],
//! for tract and onnxruntime alike), and the graph onnxruntime is handed ([`onnxruntime_bytes`]):
//! the registry's constant quantized weights folded (`crate::dequant`), then rewritten.
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

/// Rewrites every `PRelu` of the standard domain whose slope is a stored f32 tensor; returns how
/// many it rewrote. A `PRelu` with a computed slope is left as it is, and so is a graph whose
/// default operator set is older than 7 (before `Mul` and `Add` broadcast on their own). Every
/// name it adds is one the graph does not use yet.
pub fn rewrite_prelu(model: &mut ModelProto) -> usize {
    let opset = model.opset_import.iter().find(|o| o.domain.is_empty() || o.domain == "ai.onnx").map(|o| o.version);
    if opset.is_none_or(|v| v < 7) {
        return 0;
    }
    let Some(graph) = model.graph.as_mut() else {
        return 0;
    };
    let mut names: HashSet<String> = graph.initializer.iter().map(|t| t.name.clone()).collect();
    names.extend(graph.input.iter().chain(&graph.output).map(|v| v.name.clone()));
    names.extend(graph.node.iter().flat_map(|n| n.output.iter().cloned()));
    let mut fresh = |base: String| {
        let mut name = base.clone();
        for i in 1.. {
            if !names.contains(&name) {
                break;
            }
            name = format!("{base}_{i}");
        }
        names.insert(name.clone());
        name
    };
    let mut added: Vec<TensorProto> = Vec::new();
    // The complement made for each slope, shared by the PRelus that share the slope.
    let mut complements: HashMap<String, String> = HashMap::new();
    let mut nodes = Vec::with_capacity(graph.node.len());
    let mut count = 0;
    for node in std::mem::take(&mut graph.node) {
        let standard = node.domain.is_empty() || node.domain == "ai.onnx";
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
        let step = |op: &str, inputs: &[&str], output: &str| NodeProto {
            name: format!("{}__{output}", node.name),
            op_type: op.into(),
            input: inputs.iter().map(|i| i.to_string()).collect(),
            output: vec![output.into()],
            ..Default::default()
        };
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
