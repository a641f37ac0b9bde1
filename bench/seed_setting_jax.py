"""The notebook's U-Net step on a machine with Keras 3 and JAX but no TensorFlow (a GPU box).

Times ``aerialseg.train.model.build_unet`` (depth 6, 16 filters doubling without a cap, 1024²
tiles) with Keras on the JAX backend: ``aerialseg.core.framework`` (which imports TensorFlow) is
replaced by a stand-in that hands out plain ``keras``, and the loss is Keras' sparse
cross-entropy (aerialseg's Dice + focal loss is written against TensorFlow). So it measures
the architecture, not aerialseg's training loop. One configuration per process (the GPU's
peak memory is per process); prints one JSON line.

    python bench/seed_setting_jax.py float32|mixed_float16|mixed_bfloat16 BATCH
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
import types
from pathlib import Path

os.environ["KERAS_BACKEND"] = "jax"
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def main() -> None:
    import jax
    import keras
    import numpy as np

    policy, batch = sys.argv[1], int(sys.argv[2])
    stand_in = types.ModuleType("aerialseg.core.framework")
    stand_in.keras, stand_in.tf = keras, None
    sys.modules["aerialseg.core.framework"] = stand_in
    from aerialseg.train.model import build_unet

    keras.mixed_precision.set_global_policy(policy)
    keras.utils.set_random_seed(0)
    model = build_unet(6, 6, 16, input_size=1024)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=keras.losses.SparseCategoricalCrossentropy(),
                  jit_compile=True)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (batch, 1024, 1024, 3)).astype("float32")
    masks = rng.integers(0, 6, (batch, 1024, 1024)).astype("int32")
    start = time.perf_counter()
    model.train_on_batch(images, masks)
    first = time.perf_counter() - start
    for _ in range(2):
        model.train_on_batch(images, masks)
    times = []
    for _ in range(10):
        start = time.perf_counter()
        float(np.asarray(model.train_on_batch(images, masks)))  # waits for the device
        times.append(time.perf_counter() - start)
    step = statistics.median(times)
    stats = jax.devices()[0].memory_stats() or {}
    print(json.dumps({"device": jax.devices()[0].device_kind, "keras": keras.__version__, "jax": jax.__version__,
                      "policy": policy, "batch": batch, "step_ms": round(1e3 * step, 1),
                      "ms_per_tile": round(1e3 * step / batch, 1), "first_step_s": round(first, 1),
                      "peak_gpu_gb": round(stats.get("peak_bytes_in_use", 0) / 2**30, 2)}))


if __name__ == "__main__":
    main()
