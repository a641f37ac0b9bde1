"""U-Nets on pretrained backbones: weights by path, skip taps, fine-tuning, all without network."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from aerialseg.core.errors import DataError
from aerialseg.core.framework import keras
from aerialseg.train.compiling import compile_model, unfreeze_encoder
from aerialseg.train.encoders import ENCODERS, build_encoder_unet, load_backbone

from tiny_training import config, final_weights, make_store

# Every test that builds a whole backbone (keras.applications, 4-8 s each) is slow: make test runs
# them, make test-fast does not.
NAMES = sorted(ENCODERS)
SCRIPT = Path(__file__).resolve().parents[1] / "tiny_training.py"


def _split(model: keras.Model) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(encoder weights, decoder and head weights) of a U-Net on a backbone."""
    encoder = model.get_layer("encoder")
    fixed = {"encoder", "image", "bgr_minus_mean"}
    decoder = [w for layer in model.layers if layer.name not in fixed for w in layer.get_weights()]
    return encoder.get_weights(), decoder


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_weights_from_a_file_fill_the_encoder_and_leave_the_decoder_fresh(name, tmp_path):
    keras.utils.set_random_seed(1)
    path = tmp_path / f"{name}_notop.weights.h5"
    saved = ENCODERS[name].build(None)
    saved.save_weights(path)

    keras.utils.set_random_seed(2)
    loaded = build_encoder_unet(name, str(path), base_filters=4, max_filters=16)
    keras.utils.set_random_seed(2)
    fresh = build_encoder_unet(name, "none", base_filters=4, max_filters=16)

    loaded_encoder, loaded_decoder = _split(loaded)
    fresh_encoder, fresh_decoder = _split(fresh)
    assert len(loaded_encoder) == len(saved.get_weights())
    for ours, theirs in zip(loaded_encoder, saved.get_weights(), strict=True):
        np.testing.assert_array_equal(ours, theirs)
    assert any(not np.array_equal(a, b) for a, b in zip(loaded_encoder, fresh_encoder, strict=True))
    assert loaded_decoder and all(np.array_equal(a, b) for a, b in zip(loaded_decoder, fresh_decoder, strict=True))


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_skip_layers_exist_at_their_strides_and_the_output_is_full_size(name):
    backbone = ENCODERS[name].build(None)
    image = np.zeros((1, 64, 96, 3), "float32")
    for stride, layer in ENCODERS[name].skips.items():
        tap = keras.Model(backbone.inputs, backbone.output if layer is None else backbone.get_layer(layer).output)
        assert tap.predict(image, verbose=0).shape[1:3] == (64 // stride, 96 // stride), (layer, stride)
    model = build_encoder_unet(name, "none", base_filters=4, max_filters=16)
    probabilities = model.predict(image + 128, verbose=0)
    assert probabilities.shape == (1, 64, 96, 6)
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=1e-5)


def _batch(size: int = 32):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (4, size, size, 3)).astype("float32")
    masks = rng.integers(0, 6, (4, size, size)).astype("int32")
    return images, masks


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_one_training_step_frozen_then_thawed_at_the_encoder_learning_rate(name):
    """Frozen: the encoder (batch-norm statistics included) does not move. Thawed: a fresh
    Adam's first step moves every weight by about its learning rate, the encoder's scaled."""
    cfg = config(encoder=name, freeze_encoder_epochs=1, encoder_lr_factor=0.1, batch_norm=True,
                 lr_schedule="constant", learning_rate=0.01, base_filters=4, max_filters=16)
    keras.utils.set_random_seed(3)
    model = compile_model(cfg, steps_per_epoch=1, frozen=True)
    model.run_eagerly = True  # the same step, without minutes of tracing a backbone's graph
    images, masks = _batch()
    encoder_before, decoder_before = _split(model)
    loss = model.train_on_batch(images, masks, return_dict=True)["loss"]
    assert np.isfinite(loss)
    encoder_after, decoder_after = _split(model)
    assert all(np.array_equal(a, b) for a, b in zip(encoder_before, encoder_after, strict=True))
    assert any(not np.array_equal(a, b) for a, b in zip(decoder_before, decoder_after, strict=True))

    unfreeze_encoder(model, cfg, steps_per_epoch=1, class_weights=None, epoch=1)
    model.run_eagerly = True
    trainable = {id(v) for v in model.get_layer("encoder").trainable_variables}
    before = {id(v): np.array(v.numpy()) for v in model.trainable_variables}
    model.train_on_batch(images, masks)
    encoder_steps = [np.abs(v.numpy() - before[id(v)]).max() for v in model.trainable_variables if id(v) in trainable]
    decoder_steps = [np.abs(v.numpy() - before[id(v)]).max() for v in model.trainable_variables
                     if id(v) not in trainable]
    assert max(encoder_steps) == pytest.approx(0.001, rel=0.02)
    assert max(decoder_steps) == pytest.approx(0.01, rel=0.02)


@pytest.mark.slow
def test_the_schedule_carries_on_across_the_thaw():
    from aerialseg.train.schedules import learning_rate

    cfg = config(encoder="efficientnetv2b0", freeze_encoder_epochs=3, lr_decay=0.5, base_filters=4, max_filters=16)
    model = compile_model(cfg, steps_per_epoch=2, frozen=True)
    unfreeze_encoder(model, cfg, steps_per_epoch=2, class_weights=None, epoch=3)
    assert int(model.optimizer.iterations.numpy()) == 0
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(0.003 * 0.5**3)
    assert float(learning_rate(cfg.train, 2)(6)) == pytest.approx(0.003 * 0.5**3)


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_a_checkpoint_of_each_encoder_loads_for_prediction(name, tmp_path, tiny_checkpoint):
    from aerialseg.predict.loading import input_multiple, load_model

    path = tmp_path / "model.keras"
    model = tiny_checkpoint(path, encoder=name, base_filters=4, seed=4)
    loaded = load_model(path)
    image = np.random.default_rng(1).integers(0, 256, (1, 32, 64, 3)).astype("float32")
    np.testing.assert_allclose(loaded.predict(image, verbose=0), model.predict(image, verbose=0), atol=1e-6)
    assert input_multiple(loaded)[0] == 32


