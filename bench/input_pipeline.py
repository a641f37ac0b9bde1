"""Input pipeline vs training step: can tf.data feed the model faster than it trains?

Builds a tile store of the default patch size in a temporary folder (shards of
``tile.shard_size`` tiles, read through memory maps exactly as the train stage reads
``data/tiles``), then measures in one run:

- ``pipeline_tiles_per_s``: training batches (seeded shuffle, D4 augmentation, optional
  jitter) delivered by ``tile_dataset`` alone, nothing consuming them but a loop;
- ``train_tiles_per_s``: tiles consumed by ``train_on_batch`` of the default model (from
  ``params.yaml``) on batches already in memory, so that input costs nothing there.

Prints one JSON line; ``ratio`` = pipeline / train is the headroom (target >= 5).

    python bench/input_pipeline.py [--tiles 2048] [--jitter]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from bench_record import add_out_option, emit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def _write_store(folder: Path, count: int, patch: int, shard_size: int):
    import numpy as np

    from aerialseg.core.config.params import load_params
    from aerialseg.core.input_spec import RGB_UINT8
    from aerialseg.core.model_card import data_facts, facts_json
    from aerialseg.prepare.tile_writer import write_manifest, write_split
    from aerialseg.prepare.tiling import Tile
    from aerialseg.train.tile_reader import TileStore

    params = load_params(ROOT / "params.yaml")
    names = params.classes.names

    rng = np.random.default_rng(0)
    scenes = max(1, count // 64)

    def tiles():
        for index in range(count):
            image = rng.integers(0, 256, (patch, patch, 3), dtype=np.uint8)
            mask = rng.integers(0, 6, (patch, patch), dtype=np.uint8)
            yield Tile(f"2_{10 + index % scenes}", (index // scenes) * patch, 0, image, mask)

    import pandas as pd

    frames = [write_split(folder, "train", tiles(), patch, shard_size=shard_size, class_names=names)]
    write_manifest(folder, pd.concat(frames, ignore_index=True), patch, patch, class_names=names,
                   data=facts_json(data_facts(params, RGB_UINT8)))
    return TileStore(folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiles", type=int, default=2048, help="tiles in the temporary store")
    parser.add_argument("--train-steps", type=int, default=20, help="timed train steps")
    parser.add_argument("--jitter", action="store_true", help="add photometric jitter to the pipeline")
    add_out_option(parser)
    args = parser.parse_args()

    from aerialseg.core.config.params import JitterParams, load_params
    from aerialseg.train.compiling import TrainConfig, compile_model, make_deterministic
    from aerialseg.train.input_pipeline import steps_per_epoch, tile_dataset

    params = load_params(ROOT / "params.yaml")
    batch, patch = params.batch_size, params.tile.patch_size
    strong = JitterParams(brightness=0.1, contrast=0.2, saturation=0.2, hue=0.02)
    jitter = strong if args.jitter else params.train.jitter
    with tempfile.TemporaryDirectory() as tmp:
        store = _write_store(Path(tmp), args.tiles, patch, params.tile.shard_size)
        dataset = tile_dataset(store, "train", batch, seed=params.seed, training=True, epochs=2, jitter=jitter)
        iterator = iter(dataset)
        for _ in range(steps_per_epoch(store, "train", batch)):  # epoch 0 warms caches and tracing
            next(iterator)
        started, delivered = time.perf_counter(), 0
        for images, _ in iterator:
            delivered += int(images.shape[0])
        pipeline_rate = delivered / (time.perf_counter() - started)

        make_deterministic(params.seed)
        config = TrainConfig.from_params(params)
        model = compile_model(config, steps_per_epoch(store, "train", batch))
        images, masks = next(iter(dataset))
        images, masks = images.numpy(), masks.numpy()
        for _ in range(3):
            model.train_on_batch(images, masks)
        started = time.perf_counter()
        for _ in range(args.train_steps):
            model.train_on_batch(images, masks)
        train_rate = args.train_steps * batch / (time.perf_counter() - started)

    emit({
        "patch_size": patch, "batch_size": batch, "tiles": args.tiles,
        "jitter": jitter.active, "pipeline_tiles_per_s": round(pipeline_rate, 1),
        "train_tiles_per_s": round(train_rate, 1), "ratio": round(pipeline_rate / train_rate, 1),
    }, args.out)


if __name__ == "__main__":
    main()
