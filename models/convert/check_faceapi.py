"""Validate faceapi.py's ONNX files against the real face-api.js (developer tool, not run in CI).

It converts the weights twice (the two runs must be byte-identical), checks the graphs (opset,
IR version, op set, input/output names and shapes, weights as initializers), then feeds the same
input tensors to face-api.js (Node, tfjs CPU backend, via check_faceapi.mjs), to onnxruntime and,
when the `tract` Python package (tract 0.23.9, the project's runtime) is importable, to tract, and
reports the largest differences per output. Exits 1 if any relative difference exceeds 1e-3.

Inputs: a spread of aligned 200x200 UTKFace chips from ../shared/data/agegender (bilinear-resized
with Pillow to 150 and 112) and face-api.js's own 150x150 Big Bang Theory crops from
../shared/data/verification/images/faceapi_bbt (8 people x 5), which also give same-person vs
different-person descriptor distances.

Setup (once; npm and PyPI only):
    mkdir -p /tmp/faceapi-check && cd /tmp/faceapi-check && npm init -y && npm install \
        @vladmandic/face-api@1.7.15 @tensorflow/tfjs@4.22.0 @tensorflow/tfjs-backend-wasm@4.22.0
    python3.11 -m venv /tmp/faceapi-venv && /tmp/faceapi-venv/bin/pip install \
        -r models/convert/requirements.txt onnxruntime pillow tract==0.23.9
Run (from the repo root):
    /tmp/faceapi-venv/bin/python models/convert/check_faceapi.py [--node-dir /tmp/faceapi-check]
        [--model-dir DIR (default: NODE_DIR/node_modules/@vladmandic/face-api/model)] [-n 12]
"""
import argparse
import csv
import hashlib
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx
import onnxruntime as ort
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import faceapi  # noqa: E402

ALLOWED_OPS = {
    "Conv", "Add", "Mul", "Sub", "Relu", "MaxPool", "AveragePool", "GlobalAveragePool", "Gemm",
    "MatMul", "Reshape", "Flatten", "Softmax", "Concat", "Pad", "Clip", "Transpose", "Sigmoid",
}
NETS = {
    # net: (file, input size, [(output, shape)])
    "recognition": ("faceapi_recognition.onnx", 150, [("embedding", [1, 128])]),
    "landmark68": ("faceapi_landmark68.onnx", 112, [("landmarks", [1, 136])]),
    "age_gender": ("faceapi_age_gender.onnx", 112, [("age", [1, 1]), ("gender", [1, 2])]),
    "expression": ("faceapi_expression.onnx", 112, [("expressions", [1, 7])]),
}
TOLERANCE = 1e-3


def convert_twice(model_dir, out_dir):
    digests = []
    for run in ("a", "b"):
        d = os.path.join(out_dir, run)
        with open(os.devnull, "w") as devnull:
            stdout, sys.stdout = sys.stdout, devnull
            try:
                faceapi.main(["--model-dir", model_dir, "--out", d])
            finally:
                sys.stdout = stdout
        digests.append({f: hashlib.sha256(open(os.path.join(d, f), "rb").read()).hexdigest()
                        for f, _, _ in NETS.values()})
    for f in sorted(digests[0]):
        same = digests[0][f] == digests[1][f]
        print(f"  {f}: {digests[0][f]} {'(identical on rerun)' if same else 'DIFFERS ON RERUN ' + digests[1][f]}")
        if not same:
            raise SystemExit("conversion is not deterministic")
    return os.path.join(out_dir, "a")


def check_graph(path, size, outputs):
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    ops = sorted({n.op_type for n in model.graph.node})
    bad = sorted(set(ops) - ALLOWED_OPS)
    opset = {o.domain: o.version for o in model.opset_import}
    inits = {i.name for i in model.graph.initializer}
    inputs = [(i.name, [d.dim_value for d in i.type.tensor_type.shape.dim]) for i in model.graph.input]
    outs = [(o.name, [d.dim_value for d in o.type.tensor_type.shape.dim]) for o in model.graph.output]
    dtypes = sorted({onnx.helper.tensor_dtype_to_np_dtype(i.data_type).name for i in model.graph.initializer})
    problems = []
    if bad:
        problems.append(f"ops outside the allowed set: {bad}")
    if opset != {"": 17} or model.ir_version != 8:
        problems.append(f"opset {opset} ir {model.ir_version}")
    if inputs != [("input", [1, 3, size, size])] or any(n in inits for n, _ in inputs):
        problems.append(f"inputs {inputs}")
    if outs != outputs:
        problems.append(f"outputs {outs}")
    print(f"  {os.path.basename(path)}: {len(model.graph.node)} nodes, ops {ops}, initializer dtypes {dtypes}"
          + (f"  PROBLEMS: {problems}" if problems else ""))
    return not problems


