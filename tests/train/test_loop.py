"""Training on a tiny tile store: determinism, resume after SIGKILL, strategies, the input pipeline.

The runs in processes of their own (a SIGKILL, logical devices set before TensorFlow starts, a
two-process cluster) are slow; the in-process runs share one trained 2-epoch run where they can.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aerialseg.core.config.params import JitterParams
from aerialseg.core.names import list_checkpoints
from aerialseg.train.input_pipeline import tile_dataset
from aerialseg.train.loop import train

from tiny_training import config, final_weights, make_store

SCRIPT = Path(__file__).resolve().parents[1] / "tiny_training.py"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return make_store(tmp_path_factory.mktemp("tiles"))


def _run(store, folder: Path, **kwargs):
    outcome = train(config(**kwargs), store, folder / "models", folder / "live", folder / "state", verbose=0)
    return outcome.history, outcome.reused


@pytest.fixture(scope="module")
def two_epochs(store, tmp_path_factory):
    """The default tiny run (seed 1, 2 epochs), trained once: (its folder, its history). Tests that
    change a run work on a copy (``_copy``)."""
    folder = tmp_path_factory.mktemp("two_epochs")
    history, _ = _run(store, folder, epochs=2)
    return folder, history


def _copy(run: Path, folder: Path) -> Path:
    shutil.copytree(run, folder)
    return folder


def _script(store, out: Path, *args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(SCRIPT), str(store.folder), str(out), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, **(env or {})})


def _finish(process: subprocess.Popen, timeout: int = 300) -> str:
    output, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, output[-3000:]
    return output


def _live_rows(folder: Path) -> dict[str, list[tuple[int, float]]]:
    rows = {}
    base = folder / "plots" / "metrics"
    for tsv in sorted(base.rglob("*.tsv")):
        table = pd.read_csv(tsv, sep="\t")
        rows[str(tsv.relative_to(base))] = list(zip(table["step"], table[table.columns[-1]].round(6), strict=True))
    return rows


def test_same_seed_same_metrics_other_seed_other_metrics(store, two_epochs, tmp_path):
    first_run, first = two_epochs
    second, _ = _run(store, tmp_path / "b")
    other, _ = _run(store, tmp_path / "c", seed=2)
    assert first == second
    assert first["loss"] != other["loss"]
    # identical weights give identical checkpoint bytes (no save time inside), so DVC's hash agrees too
    for epoch in ("001", "002"):
        name = f"models/epoch_{epoch}.keras"
        assert (first_run / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert list(list_checkpoints(first_run / "models")) == [1, 2]
    assert (first_run / "models" / "history.csv").is_file()


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_result_as_an_uninterrupted_one(store, tmp_path):
    epochs = "6"
    _finish(_script(store, tmp_path / "whole", "--epochs", epochs))

    process = _script(store, tmp_path / "killed", "--epochs", epochs)
    state = tmp_path / "killed" / "state"
    deadline = time.time() + 240
    while not list(state.glob("state_0002.weights.h5")) and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert process.poll() is None, "the run ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (tmp_path / "killed" / "models" / "epoch_006.keras").exists()

    output = _finish(_script(store, tmp_path / "killed", "--epochs", epochs))
    resumed = int(output.split("resumed=")[1].split()[0])
    assert 2 <= resumed < 6

    whole_weights = final_weights(tmp_path / "whole" / "models")
    for ours, theirs in zip(final_weights(tmp_path / "killed" / "models"), whole_weights, strict=True):
        np.testing.assert_array_equal(ours, theirs)
    whole_history = pd.read_csv(tmp_path / "whole" / "models" / "history.csv")
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "killed" / "models" / "history.csv"), whole_history)
    assert _live_rows(tmp_path / "killed" / "live") == _live_rows(tmp_path / "whole" / "live")
    tsvs = [str(t.relative_to(tmp_path / "whole")) for t in (tmp_path / "whole").rglob("*.tsv")]
    for log in ["models/history.csv", *tsvs]:
        assert (tmp_path / "killed" / log).read_bytes() == (tmp_path / "whole" / log).read_bytes(), log
    assert [r[0] for r in _live_rows(tmp_path / "whole" / "live")["train/loss.tsv"]] == [0, 1, 2, 3, 4, 5]
    summary = json.loads((tmp_path / "killed" / "live" / "metrics.json").read_text())
    assert summary["step"] == 5


def test_a_longer_run_continues_a_finished_shorter_one(store, two_epochs, tmp_path):
    _copy(two_epochs[0], tmp_path / "grown")
    history, resumed = _run(store, tmp_path / "grown", epochs=3)
    assert resumed == 2 and len(history["loss"]) == 1
    _run(store, tmp_path / "fresh", epochs=3)
    grown, fresh = final_weights(tmp_path / "grown" / "models"), final_weights(tmp_path / "fresh" / "models")
    for ours, theirs in zip(grown, fresh, strict=True):
        np.testing.assert_array_equal(ours, theirs)
    # other settings retrain from scratch
    _, resumed = _run(store, tmp_path / "grown", epochs=4, learning_rate=0.001)
    assert resumed == 0


def test_a_finished_run_is_reused_and_a_shorter_one_cut_back(store, two_epochs, tmp_path):
    run = tmp_path / "run"
    _run(store, run, epochs=3)
    state = run / "state" / "state_0003.weights.h5"
    stamp = state.stat().st_mtime_ns
    checkpoint = (run / "models" / "epoch_003.keras").read_bytes()
    history, reused = _run(store, run, epochs=3)
    assert reused == 3 and history == {}
    assert state.stat().st_mtime_ns == stamp  # nothing trained, nothing saved again
    assert (run / "models" / "epoch_003.keras").read_bytes() == checkpoint

    # fewer epochs: the outputs become those of a 2-epoch run, without training
    history, reused = _run(store, run, epochs=2)
    assert reused == 2 and history == {}
    short = two_epochs[0]  # a 2-epoch run trained as such
    assert list(list_checkpoints(run / "models")) == [1, 2]
    assert (run / "models" / "history.csv").read_bytes() == (short / "models" / "history.csv").read_bytes()
    for log in (short / "live").rglob("*.tsv"):
        assert (run / "live" / log.relative_to(short / "live")).read_bytes() == log.read_bytes()
    assert (run / "live" / "metrics.json").read_bytes() == (short / "live" / "metrics.json").read_bytes()


def test_a_lost_last_checkpoint_is_rebuilt_from_the_state(store, two_epochs, tmp_path):
    _copy(two_epochs[0], tmp_path / "r")
    expected = final_weights(tmp_path / "r" / "models")
    (tmp_path / "r" / "models" / "epoch_002.keras").unlink()
    _, reused = _run(store, tmp_path / "r", epochs=2)
    assert reused == 2
    for ours, theirs in zip(final_weights(tmp_path / "r" / "models"), expected, strict=True):
        np.testing.assert_array_equal(ours, theirs)


def test_resume_skips_an_unreadable_newest_state(store, two_epochs, tmp_path):
    from aerialseg.train import resume

    _copy(two_epochs[0], tmp_path / "r")
    (tmp_path / "r" / "state" / "state_0002.weights.h5").write_bytes(b"truncated by a power loss")
    history, resumed = _run(store, tmp_path / "r", epochs=3)
    assert resumed == 1 and len(history["loss"]) == 2
    assert list(resume.list_states(tmp_path / "r" / "state")) == [2, 3]


def test_trimmed_logs_are_byte_prefixes_whatever_their_line_endings(tmp_path):
    from aerialseg.train import resume

    history = tmp_path / "history.csv"
    history.write_bytes(b"epoch,loss\r\n0,1.5\r\n1,1.25\r\n2,1.0\r\n")
    live = tmp_path / "live" / "plots" / "metrics" / "train"
    live.mkdir(parents=True)
    (live / "loss.tsv").write_bytes(b"step\tloss\n0\t1.5\n1\t1.25\n2\t1.0\n")
    resume.trim_history(history, 2)
    resume.trim_live(tmp_path / "live", 1)
    assert history.read_bytes() == b"epoch,loss\r\n0,1.5\r\n1,1.25\r\n"
    assert (live / "loss.tsv").read_bytes() == b"step\tloss\n0\t1.5\n"


# With TensorFlow 2.21's oneDNN kernels on this AVX-512 CPU, replica 1 of a MirroredStrategy over
# logical CPUs is fed the wrong tensor ("input depth must be evenly divisible by filter depth: 3
# vs 4") and a worker of a two-process MultiWorkerMirroredStrategy dies mid-epoch; both pass with
# oneDNN off (as on the AVX2 machines before). The strategies' arithmetic is what these tests
# compare, so every run of them, the one-device reference too, goes without oneDNN.
NO_ONEDNN = {"TF_ENABLE_ONEDNN_OPTS": "0"}


@pytest.mark.slow
def test_mirrored_over_two_logical_cpus_matches_one_device(store, tmp_path):
    _finish(_script(store, tmp_path / "one", "--epochs", "1", env=NO_ONEDNN))
    output = _finish(_script(store, tmp_path / "two", "--epochs", "1", "--strategy", "mirrored",
                             "--logical-cpus", "2", env=NO_ONEDNN))
    assert "epochs_run=1" in output
    one = pd.read_csv(tmp_path / "one" / "models" / "history.csv")
    two = pd.read_csv(tmp_path / "two" / "models" / "history.csv")
    # Stated tolerance. The focal term is a mean over pixels and agrees exactly; the Dice
    # term is computed per replica's half batch, so the epoch loss agrees within 2 % (a
    # gradient summed instead of averaged over replicas would double it). Adam moves a
    # weight by about lr = 0.003 per step, so after one epoch's few steps the weights may
    # differ by up to 1e-2 and no more.
    assert two["loss"][0] == pytest.approx(one["loss"][0], rel=0.02)
    weights_one, weights_two = final_weights(tmp_path / "one" / "models"), final_weights(tmp_path / "two" / "models")
    for a, b in zip(weights_one, weights_two, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-2)


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.mark.slow
def test_two_multi_worker_processes_on_loopback_complete_an_epoch(store, tmp_path):
    cluster = {"worker": [f"localhost:{port}" for port in _free_ports(2)]}
    workers = [
        _script(store, tmp_path / f"w{index}", "--epochs", "1", "--strategy", "multi_worker",
                env={**NO_ONEDNN,
                     "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})})
        for index in range(2)
    ]
    outputs = [_finish(worker) for worker in workers]
    assert all("epochs_run=1" in output for output in outputs)
    # worker 0 is the chief and the only one that writes outputs
    assert list(list_checkpoints(tmp_path / "w0" / "models")) == [1]
    assert not (tmp_path / "w1" / "models").exists()


def test_multi_worker_without_tf_config_is_a_clear_error(store, tmp_path, monkeypatch):
    from aerialseg.core.errors import ParamsError

    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ParamsError, match="train.strategy: multi_worker needs the TF_CONFIG"):
        _run(store, tmp_path / "x", strategy="multi_worker")


def test_global_batch_must_split_over_replicas():
    import tensorflow as tf

    from aerialseg.core.errors import ParamsError
    from aerialseg.train.distribute import replica_batch

    class Replicas:
        num_replicas_in_sync = 3

    assert replica_batch(tf.distribute.get_strategy(), 8) == 8
    assert replica_batch(Replicas(), 9) == 3
    with pytest.raises(ParamsError, match="batch_size: 8 does not split evenly over 3 replicas"):
        replica_batch(Replicas(), 8)


def test_training_batches_are_augmented_consistently(store):
    ds = tile_dataset(store, "train", 50, seed=3, training=True)
    images, masks = next(iter(ds))
    images, masks = images.numpy(), masks.numpy()
    # the car colour (blue channel high) must sit exactly on car pixels after any rotation/mirror
    blue = images[..., 2] > 150
    assert np.array_equal(blue, masks == 4)
    # and the batch really is transformed: not every tile is in its stored orientation
    stored = np.concatenate([m for _, m in store.shards("train")])
    assert not all(any(np.array_equal(m, s) for s in stored) for m in masks)


def test_each_epoch_is_a_function_of_seed_and_epoch_only(store):
    def batches(first, last):
        ds = tile_dataset(store, "train", 4, seed=5, training=True, first_epoch=first, epochs=last)
        return [(i.numpy(), m.numpy()) for i, m in ds]

    steps = -(-store.count("train") // 4)
    whole = batches(0, 3)
    assert len(whole) == 3 * steps
    later = batches(2, 3)
    for (a, b), (c, d) in zip(whole[2 * steps:], later, strict=True):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, d)
    # epochs differ from each other, and every epoch holds every tile once
    assert not np.array_equal(whole[0][1], whole[steps][1])
    assert sum(len(m) for _, m in whole[:steps]) == store.count("train")


def test_photometric_jitter_changes_colours_not_masks(store):
    plain = tile_dataset(store, "train", 50, seed=3, training=True)
    jitter = JitterParams(brightness=0.2, contrast=0.3, saturation=0.3, hue=0.05)
    jittered = tile_dataset(store, "train", 50, seed=3, training=True, jitter=jitter)
    again = tile_dataset(store, "train", 50, seed=3, training=True, jitter=jitter)
    (a, ma), (b, mb), (c, _) = next(iter(plain)), next(iter(jittered)), next(iter(again))
    np.testing.assert_array_equal(ma.numpy(), mb.numpy())
    assert np.abs(a.numpy() - b.numpy()).mean() > 1.0
    np.testing.assert_array_equal(b.numpy(), c.numpy())
    assert b.numpy().min() >= 0 and b.numpy().max() <= 255


def test_validation_batches_follow_the_store_order(store):
    ds = tile_dataset(store, "val", 100, seed=3, training=False)
    _, masks = next(iter(ds))
    stored = np.concatenate([m for _, m in store.shards("val")])
    assert np.array_equal(masks.numpy(), stored)


def test_class_weights_train_and_change_the_result(store, tmp_path):
    plain, _ = _run(store, tmp_path / "p", epochs=1)
    weighted, _ = _run(store, tmp_path / "w", epochs=1, class_weights="median_frequency")
    assert np.isfinite(weighted["loss"]).all()
    assert weighted["loss"] != plain["loss"]


def test_mixed_precision_on_trains_on_cpu_with_a_float32_head(store, tmp_path):
    import keras

    history, _ = _run(store, tmp_path / "mixed", epochs=1, mixed_precision="on")
    assert np.isfinite(history["loss"]).all()
    model = keras.saving.load_model(tmp_path / "mixed" / "models" / "epoch_001.keras", compile=False)
    assert model.get_layer("enc0_conv1").dtype_policy.name == "mixed_float16"
    assert model.get_layer("probabilities").dtype_policy.compute_dtype == "float32"
    out = model.predict(np.zeros((1, 32, 32, 3), np.float32), verbose=0)
    assert out.dtype == np.float32 and np.allclose(out.sum(-1), 1, atol=1e-3)
    # the policy does not leak into later models
    assert keras.mixed_precision.global_policy().name == "float32"


@pytest.mark.parametrize("value, expected", [("on", True), ("off", False)])
def test_switches(value, expected):
    from aerialseg.train.compiling import resolve_switch

    assert resolve_switch(value) is expected
    import tensorflow as tf
    assert resolve_switch("auto") is bool(tf.config.list_physical_devices("GPU"))


@pytest.mark.parametrize("decay", [0.97, 0.99])
def test_a_400_epoch_run_keeps_learning_to_its_last_epoch(decay):
    from aerialseg.core.config.params import TrainParams
    from aerialseg.train.schedules import learning_rate

    train = TrainParams(learning_rate=0.003, lr_schedule="exponential", lr_decay=decay, dice_weight=1.0,
                        focal_weight=1.0, focal_gamma=2.0, lr_floor=0.01)
    steps = 18
    schedule = learning_rate(train, steps)
    last = float(schedule(399 * steps + steps - 1))  # the last step of epoch 400
    assert last >= 0.01 * 0.003 * (1 - 1e-6)
    # above the floor it is Keras' staircase decay, step for step: earlier runs are unchanged
    plain = __import__("keras").optimizers.schedules.ExponentialDecay(0.003, steps, decay, staircase=True)
    for step in (0, 17, 18, 25 * steps, 100 * steps):
        if float(plain(step)) > 0.01 * 0.003:
            assert float(schedule(step)) == float(plain(step))
