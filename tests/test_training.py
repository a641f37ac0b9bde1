"""Training on a tiny tile store: determinism, checkpoints, the input pipeline."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aerialseg.tiling import TileStore, cut_tiles, write_manifest, write_split
from aerialseg.training import TrainConfig, list_checkpoints, tile_dataset, train


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> TileStore:
    """Two small scenes whose classes follow simple shapes, tiled into train and val."""
    folder = tmp_path_factory.mktemp("tiles")
    rng = np.random.default_rng(0)
    frames = []
    for split, ids in (("train", ["2_10", "2_11"]), ("val", ["5_12"])):
        tiles = []
        for scene in ids:
            mask = np.zeros((64, 64), np.uint8)
            mask[8:30, 10:40] = 1
            mask[40:60, 20:28] = 4
            image = (np.array([[90, 90, 90], [200, 80, 60], [0, 0, 0], [0, 0, 0], [30, 30, 200]])[mask]
                     + rng.integers(0, 30, (64, 64, 3))).astype(np.uint8)
            tiles += list(cut_tiles(scene, image, mask, 32, 16))
        frames.append(write_split(folder, split, iter(tiles), 32, shard_size=10))
    write_manifest(folder, pd.concat(frames, ignore_index=True), 32, 16)
    return TileStore(folder)


def _config(seed=1, epochs=2, mixed_precision="off"):
    return TrainConfig(epochs=epochs, batch_size=4, checkpoint_epochs=[1, 2][:epochs], seed=seed, depth=2,
                       base_filters=4, max_filters=None, batch_norm=False, learning_rate=0.003,
                       lr_schedule="exponential", lr_decay=0.9, dice_weight=1.0, focal_weight=1.0, focal_gamma=2.0,
                       mixed_precision=mixed_precision)


def _run(store, tmp_path, name, **kwargs):
    history = train(_config(**kwargs), store, tmp_path / name / "models", tmp_path / name / "live", verbose=0)
    return history.history, tmp_path / name / "models"


def test_same_seed_same_metrics_other_seed_other_metrics(store, tmp_path):
    first, models = _run(store, tmp_path, "a")
    second, _ = _run(store, tmp_path, "b")
    other, _ = _run(store, tmp_path, "c", seed=2)
    assert first == second
    assert first["loss"] != other["loss"]
    assert list(list_checkpoints(models)) == [1, 2]
    assert (models / "history.csv").is_file()


def test_training_batches_are_augmented_consistently(store):
    ds = tile_dataset(store, "train", 50, seed=3, training=True)
    images, masks = next(iter(ds))
    images, masks = images.numpy(), masks.numpy()
    # the car colour (blue channel high) must sit exactly on car pixels after any rotation/mirror
    blue = images[..., 2] > 150
    assert np.array_equal(blue, masks == 4)


def test_validation_batches_follow_the_store_order(store):
    ds = tile_dataset(store, "val", 100, seed=3, training=False)
    _, masks = next(iter(ds))
    stored = np.concatenate([m for _, m in store.shards("val")])
    assert np.array_equal(masks.numpy(), stored)


def test_mixed_precision_on_trains_on_cpu_with_a_float32_head(store, tmp_path):
    import keras

    history, models = _run(store, tmp_path, "mixed", epochs=1, mixed_precision="on")
    assert np.isfinite(history["loss"]).all()
    model = keras.saving.load_model(models / "epoch_001.keras", compile=False)
    assert model.get_layer("enc0_conv1").dtype_policy.name == "mixed_float16"
    assert model.get_layer("probabilities").dtype_policy.compute_dtype == "float32"
    out = model.predict(np.zeros((1, 32, 32, 3), np.float32), verbose=0)
    assert out.dtype == np.float32 and np.allclose(out.sum(-1), 1, atol=1e-3)
    # the policy does not leak into later models
    assert keras.mixed_precision.global_policy().name == "float32"


@pytest.mark.parametrize("value, expected", [("on", True), ("off", False)])
def test_switches(value, expected):
    from aerialseg.training import resolve_switch

    assert resolve_switch(value) is expected
    import tensorflow as tf
    assert resolve_switch("auto") is bool(tf.config.list_physical_devices("GPU"))
