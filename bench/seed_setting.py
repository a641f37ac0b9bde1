"""The notebook's model on this CPU: depth 6, 16 filters doubling without a cap, 1024-px patches.

Builds that U-Net, compiles it as aerialseg trains it (Dice + focal loss, its metrics,
float32 on CPU), runs a few training steps on one 1024 x 1024 synthetic tile at a time and
prints one JSON line: seconds per step (median after the first, which traces), the
process's peak resident memory, the forward FLOPs of one tile, and an *estimate* (not a
measurement) of a GPU's step time from those FLOPs at an assumed share of its peak.

    python bench/seed_setting.py [--steps 4] [--batch 1] [--size 1024]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from bench_record import add_out_option, emit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

# Assumptions of the GPU estimate, printed with it: H100 SXM dense peaks (NVIDIA's data
# sheet) and the share of peak a U-Net's convolutions typically reach (an assumption).
GPU = {"name": "H100 SXM", "fp32_tflops": 67.0, "fp16_tensor_tflops": 989.0, "assumed_share_of_peak": 0.3}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--size", type=int, default=1024)
    add_out_option(parser)
    args = parser.parse_args()

    from aerialseg.core.config.params import ModelParams, load_params
    from aerialseg.train.compiling import TrainConfig, compile_model, make_deterministic
    from aerialseg.train.model import build_unet
    from train import forward_flops  # bench/train.py

    params = load_params(ROOT / "params.yaml")
    model_params = ModelParams(depth=6, base_filters=16, max_filters=None, batch_norm=params.model.batch_norm)
    config = TrainConfig(epochs=1, batch_size=args.batch, checkpoint_epochs=[1], seed=params.seed,
                         model=model_params, train=params.train, class_names=params.classes.names)
    baseline_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    make_deterministic(params.seed)
    model = compile_model(config, steps_per_epoch=1)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (args.batch, args.size, args.size, 3)).astype(np.float32)
    masks = rng.integers(0, 6, (args.batch, args.size, args.size)).astype(np.int32)
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        model.train_on_batch(images, masks)
        times.append(time.perf_counter() - start)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    forward = forward_flops(build_unet(6, 6, 16, input_size=args.size))  # fixed size: every shape known
    train_flop = 3 * forward * args.batch  # forward + backward, about twice the forward
    share = GPU["assumed_share_of_peak"]
    emit({
        "model": {"depth": 6, "base_filters": 16, "max_filters": None, "params": model.count_params()},
        "size": args.size, "batch": args.batch, "steps": args.steps,
        "cpu_step_s": round(statistics.median(times[1:] or times), 2), "first_step_s": round(times[0], 2),
        "peak_rss_mb": round(peak_mb), "rss_before_model_mb": round(baseline_mb),
        "forward_gflop_per_tile": round(forward / 1e9, 1),
        "gpu_estimate": {**GPU,
                         "fp32_step_ms": round(1e3 * train_flop / (GPU["fp32_tflops"] * 1e12 * share), 1),
                         "mixed_float16_step_ms": round(1e3 * train_flop / (GPU["fp16_tensor_tflops"] * 1e12 * share),
                                                        1)},
    }, args.out)


if __name__ == "__main__":
    main()