def load_rgb(path, size):
    img = Image.open(path).convert("RGB")
    if img.size != (size, size):
        img = img.resize((size, size), Image.BILINEAR)
    return np.asarray(img, dtype=np.float32)  # HWC, RGB, 0..255


def pick_images(data_dir, n):
    with open(os.path.join(data_dir, "agegender", "LABELS.csv"), newline="") as f:
        rows = sorted(csv.DictReader(f), key=lambda r: r["path"])
    step = max(1, len(rows) // n)
    chosen = rows[::step][:n]
    items = [{"id": "agegender/" + os.path.basename(r["path"]), "path": os.path.join(data_dir, "agegender", r["path"]),
              "age": float(r["age"]), "gender": r["gender"], "identity": None} for r in chosen]
    with open(os.path.join(data_dir, "verification", "LABELS.csv"), newline="") as f:
        for r in sorted(csv.DictReader(f), key=lambda r: r["path"]):
            if "/faceapi_bbt/" in r["path"]:
                items.append({"id": "bbt/" + os.path.basename(r["path"]),
                              "path": os.path.join(data_dir, "verification", r["path"]),
                              "age": None, "gender": None, "identity": r["identity"]})
    return items


def try_tract():
    try:
        import tract  # noqa: F401
        return tract
    except ImportError:
        return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--node-dir", default="/tmp/faceapi-check")
    parser.add_argument("--model-dir", default=None)
    parser.add_argument("--data-dir", default=os.path.join(os.path.dirname(REPO), "shared", "data"))
    parser.add_argument("-n", type=int, default=12, help="number of agegender images")
    args = parser.parse_args()
    model_dir = args.model_dir or os.path.join(args.node_dir, "node_modules", "@vladmandic", "face-api", "model")

    work = tempfile.mkdtemp(prefix="faceapi-check-")
    print("conversion (two runs):")
    onnx_dir = convert_twice(model_dir, work)
    print("graphs:")
    ok = all([check_graph(os.path.join(onnx_dir, f), s, o) for f, s, o in NETS.values()])

    items = pick_images(args.data_dir, args.n)
    request = []
    tensors = {}
    for item in items:
        for net, (_, size, _) in NETS.items():
            x = load_rgb(item["path"], size)
            key = f"{net}:{item['id']}"
            raw = os.path.join(work, f"in{len(request)}.f32")
            x.astype("<f4").tofile(raw)
            tensors[key] = np.ascontiguousarray(x.transpose(2, 0, 1)[None])  # NCHW
            request.append({"id": key, "net": net, "size": size, "file": raw})
    with open(os.path.join(work, "request.json"), "w") as f:
        json.dump(request, f)
    result_path = os.path.join(work, "result.json")
    subprocess.run(["node", os.path.join(HERE, "check_faceapi.mjs"), args.node_dir, model_dir,
                    os.path.join(work, "request.json"), result_path], check=True,
                   stdout=subprocess.DEVNULL)
    with open(result_path) as f:
        ref = json.load(f)
    print(f"reference: face-api.js {ref['version']}, tfjs {ref['tfjs']} backend {ref['backend']}; "
          f"{len(items)} images ({sum(i['identity'] is None for i in items)} agegender, "
          f"{sum(i['identity'] is not None for i in items)} faceapi_bbt)")

    tract = try_tract()
    runners = {"onnxruntime": {}}
    if tract is not None:
        runners["tract " + tract.version()] = {}
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    for net, (fname, _, _) in NETS.items():
        path = os.path.join(onnx_dir, fname)
        runners["onnxruntime"][net] = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        if tract is not None:
            runners["tract " + tract.version()][net] = tract.onnx().load(path).into_model().into_runnable()

    outputs = {}  # (runner, net, item id) -> {output: array}
    for rname, sessions in runners.items():
        for net, (_, _, outs) in NETS.items():
            for item in items:
                x = tensors[f"{net}:{item['id']}"]
                if rname == "onnxruntime":
                    vals = sessions[net].run([o for o, _ in outs], {"input": x})
                else:
                    vals = [v.to_numpy() for v in sessions[net].run([x])]
                outputs[(rname, net, item["id"])] = {o: np.asarray(v).reshape(-1) for (o, _), v in zip(outs, vals)}

    print(f"max |difference| to face-api.js over all images (relative = / max |face-api.js value|), tolerance {TOLERANCE}:")
    for rname in runners:
        for net, (_, _, outs) in NETS.items():
            for o, _ in outs:
                diff, scale = 0.0, 0.0
                for item in items:
                    r = np.asarray(ref["results"][f"{net}:{item['id']}"][o], dtype=np.float64)
                    v = outputs[(rname, net, item["id"])][o].astype(np.float64)
                    diff = max(diff, float(np.abs(v - r).max()))
                    scale = max(scale, float(np.abs(r).max()))
                rel = diff / scale
                ok &= rel <= TOLERANCE
                print(f"  {rname:14s} {net:11s} {o:11s} max abs {diff:.3e}  max |ref| {scale:8.3f}  rel {rel:.3e}")

    # extra face-api.js consistency: predict*/detect* helpers agree with the raw tensors compared above
    for item in items:
        r = ref["results"]
        lm = r[f"landmark68:{item['id']}"]
        assert np.allclose(np.array(lm["positions"]), np.array(lm["landmarks"]) * 112, atol=1e-3)
        ag = r[f"age_gender:{item['id']}"]
        assert (ag["predicted"]["gender"] == "male") == (ag["gender"][0] > 0.5)
        assert abs(ag["predicted"]["age"] - ag["age"][0]) < 1e-4

    ort_out = {k[1:]: v for k, v in outputs.items() if k[0] == "onnxruntime"}
    ag_items = [i for i in items if i["identity"] is None]
    ages = np.array([ort_out[("age_gender", i["id"])]["age"][0] for i in ag_items])
    true_ages = np.array([i["age"] for i in ag_items])
    male = [ort_out[("age_gender", i["id"])]["gender"][0] > 0.5 for i in ag_items]
    gender_ok = sum(m == (i["gender"] == "male") for m, i in zip(male, ag_items))
    print(f"sanity (onnxruntime, agegender images): age MAE {np.abs(ages - true_ages).mean():.1f} years, "
          f"gender (index 0 = male) correct {gender_ok}/{len(ag_items)}")
    labels = "neutral,happy,sad,angry,fearful,disgusted,surprised".split(",")
    top = [labels[int(np.argmax(ort_out[("expression", i["id"])]["expressions"]))] for i in items]
    print("  top expressions:", {lab: top.count(lab) for lab in labels if top.count(lab)})

    bbt = [i for i in items if i["identity"] is not None]
    same, diff = [], []
    for a in range(len(bbt)):
        for b in range(a + 1, len(bbt)):
            d = float(np.linalg.norm(ort_out[("recognition", bbt[a]["id"])]["embedding"]
                                     - ort_out[("recognition", bbt[b]["id"])]["embedding"]))
            (same if bbt[a]["identity"] == bbt[b]["identity"] else diff).append(d)
    same, diff = np.array(same), np.array(diff)
    if len(same) and len(diff):
        acc = ((same < 0.6).sum() + (diff >= 0.6).sum()) / (len(same) + len(diff))
        print(f"recognition on faceapi_bbt ({len(bbt)} crops): same-person distance mean {same.mean():.3f} "
              f"[{same.min():.3f}..{same.max():.3f}] (n={len(same)}), different-person mean {diff.mean():.3f} "
              f"[{diff.min():.3f}..{diff.max():.3f}] (n={len(diff)}); pairs right at face-api.js's 0.6: {acc:.1%}")
        norms = [float(np.linalg.norm(ort_out[("recognition", i["id"])]["embedding"])) for i in items]
        print(f"  descriptor L2 norms {min(norms):.3f}..{max(norms):.3f} (not normalised)")
    print("RESULT:", "PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
