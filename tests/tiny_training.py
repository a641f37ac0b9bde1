"""A tiny tile store and training config shared by the training tests and their subprocesses.

Run as a script it trains once, for tests that need a separate process (SIGKILL, logical
devices configured before TensorFlow starts, multi-worker clusters):

    python tests/tiny_training.py STORE OUT --epochs N [--strategy S] [--logical-cpus K]
                                  [--encoder E --freeze-encoder-epochs F]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from conftest import CLASSES, TILE_FACTS

TRAIN_IDS, VAL_IDS = ["2_10", "2_11"], ["5_12"]


def make_store(folder: Path):
    """Two small scenes whose classes follow simple shapes, tiled into train and val."""
    from aerialseg.prepare.tile_writer import write_manifest, write_split
    from aerialseg.prepare.tiling import cut_tiles
    from aerialseg.train.tile_reader import TileStore

    rng = np.random.default_rng(0)
    frames = []
    for split, ids in (("train", TRAIN_IDS), ("val", VAL_IDS)):
        tiles = []
        for scene in ids:
            mask = np.zeros((64, 64), np.uint8)
            mask[8:30, 10:40] = 1
            mask[40:60, 20:28] = 4
            image = (np.array([[90, 90, 90], [200, 80, 60], [0, 0, 0], [0, 0, 0], [30, 30, 200]])[mask]
                     + rng.integers(0, 30, (64, 64, 3))).astype(np.uint8)
            tiles += list(cut_tiles(scene, image, mask, 32, 16))
        frames.append(write_split(folder, split, iter(tiles), 32, shard_size=10, class_names=CLASSES.names))
    write_manifest(folder, pd.concat(frames, ignore_index=True), 32, 16, class_names=CLASSES.names,
                   data=TILE_FACTS)
    return TileStore(folder)


def config(seed=1, epochs=2, **overrides):
    """A U-Net small enough to train an epoch on the tiny store in about a second."""
    from dataclasses import fields

    from aerialseg.core.config.params import ModelParams, TrainParams
    from aerialseg.train.compiling import TrainConfig

    model = dict(depth=2, base_filters=4, max_filters=None, batch_norm=False)
    train = dict(learning_rate=0.003, lr_schedule="exponential", lr_decay=0.9, dice_weight=1.0, focal_weight=1.0,
                 focal_gamma=2.0)
    for name, value in overrides.items():
        (model if name in {f.name for f in fields(ModelParams)} else train)[name] = value
    return TrainConfig(epochs=epochs, batch_size=4, checkpoint_epochs=list(range(1, epochs + 1)), seed=seed,
                       model=ModelParams(**model), train=TrainParams(**train), class_names=CLASSES.names)


def final_weights(models: Path) -> list[np.ndarray]:
    """The weights of the newest checkpoint in a models folder."""
    import keras

    from aerialseg.core.names import list_checkpoints

    return keras.saving.load_model(list(list_checkpoints(models).values())[-1], compile=False).get_weights()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("store", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--strategy", default="one_device")
    parser.add_argument("--logical-cpus", type=int, default=0)
    parser.add_argument("--encoder", default="none")
    parser.add_argument("--freeze-encoder-epochs", type=int, default=0)
    parser.add_argument("--eager", action="store_true", help="no tf.function tracing (big backbones trace slowly)")
    args = parser.parse_args()
    # isort: off
    import aerialseg  # noqa: F401  (quiets TensorFlow's start-up logging before it is imported)
    import tensorflow as tf
    # isort: on

    if args.logical_cpus:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * args.logical_cpus)
    from aerialseg.train.loop import train
    from aerialseg.train.tile_reader import TileStore

    if args.eager:
        tf.config.run_functions_eagerly(True)
    overrides = {}
    if args.encoder != "none":
        overrides = dict(encoder=args.encoder, freeze_encoder_epochs=args.freeze_encoder_epochs,
                         encoder_lr_factor=0.1, batch_norm=True)
    outcome = train(config(epochs=args.epochs, strategy=args.strategy, **overrides), TileStore(args.store),
                    args.out / "models", args.out / "live", args.out / "state", verbose=0)
    print(f"resumed={outcome.reused} epochs_run={outcome.trained}", flush=True)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    main()
