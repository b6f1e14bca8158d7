"""Rebuild four face-api.js networks as ONNX graphs from their shipped tfjs weights.

Source: the npm package @vladmandic/face-api@1.7.15 (`model/*-weights_manifest.json` + `*.bin`).
The architectures below transcribe the package's TypeScript (src/faceRecognitionNet,
src/faceFeatureExtractor + src/faceLandmarkNet + src/faceExpressionNet + src/faceProcessor,
src/xception + src/ageGenderNet, src/common, src/ops/normalize.ts, src/dom/NetInput.ts).

Usage:
    python faceapi.py --model-dir path/to/face-api/model --out DIR

writes DIR/faceapi_recognition.onnx, faceapi_landmark68.onnx, faceapi_age_gender.onnx,
faceapi_expression.onnx. Only numpy, onnx and the standard library are used, and the output is
byte-for-byte deterministic for given weight files (fixed names, fixed order, no timestamps).

Every graph takes `input`: float32 [1, 3, S, S], NCHW, RGB, values 0..255 (S = 150 for the
recogniser, 112 for the others). The face-api.js normalisation is inside the graph:
    x = (rgb - [122.782, 117.001, 104.298]) * (1/255)
face-api.js itself resizes a non-square input by zero-padding it to a square (centred) and then
bilinear-resizing to S x S; callers of these graphs must hand over the S x S crop already.

Outputs:
  faceapi_recognition.onnx  `embedding` [1,128]  raw descriptor (computeFaceDescriptor), not
                            L2-normalised; face-api.js compares them by euclidean distance
                            (0.6 is its usual threshold).
  faceapi_landmark68.onnx   `landmarks` [1,136]  x0,y0,x1,y1,...,x67,y67, fractions of the
                            112x112 (square) input: pixel = value * crop_side. This is the raw
                            fc output; for a square input face-api.js's postProcess is the
                            identity (out*112/112), for a non-square one it is relative to the
                            zero-padded square face-api.js built.
  faceapi_age_gender.onnx   `age` [1,1] years (raw regression output, as predictAgeAndGender
                            reports it); `gender` [1,2] softmax, index 0 = male, 1 = female
                            (face-api.js: probMale = gender[0]; isMale = probMale > 0.5).
  faceapi_expression.onnx   `expressions` [1,7] softmax in FACE_EXPRESSION_LABELS order:
                            neutral, happy, sad, angry, fearful, disgusted, surprised.

Weights: manifest entries with a "quantization" field are dequantized exactly as tfjs'
io.decodeWeights does (value = q * scale + min in double precision, stored as float32; float16
is decoded as IEEE half). Filters are converted from TF layout (HWIO, depthwise H W C 1) to ONNX
OIHW. TF 'same' padding is written as explicit (possibly asymmetric) Conv/MaxPool pads. The
recogniser's per-channel affine "scale" layers are folded into the preceding convolution.
"""
import argparse
import hashlib
import json
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8
MEAN_RGB = (122.782, 117.001, 104.298)
SOURCE = "@vladmandic/face-api@1.7.15"


# --------------------------------------------------------------------------------------------
# weights


def _float16_to_float32(raw):
    return raw.view(np.float16).astype(np.float32)


