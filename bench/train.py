"""Training speed: the framework's floor, aerialseg's train step, and a whole aerialseg epoch.

On the default model and tile size of ``params.yaml``, each side in its own process:

- ``floor``: Keras ``fit`` on batches held in memory, plain sparse categorical
  cross-entropy, no metrics, no op determinism, no callbacks: what the framework costs.
- ``step``: aerialseg's compiled model (its Dice + focal loss, its metrics, op determinism,
  the ``train.jit_compile`` setting) ``fit`` on the same batches, no callbacks.
- ``step_xla``: the same with XLA (``jit_compile`` on): what ``train.jit_compile: auto``
  should choose on this machine.
- ``epoch``: the real ``aerialseg.training.train`` on a tile store of the default run's
  size (144 train, 18 val tiles), with every callback, validation and the state save.

All three train on the same tiles, drawn by the synthetic generator as the default run
draws them (random pixels would make the network collapse and the steps artificially fast).

Sides alternate ``--repeats`` times; medians. Prints one JSON line: tiles/s of each side,
the ratios step/floor, epoch/floor and step_xla/step (as time per training tile), and the
floor's GFLOP/s with its share of this CPU's peak (cores x clock x FP32 FLOP per cycle,
from ``/proc/cpuinfo``; printed with the figures it came from). ``--side`` runs one side
(used by the driver).

    python bench/train.py [--repeats 3] [--epochs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
TRAIN_TILES, VAL_TILES = 144, 18  # the default run's tile store


def make_tiles(params, folder: Path) -> None:
    """The default run's train and val tiles, drawn by the synthetic generator, saved as .npy.

    Realistic tiles matter: on random pixels and labels the network collapses within an
    epoch and its steps get artificially fast, which would flatter the floor.
    """
    import numpy as np

    from aerialseg.datasets.synthetic import generate_scene
    from aerialseg.preprocess import resize_image, resize_label
    from aerialseg.tiling import cut_tiles

    split = params.data.synthetic.split
    for name, ids, count in (("train", split.train, TRAIN_TILES), ("val", split.val, VAL_TILES)):
        images, masks = [], []
        for scene_id in ids:
            scene = generate_scene(params.seed, scene_id, params.data.synthetic.scene_size)
            scale = params.resize.scale
            image, label = resize_image(scene.image, scale), resize_label(scene.label, scale)
            for tile in cut_tiles(scene_id, image, label, params.tile.patch_size, params.tile.stride):
                images.append(tile.image)
                masks.append(tile.mask)
        np.save(folder / f"{name}_images.npy", np.stack(images)[:count])
        np.save(folder / f"{name}_masks.npy", np.stack(masks)[:count])


def _batches(folder: Path, split: str = "train", ignore_as_class: bool = False):
    import numpy as np

    images = np.load(folder / f"{split}_images.npy").astype(np.float32)
    masks = np.load(folder / f"{split}_masks.npy")
    if ignore_as_class:  # plain cross-entropy knows no ignore label
        masks = np.where(masks == 255, 0, masks).astype(np.uint8)
    return images, masks


def forward_flops(model) -> float:
    """Multiply-adds x 2 of the convolutions of one forward pass of a single tile."""
    from aerialseg.framework import keras

    flops = 0.0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2DTranspose):
            _, h, w, c_in = layer.input.shape
            kh, kw = layer.kernel_size
            flops += 2.0 * h * w * kh * kw * c_in * layer.filters
        elif isinstance(layer, keras.layers.Conv2D):
            _, h, w, c_out = layer.output.shape
            kh, kw = layer.kernel_size
            flops += 2.0 * h * w * kh * kw * layer.input.shape[-1] * c_out
    return flops


def cpu_peak() -> dict:
    """FP32 peak of this machine: cores x clock x FLOP per cycle per core, and how it was found."""
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    flags = set()
    mhz = []
    for line in text.splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
        if line.startswith("cpu MHz"):
            mhz.append(float(line.split(":", 1)[1]))
    cores = len(os.sched_getaffinity(0))
    if "avx512f" in flags:
        simd, per_cycle = "AVX-512 FMA", 64  # 2 FMA units x 16 floats x 2 FLOP
    elif "avx2" in flags and "fma" in flags:
        simd, per_cycle = "AVX2 FMA", 32  # 2 FMA units x 8 floats x 2 FLOP
    else:
        simd, per_cycle = "SSE", 8
    ghz = max(mhz) / 1000 if mhz else float("nan")
    return {"cores": cores, "ghz": round(ghz, 3), "simd": simd, "flop_per_cycle": per_cycle,
            "peak_gflops": round(cores * ghz * per_cycle, 1)}


def run_floor(params, epochs: int, tiles: Path) -> dict:
    from aerialseg.framework import keras
    from aerialseg.model import build_unet

    keras.utils.set_random_seed(params.seed)
    model = build_unet(6, params.model.depth, params.model.base_filters, input_size=params.tile.patch_size,
                       max_filters=params.model.max_filters, batch_norm=params.model.batch_norm)
    model.compile(optimizer=keras.optimizers.Adam(params.train.learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy())
    images, masks = _batches(tiles, ignore_as_class=True)
    return _time_fit(model, images, masks, params.batch_size, epochs) | {"forward_gflop": forward_flops(model) / 1e9}


def run_step(params, epochs: int, jit: str, tiles: Path) -> dict:
    from dataclasses import replace

    from aerialseg.training import TrainConfig, compile_model, make_deterministic

    make_deterministic(params.seed)
    config = TrainConfig.from_params(params)
    config = replace(config, train=replace(config.train, jit_compile=jit))
    model = compile_model(config, -(-TRAIN_TILES // params.batch_size))
    images, masks = _batches(tiles)
    return _time_fit(model, images, masks, params.batch_size, epochs)


def _time_fit(model, images, masks, batch: int, epochs: int) -> dict:
    """Seconds per epoch of ``fit`` after a first epoch that traces and warms up."""
    model.fit(images, masks, batch_size=batch, epochs=1, verbose=0, shuffle=False)
    started = time.perf_counter()
    model.fit(images, masks, batch_size=batch, epochs=epochs, verbose=0, shuffle=False)
    seconds = (time.perf_counter() - started) / epochs
    return {"epoch_s": seconds, "tiles_per_s": len(images) / seconds}


def run_epoch(params, epochs: int, tiles: Path) -> dict:
    """The real train(): seconds of epochs 2.. (a run of 1 epoch against one of 1 + epochs, same store)."""
    from dataclasses import replace

    import pandas as pd

    from aerialseg.params import checkpoint_epochs
    from aerialseg.tile_reader import TileStore
    from aerialseg.tile_writer import write_manifest, write_split
    from aerialseg.tiling import Tile
    from aerialseg.training import TrainConfig, train

    patch = params.tile.patch_size
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        frames = []
        for split in ("train", "val"):
            images, masks = _batches(tiles, split)
            cut = (Tile("2_10", i, 0, images[i].astype("uint8"), masks[i]) for i in range(len(masks)))
            frames.append(write_split(tmp / "tiles", split, cut, patch, params.tile.shard_size))
        write_manifest(tmp / "tiles", pd.concat(frames, ignore_index=True), patch, params.tile.stride)
        store = TileStore(tmp / "tiles")
        seconds = []
        # a first run pays the process's one-time costs (imports, first traces); it is not timed
        for total in (1, 1, 1 + epochs):
            every = min(params.checkpoint_every, total)
            config = replace(TrainConfig.from_params(params), epochs=total,
                             checkpoint_epochs=checkpoint_epochs(total, every))
            out = tmp / f"run{len(seconds)}"
            started = time.perf_counter()
            train(config, store, out / "models", out / "live", out / "state", verbose=0)
            seconds.append(time.perf_counter() - started)
    per_epoch = (seconds[2] - seconds[1]) / epochs
    return {"epoch_s": per_epoch, "tiles_per_s": TRAIN_TILES / per_epoch}


def _spawn(side: str, args, tiles: Path) -> dict:
    command = [sys.executable, __file__, "--side", side, "--epochs", str(args.epochs), "--tiles", str(tiles)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode:
        raise SystemExit(f"bench/train.py: the {side} side failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="alternating runs of each side (medians)")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per run")
    parser.add_argument("--side", choices=("floor", "step", "step_xla", "epoch"), help=argparse.SUPPRESS)
    parser.add_argument("--tiles", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    from aerialseg.params import load_params

    params = load_params(ROOT / "params.yaml")
    if args.side:
        run = {"floor": lambda: run_floor(params, args.epochs, args.tiles),
               "step": lambda: run_step(params, args.epochs, params.train.jit_compile, args.tiles),
               "step_xla": lambda: run_step(params, args.epochs, "on", args.tiles),
               "epoch": lambda: run_epoch(params, args.epochs, args.tiles)}[args.side]
        print(json.dumps(run()))
        return

    runs: dict[str, list[dict]] = {"floor": [], "step": [], "step_xla": [], "epoch": []}
    with tempfile.TemporaryDirectory() as tiles:
        make_tiles(params, Path(tiles))
        for _ in range(args.repeats):
            for side in runs:
                runs[side].append(_spawn(side, args, Path(tiles)))
    rate = {side: statistics.median(r["tiles_per_s"] for r in results) for side, results in runs.items()}
    ratios = {f"{side}_over_floor": [round(f["tiles_per_s"] / s["tiles_per_s"], 3)
                                     for f, s in zip(runs["floor"], runs[side])] for side in ("step", "epoch")}
    ratios["step_xla_over_step"] = [round(s["tiles_per_s"] / x["tiles_per_s"], 3)
                                    for s, x in zip(runs["step"], runs["step_xla"])]
    peak = cpu_peak()
    train_gflop = 3 * runs["floor"][0]["forward_gflop"]  # forward + backward (about twice the forward)
    floor_gflops = rate["floor"] * train_gflop
    print(json.dumps({
        "bench": "train", "patch_size": params.tile.patch_size, "batch_size": params.batch_size,
        "depth": params.model.depth, "base_filters": params.model.base_filters,
        "max_filters": params.model.max_filters, "step_jit": params.train.jit_compile, "repeats": args.repeats,
        "floor_tiles_per_s": round(rate["floor"], 2), "step_tiles_per_s": round(rate["step"], 2),
        "step_xla_tiles_per_s": round(rate["step_xla"], 2), "epoch_tiles_per_s": round(rate["epoch"], 2),
        "step_over_floor": round(rate["floor"] / rate["step"], 3),
        "epoch_over_floor": round(rate["floor"] / rate["epoch"], 3),
        "step_xla_over_step": round(rate["step"] / rate["step_xla"], 3),
        "ratio_runs": ratios,
        "forward_gflop_per_tile": round(runs["floor"][0]["forward_gflop"], 3),
        "floor_gflops": round(floor_gflops, 1), "cpu": peak,
        "floor_share_of_peak": round(floor_gflops / peak["peak_gflops"], 3),
    }))


if __name__ == "__main__":
    main()
