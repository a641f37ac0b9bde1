"""A 6000 x 6000 LZW-compressed, tiled GeoTIFF with a CRS through ``aerialseg predict`` to a COG,
against the floor: the same model's calls on the same number of windows, nothing else.

Both sides run in their own process, alternating, and both walls include starting Python;
the exported ONNX model of the default params (seeded weights; speed does not depend on
training) runs on ONNX Runtime, as ``aerialseg predict`` runs models on a CPU. Peak RSS is
the whole command's (``wait4``).
Prints one JSON line:

  {"image": "6000x6000 ...", "windows": ..., "cli_s": ..., "floor_s": ..., "cli_over_floor": ...,
   "cli_peak_rss_mb": ..., "floor_peak_rss_mb": ..., "repeats": ...}

The targets: ``cli_over_floor`` <= 1.15 (reading, blending and writing cost at most 15 %
beyond the model) and ``cli_peak_rss_mb`` <= 2000.

    python bench/predict_geotiff.py [--size 6000] [--repeats 2] [--tta none]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from bench_record import add_out_option, emit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

FLOOR = """
import sys, time
import numpy as np
from aerialseg.predict.onnx_model import OnnxSegmenter
model_path, windows, window, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
model = OnnxSegmenter(model_path)
rng = np.random.default_rng(0)
batches = [rng.integers(0, 256, (batch, window, window, 3)).astype(np.float32) for _ in range(4)]
start = time.perf_counter()
for i, first in enumerate(range(0, windows, batch)):
    model.predict_on_batch(batches[i % 4][: min(batch, windows - first)])
print(time.perf_counter() - start)
"""


def make_orthophoto(path: Path, size: int) -> None:
    """A real Potsdam crop repeated to ``size`` x ``size``: LZW, 256-px tiles, EPSG:25833, 5 cm."""
    import rasterio
    from affine import Affine

    from aerialseg.core.io import read_rgb

    crop = read_rgb(ROOT / "tests/fixtures/top_potsdam_2_10_crop512_RGB.png")
    reps = -(-size // crop.shape[0])
    image = np.tile(crop, (reps, reps, 1))[:size, :size]
    profile = {"driver": "GTiff", "width": size, "height": size, "count": 3, "dtype": "uint8", "crs": "EPSG:25833",
               "transform": Affine(0.05, 0, 366000.0, 0, -0.05, 5808000.0), "compress": "lzw", "tiled": True,
               "blockxsize": 256, "blockysize": 256, "photometric": "RGB"}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(image.transpose(2, 0, 1))


def run(command: list[str]) -> tuple[float, float, str]:
    """(seconds, peak RSS in MB, stdout) of a child process; the RSS from ``wait4``."""
    import time

    start = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                             env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    out = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    elapsed = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        raise SystemExit(f"{' '.join(command[:4])} ... failed with status {child.returncode}")
    return elapsed, usage.ru_maxrss / 1024, out


def setup(folder: Path, size: int) -> None:
    """The model (built, saved, exported to ONNX) and the orthophoto, in ``folder``.

    Run in its own process: Linux hands a child the parent's peak RSS at fork, so the
    process that measures must stay small (no TensorFlow loaded in it).
    """
    from aerialseg.core.config.params import load_params
    from aerialseg.core.framework import keras
    from aerialseg.predict.export import export_model
    from aerialseg.train.compiling import build_model

    params = load_params(ROOT / "params.yaml")
    keras.utils.set_random_seed(params.seed)
    build_model(params.model, len(params.classes)).save(folder / "model.keras")
    export_model(folder / "model.keras", folder / "model.onnx", "onnx", gsd_m=0.05, window=params.predict.window,
                 subdivisions=params.predict.subdivisions, tta=params.predict.tta)
    make_orthophoto(folder / "ortho.tif", size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=6000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--tta", default="none", help="none keeps the run short; d4 multiplies both sides by 8")
    parser.add_argument("--setup", type=Path, help=argparse.SUPPRESS)
    add_out_option(parser)
    args = parser.parse_args()
    if args.setup:
        setup(args.setup, args.size)
        return

    from aerialseg.core.config.params import load_params
    from aerialseg.predict.blending import count_windows

    params = load_params(ROOT / "params.yaml")
    window, batch, subdivisions = params.predict.window, params.predict.batch_size, params.predict.subdivisions
    windows = count_windows((args.size, args.size), window=window, subdivisions=subdivisions, tta=args.tta)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        run([sys.executable, __file__, "--setup", str(tmp), "--size", str(args.size)])
        cli = [sys.executable, "-m", "aerialseg.cli", "predict", str(tmp / "model.onnx"), str(tmp / "ortho.tif"),
               "-o", str(tmp / "map.tif"), "--cog", "--window", str(window), "--subdivisions", str(subdivisions),
               "--tta", args.tta, "--batch-size", str(batch)]
        floor = [sys.executable, "-c", FLOOR, str(tmp / "model.onnx"), str(windows), str(window), str(batch)]
        cli_s, cli_rss, floor_s, floor_rss = [], [], [], []
        for _ in range(args.repeats):
            seconds, rss, _ = run(floor)
            floor_s.append(seconds)
            floor_rss.append(rss)
            seconds, rss, _ = run(cli)
            cli_s.append(seconds)
            cli_rss.append(rss)
            (tmp / "map.tif").unlink()
        cli_median, floor_median = statistics.median(cli_s), statistics.median(floor_s)
    emit({
        "image": f"{args.size}x{args.size} RGB GeoTIFF, LZW, 256-px tiles, EPSG:25833, 5 cm",
        "output": "COG class map", "windows": windows, "window": window, "subdivisions": subdivisions,
        "tta": args.tta, "batch": batch, "backend": "onnxruntime (CPU)",
        "cli_s": round(cli_median, 2), "floor_s": round(floor_median, 2),
        "cli_over_floor": round(cli_median / floor_median, 3),
        "cli_over_floor_each": [round(c / f, 3) for c, f in zip(cli_s, floor_s, strict=True)],
        "cli_peak_rss_mb": round(max(cli_rss)), "floor_peak_rss_mb": round(max(floor_rss)),
        "repeats": args.repeats, "cpus": os.cpu_count(),
    }, args.out)


if __name__ == "__main__":
    main()
