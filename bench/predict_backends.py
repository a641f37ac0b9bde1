"""Prediction backends on this CPU: Keras/TensorFlow vs ONNX Runtime, same model, same windows.

Builds the default-params model (seeded weights; speed does not depend on training),
exports it to ONNX with ``aerialseg.predict.export``, checks both backends agree, then times
``predict_on_batch`` over the same windows in alternating repeats. Prints one JSON line:

  {"windows": ..., "window": 128, "batch": 16, "keras_windows_per_s": ..., "onnx_windows_per_s": ...,
   "onnx_over_keras": ..., "max_abs_diff": ..., "repeats": ..., ...}

``onnx_over_keras`` > 1.10 is the measured reason ``aerialseg predict`` runs a Keras checkpoint
through ONNX Runtime on CPU (``--backend auto``).

    python bench/predict_backends.py [--windows 256] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    from aerialseg.core.framework import keras
    from aerialseg.core.params import load_params
    from aerialseg.predict.export import export_model
    from aerialseg.predict.onnx_model import OnnxSegmenter
    from aerialseg.train.compiling import build_model

    params = load_params(ROOT / "params.yaml")
    window, batch = params.predict.window, params.predict.batch_size
    keras.utils.set_random_seed(params.seed)
    model = build_model(params.model)
    windows = np.random.default_rng(0).integers(0, 256, (args.windows, window, window, 3)).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = Path(tmp) / "model.keras"
        model.save(checkpoint)
        export_model(checkpoint, Path(tmp) / "model.onnx", "onnx", gsd_m=None, window=window, subdivisions=2, tta="d4")
        onnx_model = OnnxSegmenter(Path(tmp) / "model.onnx")

        def run(backend) -> float:
            start = time.perf_counter()
            for i in range(0, len(windows), batch):
                backend.predict_on_batch(windows[i:i + batch])
            return time.perf_counter() - start

        diff = float(np.abs(np.asarray(model.predict_on_batch(windows[:batch]))
                            - onnx_model.predict_on_batch(windows[:batch])).max())
        run(model), run(onnx_model)  # warm-up: tracing, graph optimisation, thread pools
        keras_s, onnx_s = [], []
        for _ in range(args.repeats):
            keras_s.append(run(model))
            onnx_s.append(run(onnx_model))
    keras_t, onnx_t = statistics.median(keras_s), statistics.median(onnx_s)
    print(json.dumps({
        "windows": args.windows, "window": window, "batch": batch, "repeats": args.repeats,
        "keras_windows_per_s": round(args.windows / keras_t, 1), "onnx_windows_per_s": round(args.windows / onnx_t, 1),
        "onnx_over_keras": round(keras_t / onnx_t, 3),
        "run_ratios": [round(k / o, 3) for k, o in zip(keras_s, onnx_s, strict=True)],
        "max_abs_diff": diff, "cores": len(os.sched_getaffinity(0)),
        "model": {"encoder": params.model.encoder, "depth": params.model.depth,
                  "base_filters": params.model.base_filters, "max_filters": params.model.max_filters},
    }))


if __name__ == "__main__":
    main()