def test_a_missing_weights_file_is_one_line_naming_the_key(tmp_path):
    with pytest.raises(DataError) as raised:
        load_backbone("resnet50", str(tmp_path / "gone.h5"))
    message = str(raised.value)
    assert message.startswith("model.encoder_weights: ") and "gone.h5: file not found" in message
    assert "\n" not in message


@pytest.mark.slow
def test_weights_of_another_backbone_are_refused_in_one_line(tmp_path):
    path = tmp_path / "effnet.weights.h5"
    ENCODERS["efficientnetv2b0"].build(None).save_weights(path)
    with pytest.raises(DataError) as raised:
        load_backbone("convnext_tiny", str(path))
    assert str(raised.value).startswith(f"model.encoder_weights: {path}: not weights of the convnext_tiny backbone")


@pytest.mark.slow
def test_unreachable_imagenet_download_says_how_to_provide_the_file(tmp_path):
    """No network here or in CI, and a proxy on a closed port makes sure of it."""
    code = ("from aerialseg.train.encoders import load_backbone\n"
            "from aerialseg.core.errors import DataError\n"
            "try:\n    load_backbone('efficientnetv2b0', 'imagenet')\n"
            "except DataError as err:\n    print(err)\n")
    closed = "http://127.0.0.1:9"
    env = {**os.environ, "KERAS_HOME": str(tmp_path), "https_proxy": closed, "HTTPS_PROXY": closed,
           "http_proxy": closed, "HTTP_PROXY": closed, "no_proxy": "", "NO_PROXY": ""}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    lines = result.stdout.strip().splitlines()  # Keras says "Downloading data from <url>" first
    assert lines and "Traceback" not in result.stderr, result.stdout + result.stderr[-2000:]
    assert lines[-1].startswith("model.encoder_weights: cannot get the ImageNet weights of efficientnetv2b0")
    assert "set model.encoder_weights to its path" in lines[-1]


def _train_script(store, out: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(SCRIPT), str(store.folder), str(out), "--encoder", "efficientnetv2b0",
                             "--freeze-encoder-epochs", "1", "--eager", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(process: subprocess.Popen) -> str:
    output, _ = process.communicate(timeout=900)
    assert process.returncode == 0, output[-3000:]
    return output


@pytest.mark.slow
def test_fine_tuning_killed_at_the_thaw_resumes_to_the_uninterrupted_weights(tmp_path):
    """Two epochs, the first frozen: killed once the frozen epoch's state exists, the run resumes
    into the thawed epoch. The uninterrupted run trains alongside (two cores, two processes)."""
    store = make_store(tmp_path / "tiles")
    whole = _train_script(store, tmp_path / "whole", "--epochs", "2")
    process = _train_script(store, tmp_path / "killed", "--epochs", "2")
    boundary = tmp_path / "killed" / "state" / "state_0001.weights.h5"  # the last frozen epoch's state
    deadline = time.time() + 600
    while not boundary.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert process.poll() is None, "the run ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.communicate()
    assert "resumed=0 epochs_run=2" in _finish(whole)

    output = _finish(_train_script(store, tmp_path / "killed", "--epochs", "2"))
    assert "resumed=1 " in output  # the thawed epoch ran after the restart
    for ours, theirs in zip(final_weights(tmp_path / "killed" / "models"), final_weights(tmp_path / "whole" / "models"),
                            strict=True):
        np.testing.assert_array_equal(ours, theirs)
    assert ((tmp_path / "killed" / "models" / "history.csv").read_bytes()
            == (tmp_path / "whole" / "models" / "history.csv").read_bytes())


@pytest.mark.slow
def test_a_run_is_keyed_on_the_weights_file_contents_and_train_depends_on_its_folder(tmp_path, monkeypatch):
    """The key decides whether a saved state is reused (tests/train/test_loop.py shows reuse and
    retraining for a key that changes); here: same bytes, same key; other bytes, other key."""
    import yaml

    from aerialseg.core.config.params import ENCODER_WEIGHTS_DIR
    from aerialseg.train.loop import encoder_weights_digest

    from conftest import ROOT

    monkeypatch.chdir(tmp_path)
    weights = tmp_path / ENCODER_WEIGHTS_DIR / "effnet.weights.h5"
    weights.parent.mkdir()
    keras.utils.set_random_seed(1)
    ENCODERS["efficientnetv2b0"].build(None).save_weights(weights)
    model = config(encoder="efficientnetv2b0", encoder_weights=f"{ENCODER_WEIGHTS_DIR}/effnet.weights.h5").model
    first = encoder_weights_digest(model)
    assert first and encoder_weights_digest(model) == first
    weights.write_bytes(weights.read_bytes())  # rewritten, same bytes
    assert encoder_weights_digest(model) == first
    keras.utils.set_random_seed(2)
    ENCODERS["efficientnetv2b0"].build(None).save_weights(weights)
    assert encoder_weights_digest(model) not in (None, first)
    assert encoder_weights_digest(config(encoder="resnet50", encoder_weights="imagenet").model) is None
    stage = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["train"]
    assert ENCODER_WEIGHTS_DIR in stage["deps"]  # DVC reruns train when a file there changes