def load_weights(model_dir, model_name):
    """Decode `<model_name>-weights_manifest.json` like tfjs io.loadWeights/decodeWeights.

    Returns (dict name -> float32 ndarray in the manifest's shape, sha256 of the weight files).
    """
    manifest_path = os.path.join(model_dir, model_name + "-weights_manifest.json")
    with open(manifest_path, "r", encoding="utf-8") as f:
        manifest = json.load(f)
    weights = {}
    digest = hashlib.sha256()
    for group in manifest:
        buf = b""
        for path in group["paths"]:
            with open(os.path.join(model_dir, path), "rb") as f:
                data = f.read()
            digest.update(data)
            buf += data
        offset = 0
        for spec in group["weights"]:
            name, shape, dtype = spec["name"], list(spec["shape"]), spec["dtype"]
            if dtype != "float32":
                raise ValueError(f"{model_name}: unsupported dtype {dtype} for {name}")
            size = int(np.prod(shape, dtype=np.int64)) if shape else 1
            quant = spec.get("quantization")
            if quant is None:
                nbytes = size * 4
                values = np.frombuffer(buf, dtype="<f4", count=size, offset=offset).astype(np.float32)
            elif quant["dtype"] in ("uint8", "uint16"):
                qdtype = np.dtype("u1") if quant["dtype"] == "uint8" else np.dtype("<u2")
                nbytes = size * qdtype.itemsize
                q = np.frombuffer(buf, dtype=qdtype, count=size, offset=offset)
                # tfjs: values[i] = v * scale + min, evaluated in double, stored into a Float32Array
                values = (q.astype(np.float64) * float(quant["scale"]) + float(quant["min"])).astype(np.float32)
            elif quant["dtype"] == "float16":
                nbytes = size * 2
                values = _float16_to_float32(np.frombuffer(buf, dtype="<u2", count=size, offset=offset).copy())
            else:
                raise ValueError(f"{model_name}: unsupported quantization {quant['dtype']} for {name}")
            offset += nbytes
            if name in weights:
                raise ValueError(f"{model_name}: duplicate weight {name}")
            weights[name] = values.reshape(shape)
        if offset != len(buf):
            raise ValueError(f"{model_name}: manifest describes {offset} bytes, files hold {len(buf)}")
    return weights, digest.hexdigest()


class Weights:
    """Tracks which manifest entries were consumed, so nothing is silently ignored."""

    def __init__(self, model_dir, model_name):
        self.model_name = model_name
        self.values, self.sha256 = load_weights(model_dir, model_name)
        self.used = set()

    def __call__(self, name, shape=None):
        if name not in self.values:
            raise KeyError(f"{self.model_name}: missing weight {name}")
        value = self.values[name]
        if shape is not None and tuple(value.shape) != tuple(shape):
            raise ValueError(f"{self.model_name}: {name} has shape {value.shape}, expected {shape}")
        self.used.add(name)
        return value

    def check_all_used(self):
        unused = sorted(set(self.values) - self.used)
        if unused:
            raise ValueError(f"{self.model_name}: unused weights {unused}")


def hwio_to_oihw(w):
    return np.ascontiguousarray(np.transpose(w, (3, 2, 0, 1)), dtype=np.float32)


def depthwise_to_oihw(w):
    # TF depthwise filter [H, W, C, multiplier=1] -> ONNX grouped conv [C, 1, H, W]
    if w.shape[3] != 1:
        raise ValueError("only depthwise multiplier 1 is supported")
    return np.ascontiguousarray(np.transpose(w, (2, 3, 0, 1)), dtype=np.float32)


