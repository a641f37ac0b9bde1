"""Train the U-Net from the sharded tile store: tf.data input, checkpoints, dvclive logging."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from aerialseg.io import atomic_path
from aerialseg.losses import DiceFocalLoss, training_metrics
from aerialseg.model import build_unet
from aerialseg.palette import NUM_CLASSES
from aerialseg.tiling import TileStore

CHECKPOINT_PATTERN = "epoch_{epoch:03d}.keras"


def make_deterministic(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow and ask TF for deterministic kernels."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def checkpoint_path(folder: Path, epoch: int) -> Path:
    """Where the checkpoint after ``epoch`` lives."""
    return Path(folder) / CHECKPOINT_PATTERN.format(epoch=epoch)


def list_checkpoints(folder: Path) -> dict[int, Path]:
    """Checkpoints in a folder by epoch, in epoch order."""
    found = {}
    for path in sorted(Path(folder).glob("epoch_*.keras")):
        try:
            found[int(path.stem.split("_")[1])] = path
        except (IndexError, ValueError):
            continue
    return dict(sorted(found.items()))


def _d4_augment(image, mask, seeds):
    """The same random rotation by k*90 degrees and mirror for an image and its mask."""
    k = tf.random.stateless_uniform([], seed=seeds[0], minval=0, maxval=4, dtype=tf.int32)
    flip = tf.random.stateless_uniform([], seed=seeds[1]) < 0.5
    mask = mask[..., None]
    image, mask = tf.image.rot90(image, k), tf.image.rot90(mask, k)
    image = tf.cond(flip, lambda: tf.image.flip_left_right(image), lambda: image)
    mask = tf.cond(flip, lambda: tf.image.flip_left_right(mask), lambda: mask)
    return image, mask[..., 0]


def tile_dataset(store: TileStore, split: str, batch_size: int, *, seed: int,
                 training: bool) -> tf.data.Dataset:
    """Batches of (float32 image, uint8 mask) streamed from a split's memory-mapped shards.

    Training batches are shuffled with a seeded, per-epoch reshuffle and D4-augmented
    with seeded stateless randomness, so the same seed gives the same batches.
    """
    shards = store.shards(split)
    patch = store.manifest["patch_size"]
    locations = np.array([(s, r) for s, (_, masks) in enumerate(shards) for r in range(len(masks))], np.int64)

    def load(location):
        shard, row = int(location[0]), int(location[1])
        images, masks = shards[shard]
        return np.asarray(images[row], np.float32), np.asarray(masks[row])

    def fetch(location):
        image, mask = tf.numpy_function(load, [location], (tf.float32, tf.uint8), stateful=False)
        image.set_shape((patch, patch, 3))
        mask.set_shape((patch, patch))
        return image, mask

    ds = tf.data.Dataset.from_tensor_slices(locations)
    if training:
        ds = ds.shuffle(len(locations), seed=seed, reshuffle_each_iteration=True)
    ds = ds.map(fetch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if training:
        noise = tf.data.Dataset.random(seed=seed + 1, rerandomize_each_iteration=True).batch(2).batch(2)
        ds = tf.data.Dataset.zip((ds, noise)).map(
            lambda pair, seeds: _d4_augment(pair[0], pair[1], seeds),
            num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


class PeriodicCheckpoint(keras.callbacks.Callback):
    """Save the model after the given (1-based) epochs, atomically."""

    def __init__(self, folder: Path, epochs: list[int]) -> None:
        super().__init__()
        self.folder = Path(folder)
        self.epochs = set(epochs)

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        if epoch + 1 in self.epochs:
            with atomic_path(checkpoint_path(self.folder, epoch + 1)) as tmp:
                self.model.save(tmp)


@dataclass(frozen=True)
class TrainConfig:
    """What a training run needs, independent of where the params came from."""

    epochs: int
    batch_size: int
    checkpoint_epochs: list[int]
    seed: int
    depth: int
    base_filters: int
    max_filters: int | None
    batch_norm: bool
    learning_rate: float
    lr_schedule: str
    lr_decay: float
    dice_weight: float
    focal_weight: float
    focal_gamma: float
    mixed_precision: str = "off"
    jit_compile: str = "off"


def gpu_available() -> bool:
    """Whether TensorFlow sees a GPU."""
    return bool(tf.config.list_physical_devices("GPU"))


def resolve_switch(value: str) -> bool:
    """``auto`` means on with a GPU and off on CPU (where float16 and XLA only slow down)."""
    return gpu_available() if value == "auto" else value == "on"


def learning_rate(config: TrainConfig, steps_per_epoch: int):
    """The learning rate: constant, or multiplied by ``lr_decay`` after every epoch.

    The decay does not depend on the number of epochs, so a longer run repeats a shorter
    one's first epochs exactly (and can reuse their checkpoints' evaluations).
    """
    if config.lr_schedule == "constant":
        return config.learning_rate
    return keras.optimizers.schedules.ExponentialDecay(config.learning_rate, steps_per_epoch, config.lr_decay,
                                                       staircase=True)


def compile_model(config: TrainConfig, steps_per_epoch: int) -> keras.Model:
    """Build and compile the U-Net with the seed's loss and metrics.

    Under mixed precision the layers compute in float16 (the head stays float32) and
    Keras wraps the optimizer in dynamic loss scaling.
    """
    policy = "mixed_float16" if resolve_switch(config.mixed_precision) else "float32"
    keras.mixed_precision.set_global_policy(policy)
    model = build_unet(NUM_CLASSES, config.depth, config.base_filters,
                       max_filters=config.max_filters, batch_norm=config.batch_norm)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate(config, steps_per_epoch)),
        loss=DiceFocalLoss(NUM_CLASSES, config.dice_weight, config.focal_weight, config.focal_gamma),
        metrics=training_metrics(NUM_CLASSES),
        jit_compile=resolve_switch(config.jit_compile),
    )
    return model


def train(config: TrainConfig, store: TileStore, models: Path, live_dir: Path, verbose: int = 2) -> keras.callbacks.History:
    """Train from scratch and leave checkpoints, ``history.csv`` and dvclive logs behind."""
    from dvclive import Live
    from dvclive.keras import DVCLiveCallback

    make_deterministic(config.seed)
    models.mkdir(parents=True, exist_ok=True)
    train_ds = tile_dataset(store, "train", config.batch_size, seed=config.seed, training=True)
    val_ds = tile_dataset(store, "val", config.batch_size, seed=config.seed, training=False)
    model = compile_model(config, steps_per_epoch=-(-store.count("train") // config.batch_size))
    live = Live(str(live_dir), dvcyaml=False, save_dvc_exp=False, report=None)
    callbacks = [
        PeriodicCheckpoint(models, config.checkpoint_epochs),
        keras.callbacks.CSVLogger(str(models / "history.csv")),
        DVCLiveCallback(live=live),
    ]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        return model.fit(train_ds, validation_data=val_ds, epochs=config.epochs, callbacks=callbacks,
                         verbose=verbose, shuffle=False)  # tile_dataset shuffles, seeded
    finally:
        keras.mixed_precision.set_global_policy("float32")
