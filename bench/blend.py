"""Smooth blending: aerialseg vs the independent reference vs the floor (pure model calls).

Uses the deterministic bench U-Net and image of ``shared/bench/blend_bench.py`` (found
beside the repository, or at $AERIALSEG_SHARED/bench); in a clone without it, aerialseg's own
seeded U-Net and image, with the reference vendored in ``tests/reference``. Every measurement runs in its own
process so that peak RSS means something. Prints one JSON line per image size:

  {"size": 2048, "aerialseg_s": ..., "reference_s": ..., "floor_s": ...,
   "aerialseg_over_floor": ..., "reference_over_aerialseg": ..., "peak_rss_mb": {...}, ...}

``--stream SIZE`` adds a case that streams a SIZE x SIZE image from a memory map to a
class map on disk (the form for images larger than memory) and reports its peak RSS.

    python bench/blend.py                     # 1024 and 2048
    python bench/blend.py --sizes 2048 --stream 6000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_record import add_out_option, emit

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("AERIALSEG_SHARED", ROOT.parent / "shared"))


def has_harness() -> bool:
    """Whether the independent reference and its bench harness are there (beside the repository)."""
    return (SHARED / "bench" / "blend_bench.py").is_file()


class _OwnHarness:
    """Without the shared harness (a fresh clone): aerialseg's own seeded U-Net (3 levels, 8 filters) and a
    seeded image, blended by aerialseg, by the independent reference vendored in ``tests/reference``, and
    as bare model calls."""

    @staticmethod
    def build_unet(window: int, classes: int, seed: int = 0):
        from aerialseg.core.framework import keras
        from aerialseg.train.model import build_unet

        keras.utils.set_random_seed(seed)
        return build_unet(classes, 3, 8)

    @staticmethod
    def make_pred_func(model, batch_size: int = 32):
        import numpy as np

        return lambda x: model.predict(np.asarray(x, dtype=np.float32), batch_size=batch_size, verbose=0)

    @staticmethod
    def make_image(size: int, width: int | None = None, seed: int = 0):
        import cv2
        import numpy as np

        coarse = np.random.default_rng(seed).random((size // 64 + 2, (width or size) // 64 + 2, 3), np.float32)
        return cv2.resize(coarse, (width or size, size), interpolation=cv2.INTER_LINEAR)

    @property
    def ref_blend(self):
        sys.path.insert(0, str(ROOT / "tests" / "reference"))
        import ref_blend  # noqa: PLC0415

        return ref_blend


def _harness():
    if not has_harness():
        return _OwnHarness()
    sys.path.insert(0, str(SHARED / "bench"))
    import blend_bench  # noqa: PLC0415

    return blend_bench


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def worker(kind: str, size: int, window: int, subdivisions: int, batch: int) -> dict:
    """Run one measurement in this process; return its figures."""
    import numpy as np

    from aerialseg.predict.blending import blend_rows, count_windows, predict_smooth

    bench = _harness()
    model = bench.build_unet(window, 6, seed=0)
    predict = bench.make_pred_func(model, batch_size=batch)
    predict(np.zeros((2, window, window, 3), np.float32))  # trace outside the timed region
    rss_model = _peak_rss_mb()
    result = {"kind": kind, "size": size, "windows": count_windows((size, size), window=window,
                                                                     subdivisions=subdivisions, tta="d4")}
    if kind == "stream":
        with tempfile.TemporaryDirectory() as tmp:
            source = np.lib.format.open_memmap(Path(tmp) / "image.npy", mode="w+", dtype=np.float32,
                                               shape=(size, size, 3))
            for top in range(0, size, 1024):  # written in bands: never the whole image in memory
                source[top:top + 1024] = bench.make_image(1024, size, seed=top)[: size - top]
            source.flush()
            del source
            image = np.load(Path(tmp) / "image.npy", mmap_mode="r")
            out = np.lib.format.open_memmap(Path(tmp) / "classes.npy", mode="w+", dtype=np.uint8, shape=(size, size))
            rss_model = _peak_rss_mb()
            start = time.perf_counter()
            for top, rows in blend_rows(lambda idx: image[idx], (size, size), predict, window=window, num_classes=6,
                                        subdivisions=subdivisions, tta="d4", batch_size=batch):
                out[top:top + len(rows)] = rows.argmax(-1)
            out.flush()
            result["seconds"] = time.perf_counter() - start
    else:
        image = bench.make_image(size, seed=0)
        start = time.perf_counter()
        if kind == "aerialseg":
            predict_smooth(image, predict, window=window, num_classes=6, subdivisions=subdivisions, tta="d4",
                           batch_size=batch)
        elif kind == "reference":
            bench.ref_blend.predict_smooth_reference(image, window, subdivisions, 6, predict, d4=True,
                                                     batch_size=batch, normalize="weights")
        elif kind == "floor":
            windows = np.random.default_rng(0).random((batch, window, window, 3), dtype=np.float32)
            remaining = result["windows"]
            while remaining > 0:
                predict(windows[: min(batch, remaining)])
                remaining -= batch
        result["seconds"] = time.perf_counter() - start
    result["peak_rss_mb"] = _peak_rss_mb()
    result["rss_above_model_mb"] = result["peak_rss_mb"] - rss_model
    return result


def _spawn(kind: str, size: int, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--worker", kind, "--sizes", str(size), "--window", str(args.window),
           "--subdivisions", str(args.subdivisions), "--batch", str(args.batch)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"bench worker {kind} {size} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1024,2048", help="comma-separated square image sizes")
    parser.add_argument("--stream", type=int, default=0, help="also stream an image of this size (e.g. 6000)")
    parser.add_argument("--window", type=int, default=256)
    parser.add_argument("--subdivisions", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    add_out_option(parser)
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    if args.worker:
        print(json.dumps(worker(args.worker, sizes[0], args.window, args.subdivisions, args.batch)))
        return 0
    shared = has_harness()
    if not shared:
        print(f"bench: no shared harness at {SHARED / 'bench'} (AERIALSEG_SHARED): aerialseg's own U-Net and "
              "image, and the reference vendored in tests/reference", file=sys.stderr)
    for size in sizes:
        runs = {kind: _spawn(kind, size, args) for kind in ("floor", "aerialseg", "reference")}
        emit({
            "case": "in_memory", "size": size, "window": args.window, "subdivisions": args.subdivisions,
            "tta": "d4", "windows": runs["aerialseg"]["windows"],
            "aerialseg_s": round(runs["aerialseg"]["seconds"], 2),
            "reference_s": round(runs["reference"]["seconds"], 2),
            "floor_s": round(runs["floor"]["seconds"], 2),
            "aerialseg_over_floor": round(runs["aerialseg"]["seconds"] / runs["floor"]["seconds"], 3),
            "reference_over_aerialseg": round(runs["reference"]["seconds"] / runs["aerialseg"]["seconds"], 3),
            "model": "shared/bench U-Net" if shared else "aerialseg U-Net (3 levels, 8 filters)",
            "peak_rss_mb": {k: round(v["peak_rss_mb"]) for k, v in runs.items()},
            "rss_above_model_mb": {k: round(v["rss_above_model_mb"]) for k, v in runs.items()},
        }, args.out)
    if args.stream:
        run = _spawn("stream", args.stream, args)
        emit({"case": "streamed", "size": args.stream, "windows": run["windows"],
              "aerialseg_s": round(run["seconds"], 2), "peak_rss_mb": round(run["peak_rss_mb"]),
              "rss_above_model_mb": round(run["rss_above_model_mb"])}, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
