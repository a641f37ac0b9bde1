"""Training speed: the framework's floor, aerialseg's train step, and a whole aerialseg epoch.

On the default model and tile size of ``params.yaml``, each side in its own process:

- ``floor``: Keras ``fit`` on batches held in memory, plain sparse categorical
  cross-entropy, no metrics, no op determinism, no callbacks: what the framework costs.
- ``step``: aerialseg's compiled model (its Dice + focal loss, its metrics, op determinism,
  the ``train.jit_compile`` setting) ``fit`` on the same batches, no callbacks.
- ``step_xla``: the same with XLA (``jit_compile`` on): what ``train.jit_compile: auto``
  should choose on this machine.
- ``epoch``: the real ``aerialseg.train.loop.train`` on a tile store of the default run's
  size (144 train, 18 val tiles), with every callback, validation and the state save;
  an epoch is timed from its start to the next one's, so all of that is inside.

All sides train on the same tiles, drawn by the synthetic generator as the default run
draws them (random pixels would make the network collapse and the steps artificially fast).

The sides run in lock-step: all four processes start and warm up (one untimed epoch
each), then each round runs one epoch of every side in turn (the order rotates), while
the others wait idle. A ratio is taken within each round, between epochs seconds apart,
and the medians over ``--rounds`` are printed: shared and burstable machines change speed
(this one by 2x, within seconds), which would swamp separate runs. Prints one JSON line:
tiles/s of each side (median epoch), the ratios step/floor, epoch/floor and step_xla/step
(as time per training tile; medians of the rounds' ratios, with their spread, and the
ratios of each side's fastest epoch), and the floor's GFLOP/s with its share of
this CPU's peak (cores x clock x FP32 FLOP per cycle, from ``/proc/cpuinfo``; printed with
the figures it came from).

    python bench/train.py [--rounds 9]
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

from bench_record import add_out_option, emit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
TRAIN_TILES, VAL_TILES = 144, 18  # the default run's tile store


def make_tiles(params, folder: Path) -> None:
    """The default run's train and val tiles, drawn by the synthetic generator, saved as .npy.

    Realistic tiles matter: on random pixels and labels the network collapses within an
    epoch and its steps get artificially fast, which would flatter the floor.
    """
    import numpy as np

    from aerialseg.prepare.preprocess import resize_image, resize_label
    from aerialseg.prepare.sources.synthetic import generate_scene
    from aerialseg.prepare.sources.synthetic_drawing import GSD_M
    from aerialseg.prepare.tiling import cut_tiles

    split = params.data.synthetic.split
    for name, ids, count in (("train", split.train, TRAIN_TILES), ("val", split.val, VAL_TILES)):
        images, masks = [], []
        for scene_id in ids:
            scene = generate_scene(params.seed, scene_id, params.data.synthetic.scene_size)
            scale = GSD_M / params.resize.gsd  # synthetic scenes are drawn at GSD_M
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
    from aerialseg.core.framework import keras

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


SIDES = ("floor", "step", "step_xla", "epoch")
RATIOS = (("step", "floor"), ("epoch", "floor"), ("step_xla", "step"))  # (slower side, its baseline)


def _lockstep(run_one_epoch) -> None:
    """Serve the driver: after a "go" line on stdin, run one epoch and print its seconds."""
    for line in sys.stdin:
        if line.strip() != "go":
            return
        print(json.dumps({"seconds": run_one_epoch()}), flush=True)


def _fit_worker(model, images, masks, batch: int, ready: dict) -> None:
    def one_epoch() -> float:
        started = time.perf_counter()
        model.fit(images, masks, batch_size=batch, epochs=1, verbose=0, shuffle=False)
        return time.perf_counter() - started

    one_epoch()  # traces and warms up
    print(json.dumps({"ready": True, **ready}), flush=True)
    _lockstep(one_epoch)


def serve_floor(params, tiles: Path) -> None:
    """Keras' own loop at its plainest: cross-entropy, no metrics, no determinism."""
    from aerialseg.core.framework import keras
    from aerialseg.train.model import build_unet

    keras.utils.set_random_seed(params.seed)
    model = build_unet(6, params.model.depth, params.model.base_filters, input_size=params.tile.patch_size,
                       max_filters=params.model.max_filters, batch_norm=params.model.batch_norm)
    model.compile(optimizer=keras.optimizers.Adam(params.train.learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy())
    images, masks = _batches(tiles, ignore_as_class=True)
    _fit_worker(model, images, masks, params.batch_size, {"forward_gflop": forward_flops(model) / 1e9})


def serve_step(params, jit: str, tiles: Path) -> None:
    """aerialseg's compiled model (loss, metrics, determinism) on in-memory batches."""
    from dataclasses import replace

    from aerialseg.train.compiling import TrainConfig, compile_model, make_deterministic

    make_deterministic(params.seed)
    config = TrainConfig.from_params(params)
    config = replace(config, train=replace(config.train, jit_compile=jit))
    model = compile_model(config, -(-TRAIN_TILES // params.batch_size))
    images, masks = _batches(tiles)
    _fit_worker(model, images, masks, params.batch_size, {})


def serve_epoch(params, rounds: int, tiles: Path) -> None:
    """The real train(), held at the start of every epoch until the driver says go.

    Epoch 0 warms up; epochs 1..rounds are timed from their start to the next epoch's
    start (so validation and every callback's end-of-epoch work count); the start of the
    last epoch only ends the timing, and the worker stops there when the driver closes its
    input. The hold sits in the first callback's ``on_epoch_begin``.
    """
    from dataclasses import replace

    import pandas as pd

    from aerialseg.core.config.params import checkpoint_epochs
    from aerialseg.core.input_spec import RGB_UINT8
    from aerialseg.core.model_card import data_facts, facts_json
    from aerialseg.prepare.tile_writer import write_manifest, write_split
    from aerialseg.prepare.tiling import Tile
    from aerialseg.train import resume
    from aerialseg.train.compiling import TrainConfig
    from aerialseg.train.loop import train
    from aerialseg.train.tile_reader import TileStore

    seed_epoch = resume.EpochSeeds.on_epoch_begin
    started = [0.0]

    def held(self, epoch: int, logs=None) -> None:
        if epoch >= 2:
            print(json.dumps({"seconds": time.perf_counter() - started[0]}), flush=True)
        if epoch == 1:
            print(json.dumps({"ready": True}), flush=True)
        if epoch >= 1 and sys.stdin.readline().strip() != "go":
            raise SystemExit(0)  # the driver is done: the last epoch is never run
        started[0] = time.perf_counter()
        seed_epoch(self, epoch, logs)

    resume.EpochSeeds.on_epoch_begin = held
    patch = params.tile.patch_size
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        frames = []
        for split in ("train", "val"):
            images, masks = _batches(tiles, split)
            cut = (Tile("2_10", i, 0, images[i].astype("uint8"), masks[i]) for i in range(len(masks)))
            frames.append(write_split(tmp / "tiles", split, cut, patch, params.tile.shard_size,
                                      class_names=params.classes.names))
        write_manifest(tmp / "tiles", pd.concat(frames, ignore_index=True), patch, params.tile.stride,
                       class_names=params.classes.names, data=facts_json(data_facts(params, RGB_UINT8)))
        total = rounds + 2
        config = replace(TrainConfig.from_params(params), epochs=total,
                         checkpoint_epochs=checkpoint_epochs(total, min(params.checkpoint_every, total)))
        train(config, TileStore(tmp / "tiles"), tmp / "models", tmp / "live", tmp / "state", verbose=0)


class Side:
    """One side's worker process, driven line by line."""

    def __init__(self, name: str, rounds: int, tiles: Path, log: Path) -> None:
        self.name = name
        self.log = log
        command = [sys.executable, __file__, "--side", name, "--rounds", str(rounds), "--tiles", str(tiles)]
        with log.open("w") as stderr:
            self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr,
                                            text=True)

    def read(self) -> dict:
        """The worker's next JSON line (its ready line, or the seconds of an epoch)."""
        for line in self.process.stdout:
            if line.startswith("{"):
                return json.loads(line)
        raise SystemExit(f"bench/train.py: the {self.name} side failed:\n{self.log.read_text()[-3000:]}")

    def epoch(self) -> float:
        """Run one epoch of this side now; its seconds."""
        self.process.stdin.write("go\n")
        self.process.stdin.flush()
        return self.read()["seconds"]

    def close(self) -> None:
        """Let the worker finish (or stop it)."""
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(timeout=120)
            except subprocess.TimeoutExpired:
                self.process.kill()


def _spread(values: list[float]) -> list[float]:
    return [round(min(values), 3), round(max(values), 3)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9, help="timed epochs of every side, in lock-step (medians)")
    parser.add_argument("--side", choices=SIDES, help=argparse.SUPPRESS)
    parser.add_argument("--tiles", type=Path, help=argparse.SUPPRESS)
    add_out_option(parser)
    args = parser.parse_args()

    from aerialseg.core.config.params import load_params

    params = load_params(ROOT / "params.yaml")
    if args.side:
        {"floor": lambda: serve_floor(params, args.tiles),
         "step": lambda: serve_step(params, params.train.jit_compile, args.tiles),
         "step_xla": lambda: serve_step(params, "on", args.tiles),
         "epoch": lambda: serve_epoch(params, args.rounds, args.tiles)}[args.side]()
        return

    seconds: dict[str, list[float]] = {side: [] for side in SIDES}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        make_tiles(params, tmp)
        sides = {name: Side(name, args.rounds, tmp, tmp / f"{name}.log") for name in SIDES}
        try:
            ready = {name: side.read() for name, side in sides.items()}
            for round_ in range(args.rounds):
                order = SIDES[round_ % len(SIDES):] + SIDES[:round_ % len(SIDES)]
                for name in order:
                    seconds[name].append(sides[name].epoch())
        finally:
            for side in sides.values():
                side.close()

    rate = {side: TRAIN_TILES / statistics.median(values) for side, values in seconds.items()}
    paired = {f"{slow}_over_{base}": [s / b for s, b in zip(seconds[slow], seconds[base], strict=True)]
              for slow, base in RATIOS}
    # each side's fastest epoch: slowdowns only ever add time, so minima compare best cases
    best = {f"best_{slow}_over_{base}": round(min(seconds[slow]) / min(seconds[base]), 3) for slow, base in RATIOS}
    peak = cpu_peak()
    forward_gflop = ready["floor"]["forward_gflop"]
    train_gflop = 3 * forward_gflop  # forward + backward (about twice the forward)
    floor_gflops = rate["floor"] * train_gflop
    emit({
        "bench": "train", "patch_size": params.tile.patch_size, "batch_size": params.batch_size,
        "depth": params.model.depth, "base_filters": params.model.base_filters,
        "max_filters": params.model.max_filters, "step_jit": params.train.jit_compile, "rounds": args.rounds,
        **{f"{side}_tiles_per_s": round(rate[side], 2) for side in SIDES},
        **{name: round(statistics.median(values), 3) for name, values in paired.items()},
        "ratio_spread": {name: _spread(values) for name, values in paired.items()},
        "best_epoch_s": {side: round(min(values), 3) for side, values in seconds.items()}, **best,
        "forward_gflop_per_tile": round(forward_gflop, 3),
        "floor_gflops": round(floor_gflops, 1), "cpu": peak,
        "floor_share_of_peak": round(floor_gflops / peak["peak_gflops"], 3),
    }, args.out)


if __name__ == "__main__":
    main()
