"""onnxruntime side of `cargo xtask bench`: median ms per model call, one thread, same ONNX files.

    python bench_ort.py MODELS_DIR RUNS
Prints one JSON object: {file: median_ms}. Inputs are the same shapes the engine feeds, filled
with a fixed ramp of pixel values (timing does not depend on the values).
"""
import json
import os
import statistics
import sys
import time

import numpy as np
import onnxruntime as ort

MODELS = {
    "face_detection_yunet_2023mar.onnx": (1, 3, 480, 640),  # the engine's input for a 640x480 photo
    "face_recognition_sface_2021dec.onnx": (1, 3, 112, 112),
    "faceapi_recognition.onnx": (1, 3, 150, 150),
    "faceapi_landmark68.onnx": (1, 3, 112, 112),
    "faceapi_age_gender.onnx": (1, 3, 112, 112),
    "faceapi_expression.onnx": (1, 3, 112, 112),
}


def ramp(shape):
    n = int(np.prod(shape))
    return (np.arange(n, dtype=np.float32) % 256).reshape(shape)


def main():
    models_dir, runs = sys.argv[1], int(sys.argv[2])
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    result = {}
    for name, shape in MODELS.items():
        session = ort.InferenceSession(os.path.join(models_dir, name), options, providers=["CPUExecutionProvider"])
        feed = {session.get_inputs()[0].name: ramp(shape)}
        for _ in range(3):
            session.run(None, feed)
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            session.run(None, feed)
            times.append((time.perf_counter() - start) * 1e3)
        result[name] = statistics.median(times)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