def same_pads(size, kernel, stride):
    """TF 'same': out = ceil(in/stride); extra padding goes after (bottom/right)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    before = total // 2
    return out, before, total - before


def valid_out(size, kernel, stride):
    return (size - kernel) // stride + 1


# --------------------------------------------------------------------------------------------
# graph builder


class Graph:
    def __init__(self, name):
        self.name = name
        self.nodes = []
        self.initializers = []
        self.names = set()
        self.counts = {}

    def _unique(self, name):
        if name in self.names:
            raise ValueError(f"duplicate name {name}")
        self.names.add(name)
        return name

    def const(self, name, array, dtype=np.float32):
        array = np.ascontiguousarray(np.asarray(array, dtype=dtype))
        self.initializers.append(numpy_helper.from_array(array, self._unique(name)))
        return name

    def op(self, op_type, inputs, prefix, out=None, **attrs):
        if out is not None:
            # graph outputs: node and tensor share the name (tract reports node names)
            node_name = output = self._unique(out)
        else:
            n = self.counts.get((prefix, op_type), 0)
            self.counts[(prefix, op_type)] = n + 1
            node_name = output = self._unique(f"{prefix}/{op_type}" + (f"_{n}" if n else ""))
        self.nodes.append(helper.make_node(op_type, list(inputs), [output], name=node_name, **attrs))
        return output

    # ---- layers (all activations are NCHW; `size` is the square spatial size) ----

    def conv(self, x, prefix, weight, bias, stride=1, pads=(0, 0, 0, 0), group=1):
        """weight is ONNX OIHW float32; pads = (top, left, bottom, right)."""
        inputs = [x, self.const(prefix + ".weight", weight)]
        if bias is not None:
            inputs.append(self.const(prefix + ".bias", bias))
        k = weight.shape[2:]
        return self.op(
            "Conv", inputs, prefix,
            kernel_shape=[int(k[0]), int(k[1])], strides=[stride, stride],
            pads=[int(p) for p in pads], dilations=[1, 1], group=group,
        )

    def relu(self, x, prefix):
        return self.op("Relu", [x], prefix)

    def add(self, a, b, prefix):
        return self.op("Add", [a, b], prefix)

    def normalize(self, x):
        mean = self.const("input.mean_rgb", np.array(MEAN_RGB, dtype=np.float32).reshape(1, 3, 1, 1))
        inv = self.const("input.inv_255", np.array(1.0 / 255.0, dtype=np.float32))
        return self.op("Mul", [self.op("Sub", [x, mean], "normalize"), inv], "normalize")

    def dense(self, x, prefix, weight, bias, out=None):
        """x [1, Cin] @ weight [Cin, Cout] (+ bias) as face-api.js fullyConnectedLayer."""
        y = self.op("MatMul", [x, self.const(prefix + ".weight", weight)], prefix,
                    out=out if bias is None else None)
        if bias is None:
            return y
        return self.op("Add", [y, self.const(prefix + ".bias", bias.reshape(1, -1))], prefix, out=out)

    def global_pool_flatten(self, x, prefix):
        y = self.op("GlobalAveragePool", [x], prefix)
        return self.op("Flatten", [y], prefix, axis=1)

    def build(self, input_size, outputs, doc, metadata):
        graph = helper.make_graph(
            self.nodes,
            self.name,
            [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, input_size, input_size])],
            [helper.make_tensor_value_info(name, TensorProto.FLOAT, shape) for name, shape in outputs],
            initializer=self.initializers,
        )
        model = helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid("", OPSET)],
            ir_version=IR_VERSION,
            producer_name="models/convert/faceapi.py",
            producer_version="1",
            doc_string=doc,
        )
        for key, value in metadata:
            entry = model.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.checker.check_model(model, full_check=True)
        return model


def separable_conv(g, x, size, W, prefix, stride):
    """tf.separableConv2d(x, depthwise, pointwise, stride, 'same') + bias."""
    dw = depthwise_to_oihw(W(prefix + "/depthwise_filter"))
    pw = hwio_to_oihw(W(prefix + "/pointwise_filter"))
    bias = W(prefix + "/bias", (pw.shape[0],))
    out_size, before, after = same_pads(size, dw.shape[2], stride)
    name = prefix.replace("/", ".")
    y = g.conv(x, name + ".depthwise", dw, None, stride, (before, before, after, after), group=dw.shape[0])
    y = g.conv(y, name + ".pointwise", pw, bias)
    return y, out_size


def same_conv(g, x, size, W, prefix, stride):
    """tf.conv2d(x, filters, stride, 'same') + bias."""
    w = hwio_to_oihw(W(prefix + "/filters"))
    bias = W(prefix + "/bias", (w.shape[0],))
    out_size, before, after = same_pads(size, w.shape[2], stride)
    y = g.conv(x, prefix.replace("/", "."), w, bias, stride, (before, before, after, after))
    return y, out_size


# --------------------------------------------------------------------------------------------
# FaceRecognitionNet (src/faceRecognitionNet: dlib ResNet-29 port)


def recognition(model_dir):
    W = Weights(model_dir, "face_recognition_model")
    g = Graph("faceapi_recognition")

    def conv_layer(x, size, prefix, stride, relu, padding):
        # convLayer: conv2d(stride, padding) + bias, then scale (x * weights + biases), opt. relu.
        # The affine scale is folded into the convolution: (conv(x, w) + b) * s + t.
        w = W(prefix + "/conv/filters").astype(np.float64)
        b = W(prefix + "/conv/bias").astype(np.float64)
        s = W(prefix + "/scale/weights", b.shape).astype(np.float64)
        t = W(prefix + "/scale/biases", b.shape).astype(np.float64)
        w_folded = hwio_to_oihw((w * s).astype(np.float32))
        b_folded = (b * s + t).astype(np.float32)
        k = w_folded.shape[2]
        if padding == "same":
            out_size, before, after = same_pads(size, k, stride)
            pads = (before, before, after, after)
        else:
            out_size, pads = valid_out(size, k, stride), (0, 0, 0, 0)
        name = prefix.replace("/", ".")
        y = g.conv(x, name, w_folded, b_folded, stride, pads)
        return (g.relu(y, name) if relu else y), out_size, w_folded.shape[0]

    def residual(x, size, prefix):
        y, _, _ = conv_layer(x, size, prefix + "/conv1", 1, True, "same")
        y, _, _ = conv_layer(y, size, prefix + "/conv2", 1, False, "same")
        name = prefix.replace("/", ".")
        return g.relu(g.add(y, x, name), name), size

    def residual_down(x, size, channels, prefix):
        name = prefix.replace("/", ".")
        y, out_size, out_channels = conv_layer(x, size, prefix + "/conv1", 2, True, "valid")
        y, _, _ = conv_layer(y, out_size, prefix + "/conv2", 1, False, "same")
        pooled = g.op("AveragePool", [x], name, kernel_shape=[2, 2], strides=[2, 2])
        pooled_size = valid_out(size, 2, 2)
        if pooled_size != out_size:
            # face-api.js concatenates a zero row (bottom) and a zero column (right) to `out`
            grow = pooled_size - out_size
            if grow != 1:
                raise ValueError("unexpected residualDown shape mismatch")
            pads = g.const(name + ".pad_hw", np.array([0, 0, 0, 0, 0, 0, 1, 1], dtype=np.int64), np.int64)
            y = g.op("Pad", [y, pads], name, mode="constant")
        if channels != out_channels:
            # ... and zero channels after the pooled shortcut
            pads = g.const(name + ".pad_c",
                           np.array([0, 0, 0, 0, 0, out_channels - channels, 0, 0], dtype=np.int64), np.int64)
            pooled = g.op("Pad", [pooled, pads], name, mode="constant")
        return g.relu(g.add(pooled, y, name), name), pooled_size, out_channels

    x = g.normalize("input")
    size = 150
    x, size, ch = conv_layer(x, size, "conv32_down", 2, True, "valid")
    x = g.op("MaxPool", [x], "maxpool", kernel_shape=[3, 3], strides=[2, 2])
    size = valid_out(size, 3, 2)
    for prefix in ("conv32_1", "conv32_2", "conv32_3"):
        x, size = residual(x, size, prefix)
    x, size, ch = residual_down(x, size, ch, "conv64_down")
    for prefix in ("conv64_1", "conv64_2", "conv64_3"):
        x, size = residual(x, size, prefix)
    x, size, ch = residual_down(x, size, ch, "conv128_down")
    for prefix in ("conv128_1", "conv128_2"):
        x, size = residual(x, size, prefix)
    x, size, ch = residual_down(x, size, ch, "conv256_down")
    for prefix in ("conv256_1", "conv256_2"):
        x, size = residual(x, size, prefix)
    x, size, ch = residual_down(x, size, ch, "conv256_down_out")
    x = g.global_pool_flatten(x, "global_avg")  # out.mean([1, 2])
    g.dense(x, "fc", W("fc", (256, 128)), None, out="embedding")
    W.check_all_used()
    return g.build(
        150, [("embedding", [1, 128])],
        "face-api.js FaceRecognitionNet. input: [1,3,150,150] RGB 0..255 NCHW. "
        "output embedding: [1,128] raw face descriptor (not L2-normalised).",
        [("source", SOURCE + " face_recognition_model"), ("weights_sha256", W.sha256)],
    )


# --------------------------------------------------------------------------------------------
# FaceFeatureExtractor (4 dense blocks) + fc: FaceLandmark68Net and FaceExpressionNet


def dense_block4(g, x, size, W, prefix, first):
    name = prefix
    if first:
        out1, size = same_conv(g, x, size, W, prefix + "/conv0", 2)
    else:
        out1, size = separable_conv(g, x, size, W, prefix + "/conv0", 2)
    out1 = g.relu(out1, name)
    out2, _ = separable_conv(g, out1, size, W, prefix + "/conv1", 1)
    in3 = g.relu(g.add(out1, out2, name), name)
    out3, _ = separable_conv(g, in3, size, W, prefix + "/conv2", 1)
    in4 = g.relu(g.add(out1, g.add(out2, out3, name), name), name)
    out4, _ = separable_conv(g, in4, size, W, prefix + "/conv3", 1)
    s = g.add(out2, g.add(out3, out4, name), name)
    return g.relu(g.add(out1, s, name), name), size


def feature_extractor(g, W):
    x = g.normalize("input")
    size = 112
    x, size = dense_block4(g, x, size, W, "dense0", True)
    x, size = dense_block4(g, x, size, W, "dense1", False)
    x, size = dense_block4(g, x, size, W, "dense2", False)
    x, size = dense_block4(g, x, size, W, "dense3", False)
    # tf.avgPool(out, [7, 7], [2, 2], 'valid') on a 7x7 map == global average
    if size != 7:
        raise ValueError("feature map is not 7x7")
    return g.global_pool_flatten(x, "avgpool")


def landmark68(model_dir):
    W = Weights(model_dir, "face_landmark_68_model")
    g = Graph("faceapi_landmark68")
    x = feature_extractor(g, W)
    g.dense(x, "fc", W("fc/weights", (256, 136)), W("fc/bias", (136,)), out="landmarks")
    W.check_all_used()
    return g.build(
        112, [("landmarks", [1, 136])],
        "face-api.js FaceLandmark68Net. input: [1,3,112,112] RGB 0..255 NCHW (square crop). "
        "output landmarks: [1,136] x0,y0,...,x67,y67 as fractions of the input width/height.",
        [("source", SOURCE + " face_landmark_68_model"), ("weights_sha256", W.sha256)],
    )


def expression(model_dir):
    W = Weights(model_dir, "face_expression_model")
    g = Graph("faceapi_expression")
    x = feature_extractor(g, W)
    logits = g.dense(x, "fc", W("fc/weights", (256, 7)), W("fc/bias", (7,)))
    g.op("Softmax", [logits], "softmax", out="expressions", axis=-1)
    W.check_all_used()
    return g.build(
        112, [("expressions", [1, 7])],
        "face-api.js FaceExpressionNet. input: [1,3,112,112] RGB 0..255 NCHW. output expressions: "
        "[1,7] softmax over neutral, happy, sad, angry, fearful, disgusted, surprised.",
        [("source", SOURCE + " face_expression_model"), ("weights_sha256", W.sha256),
         ("labels", "neutral,happy,sad,angry,fearful,disgusted,surprised")],
    )


# --------------------------------------------------------------------------------------------
# TinyXception(2) + age/gender heads: AgeGenderNet


def age_gender(model_dir):
    W = Weights(model_dir, "age_gender_model")
    g = Graph("faceapi_age_gender")

    def reduction_block(x, size, prefix, activate_input):
        name = prefix.replace("/", ".")
        y = g.relu(x, name) if activate_input else x
        y, _ = separable_conv(g, y, size, W, prefix + "/separable_conv0", 1)
        y, _ = separable_conv(g, g.relu(y, name), size, W, prefix + "/separable_conv1", 1)
        out_size, before, after = same_pads(size, 3, 2)
        # TF 'same' max pooling ignores the padding, as ONNX MaxPool does
        y = g.op("MaxPool", [y], name, kernel_shape=[3, 3], strides=[2, 2],
                 pads=[before, before, after, after])
        shortcut, shortcut_size = same_conv(g, x, size, W, prefix + "/expansion_conv", 2)
        if shortcut_size != out_size:
            raise ValueError("reduction block shape mismatch")
        return g.add(y, shortcut, name), out_size

    def main_block(x, size, prefix):
        name = prefix.replace("/", ".")
        y, _ = separable_conv(g, g.relu(x, name), size, W, prefix + "/separable_conv0", 1)
        y, _ = separable_conv(g, g.relu(y, name), size, W, prefix + "/separable_conv1", 1)
        y, _ = separable_conv(g, g.relu(y, name), size, W, prefix + "/separable_conv2", 1)
        return g.add(y, x, name)

    x = g.normalize("input")
    size = 112
    x, size = same_conv(g, x, size, W, "entry_flow/conv_in", 2)
    x = g.relu(x, "entry_flow.conv_in")
    x, size = reduction_block(x, size, "entry_flow/reduction_block_0", False)
    x, size = reduction_block(x, size, "entry_flow/reduction_block_1", True)
    for i in range(2):
        x = main_block(x, size, f"middle_flow/main_block_{i}")
    x, size = reduction_block(x, size, "exit_flow/reduction_block", True)
    x, _ = separable_conv(g, x, size, W, "exit_flow/separable_conv", 1)
    x = g.relu(x, "exit_flow.separable_conv")
    if size != 7:
        raise ValueError("feature map is not 7x7")
    pooled = g.global_pool_flatten(x, "avgpool")  # tf.avgPool([7,7], [2,2], 'valid') on 7x7
    g.dense(pooled, "fc.age", W("fc/age/weights", (512, 1)), W("fc/age/bias", (1,)), out="age")
    logits = g.dense(pooled, "fc.gender", W("fc/gender/weights", (512, 2)), W("fc/gender/bias", (2,)))
    g.op("Softmax", [logits], "softmax", out="gender", axis=-1)
    W.check_all_used()
    return g.build(
        112, [("age", [1, 1]), ("gender", [1, 2])],
        "face-api.js AgeGenderNet. input: [1,3,112,112] RGB 0..255 NCHW. output age: [1,1] years; "
        "output gender: [1,2] softmax, index 0 = male, index 1 = female.",
        [("source", SOURCE + " age_gender_model"), ("weights_sha256", W.sha256),
         ("gender_labels", "male,female")],
    )


# --------------------------------------------------------------------------------------------

OUTPUTS = (
    ("faceapi_recognition.onnx", recognition),
    ("faceapi_landmark68.onnx", landmark68),
    ("faceapi_age_gender.onnx", age_gender),
    ("faceapi_expression.onnx", expression),
)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", required=True, help="face-api.js model/ folder (manifests + .bin)")
    parser.add_argument("--out", required=True, help="output folder")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    for filename, build in OUTPUTS:
        model = build(args.model_dir)
        data = model.SerializeToString(deterministic=True)
        path = os.path.join(args.out, filename)
        with open(path, "wb") as f:
            f.write(data)
        print(f"{path} {hashlib.sha256(data).hexdigest()} {len(data)} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
