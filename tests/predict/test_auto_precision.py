"""--backend auto on an exported model: its own int8 model where this machine runs it faster, measured once
and cached per machine and pair of files; the CLI, locally and on Dask, runs the file picked."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import rasterio

from aerialseg.cli import main
from aerialseg.core.io import write_rgb
from aerialseg.core.names import EXPORT_FP32, EXPORT_INT8, EXPORTS, MODEL_CARD, MODELS
from aerialseg.predict.auto_precision import auto_precision, int8_sibling, pipeline_export, speed_windows
from aerialseg.predict.onnx_model import onnx_card
from aerialseg.predict.quantize import PAYS

from conftest import save_tiny_checkpoint

WINDOW = 32
PREDICT = ["--tta", "none", "--model-gsd", "0.4", "--gsd", "0.4"]


def _export(checkpoint: Path, out: Path, *extra: str) -> None:
    assert main(["export", str(checkpoint), "--format", "onnx", "--window", str(WINDOW), "--gsd", "0.4",
                 "-o", str(out), *extra]) == 0


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """A tiny checkpoint exported twice by the CLI: ``model.onnx`` (fp32) and ``model_int8.onnx`` beside it,
    calibrated on an image; and a second checkpoint's fp32 export elsewhere."""
    folder = tmp_path_factory.mktemp("auto")
    checkpoint = folder / "checkpoint" / "model.keras"
    checkpoint.parent.mkdir()
    save_tiny_checkpoint(checkpoint, depth=2, base_filters=8, seed=11)
    coarse = np.random.default_rng(5).integers(0, 256, (12, 12, 3)).astype(np.uint8)
    image = folder / "scene.png"
    write_rgb(image, np.repeat(np.repeat(coarse, 8, axis=0), 8, axis=1))
    fp32 = folder / "export" / "model.onnx"
    fp32.parent.mkdir()
    _export(checkpoint, fp32)
    calibrate = ["--quantize", "int8", "--calibration", str(image), "--calibration-windows", "8"]
    _export(checkpoint, fp32.parent / "model_int8.onnx", *calibrate)
    other = folder / "other" / "model.keras"
    other.parent.mkdir()
    save_tiny_checkpoint(other, depth=2, base_filters=8, seed=12)
    _export(other, other.with_suffix(".onnx"))
    return {"checkpoint": checkpoint, "fp32": fp32, "int8": fp32.parent / "model_int8.onnx", "image": image,
            "calibrate": calibrate, "other": other.with_suffix(".onnx")}


def _entries(cache: Path) -> list[Path]:
    return sorted((cache / "int8_speed").glob("*.json"))


def _set_speed(entry: Path, speedup: float) -> None:
    """Rewrite a cached measurement's result: what a machine where int8 is that fast would have cached."""
    payload = json.loads(entry.read_text())
    payload["int8_over_fp32"] = speedup
    entry.write_text(json.dumps(payload))


def test_the_int8_export_names_the_fp32_file_it_was_quantised_from(pair):
    """Two separate exports of one checkpoint: the int8 one's card records the SHA-256 of the fp32 file, as
    written on its own (the conversion is a function of the checkpoint); the export stage's names follow
    the sibling rule auto looks by."""
    quantization = onnx_card(pair["int8"]).export.quantization
    assert quantization.source_sha256 == hashlib.sha256(pair["fp32"].read_bytes()).hexdigest()
    assert onnx_card(pair["fp32"]).export.quantization is None
    assert int8_sibling(EXPORTS / EXPORT_FP32) == EXPORTS / EXPORT_INT8


def test_auto_measures_once_then_reuses_the_measurement_and_measures_a_new_int8_model_again(pair, tmp_path,
                                                                                           monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("AERIALSEG_CACHE_DIR", str(cache))
    first = auto_precision(pair["fp32"], WINDOW)
    assert first.note is not None and f"(measured now, cached in {cache / 'int8_speed'})" in first.note
    [entry] = _entries(cache)
    stored = json.loads(entry.read_text())
    key = stored["key"]
    assert key["fp32"] == hashlib.sha256(pair["fp32"].read_bytes()).hexdigest()
    assert key["int8"] == hashlib.sha256(pair["int8"].read_bytes()).hexdigest()
    assert key["window"] == WINDOW and key["machine"]["cores"] == len(os.sched_getaffinity(0))
    assert key["machine"]["onnxruntime"] == onnxruntime.__version__
    assert f"runs {stored['int8_over_fp32']:.2f}x its speed" in first.note
    assert first.path == (pair["int8"] if stored["int8_over_fp32"] >= PAYS else pair["fp32"])

    before = entry.read_bytes()
    again = auto_precision(pair["fp32"], WINDOW)  # reused: said with the first measurement's date, not rewritten
    assert f"(measured {stored['measured']}, cached in" in again.note and entry.read_bytes() == before
    for speedup, picked in ((3.0, pair["int8"]), (PAYS, pair["int8"]), (PAYS - 0.01, pair["fp32"]),
                            (0.8, pair["fp32"])):
        _set_speed(entry, speedup)
        assert auto_precision(pair["fp32"], WINDOW).path == picked, speedup
    entry.write_text("{")  # a damaged entry is measured again
    assert "measured now" in auto_precision(pair["fp32"], WINDOW).note
    assert auto_precision(pair["fp32"], 2 * WINDOW).note.count("measured now") == 1  # another window: measured
    assert len(_entries(cache)) == 2

    requantised = tmp_path / "export"  # the same fp32 file with another int8 model: measured again
    shutil.copytree(pair["fp32"].parent, requantised)
    _export(pair["checkpoint"], requantised / "model_int8.onnx", *pair["calibrate"], "--seed", "7")
    assert "measured now" in auto_precision(requantised / "model.onnx", WINDOW).note
    assert len(_entries(cache)) == 3


def test_processes_started_together_share_one_measurement(pair, tmp_path):
    """A job array's processes on one machine: one measures, the others wait for it and read it, so all
    run the same file."""
    script = ("import sys; from pathlib import Path; from aerialseg.predict.auto_precision import auto_precision; "
              f"pick = auto_precision(Path(sys.argv[1]), {WINDOW}); print(pick.path.name, '|', pick.note)")
    env = {**os.environ, "AERIALSEG_CACHE_DIR": str(tmp_path / "cache")}
    runs = [subprocess.Popen([sys.executable, "-c", script, str(pair["fp32"])], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True) for _ in range(3)]
    said = [run.communicate(timeout=300)[0] for run in runs]
    assert all(run.returncode == 0 for run in runs)
    assert sum("(measured now, cached in" in line for line in said) == 1, said
    assert sum("cached in" in line for line in said) == 3 and len({line.split("|")[0] for line in said}) == 1
    assert len(_entries(tmp_path / "cache")) == 1


def test_without_a_writable_cache_auto_measures_and_says_so(pair, tmp_path, monkeypatch):
    (tmp_path / "a_file").write_text("")
    monkeypatch.setenv("AERIALSEG_CACHE_DIR", str(tmp_path / "a_file" / "cache"))  # cannot be made
    pick = auto_precision(pair["fp32"], WINDOW)
    assert f"(measured now; not cached, {tmp_path / 'a_file' / 'cache' / 'int8_speed'} is not writable)" in pick.note
    assert pick.path == (pair["int8"] if pick.int8_over_fp32 >= PAYS else pair["fp32"])


def test_auto_weighs_only_the_int8_model_of_this_very_file(pair, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("AERIALSEG_CACHE_DIR", str(cache))
    stranger = tmp_path / "model.onnx"  # another checkpoint's export, with the first one's int8 file beside it
    shutil.copy(pair["other"], stranger)
    shutil.copy(pair["int8"], tmp_path / "model_int8.onnx")
    pick = auto_precision(stranger, WINDOW)
    assert pick.path == stranger and "model_int8.onnx beside it was not quantised from this file" in pick.note
    (tmp_path / "model_int8.onnx").write_bytes(b"not onnx")  # a damaged file beside it: fp32, said
    pick = auto_precision(stranger, WINDOW)
    assert pick.path == stranger and "not weighing " in pick.note and "not a readable ONNX model" in pick.note
    alone = tmp_path / "alone.onnx"
    shutil.copy(pair["fp32"], alone)
    assert auto_precision(alone, WINDOW).path == alone and auto_precision(alone, WINDOW).note is None
    assert auto_precision(pair["int8"], WINDOW).path == pair["int8"]  # an int8 file runs as it is
    assert not cache.exists()  # nothing was measured


def test_speed_windows_cover_the_bands_ranges_and_are_seeded(pair):
    inputs = onnx_card(pair["fp32"]).input
    windows = speed_windows(inputs, WINDOW, 3)
    assert windows.shape == (3, WINDOW, WINDOW, 3) and windows.dtype == np.float32
    assert windows.min() >= 0 and windows.max() <= 255 and windows.std() > 50
    np.testing.assert_array_equal(windows, speed_windows(inputs, WINDOW, 3))


def _map(path: Path) -> np.ndarray:
    with rasterio.open(path) as source:
        return source.read(1)


def test_the_cli_predicts_with_the_file_auto_picked_locally_and_on_dask(pair, tmp_path, monkeypatch, capsys):
    from distributed import LocalCluster

    monkeypatch.setenv("AERIALSEG_CACHE_DIR", str(tmp_path / "cache"))
    fp32, int8, image = (str(pair[name]) for name in ("fp32", "int8", "image"))
    assert main(["predict", int8, image, "-o", str(tmp_path / "int8.tif"), *PREDICT]) == 0
    assert main(["predict", fp32, image, "-o", str(tmp_path / "fp32.tif"), "--backend", "onnx", *PREDICT]) == 0
    said = capsys.readouterr().err
    assert "model_int8.onnx" not in said.split("int8.tif")[-1]  # --backend onnx: fp32, no measurement
    auto_precision(pair["fp32"], WINDOW)
    [entry] = _entries(tmp_path / "cache")
    _set_speed(entry, 3.0)
    assert main(["predict", fp32, image, "-o", str(tmp_path / "auto.tif"), *PREDICT]) == 0
    said = capsys.readouterr().err
    assert "model.onnx: predicting with model_int8.onnx, its int8 model (--backend auto: model_int8.onnx runs " \
           "3.00x its speed on this CPU (measured" in said and "; precision int8" in said
    np.testing.assert_array_equal(_map(tmp_path / "auto.tif"), _map(tmp_path / "int8.tif"))
    (tmp_path / "in").mkdir()
    shutil.copy(image, tmp_path / "in" / "scene.png")
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster:
        assert main(["predict", fp32, str(tmp_path / "in"), "-o", str(tmp_path / "dask"), *PREDICT,
                     "--dask", cluster.scheduler_address]) == 0
    np.testing.assert_array_equal(_map(tmp_path / "dask" / "scene.tif"), _map(tmp_path / "int8.tif"))
    _set_speed(entry, 1.0)
    assert main(["predict", fp32, image, "-o", str(tmp_path / "auto_fp32.tif"), *PREDICT]) == 0
    assert "ONNX Runtime fp32 (--backend auto: model_int8.onnx runs 1.00x" in capsys.readouterr().err
    np.testing.assert_array_equal(_map(tmp_path / "auto_fp32.tif"), _map(tmp_path / "fp32.tif"))


def test_a_pipelines_checkpoint_runs_as_its_projects_export_of_it(pair, tmp_path, monkeypatch, capsys):
    """data/models/epoch_001.keras with data/export/model.onnx made from it: auto runs the export (and weighs its
    int8 model); another checkpoint in that folder is converted as before."""
    monkeypatch.setenv("AERIALSEG_CACHE_DIR", str(tmp_path / "cache"))
    models, exports = tmp_path / MODELS, tmp_path / EXPORTS
    models.mkdir(parents=True)
    shutil.copytree(pair["fp32"].parent, exports)
    checkpoint = models / "epoch_001.keras"
    shutil.copy(pair["checkpoint"], checkpoint)
    shutil.copy(pair["checkpoint"].parent / MODEL_CARD, models / MODEL_CARD)
    assert onnx_card(exports / EXPORT_FP32).export.checkpoint_sha256 == hashlib.sha256(
        checkpoint.read_bytes()).hexdigest()
    assert pipeline_export(checkpoint) == (exports / EXPORT_FP32).resolve()
    auto_precision(exports / EXPORT_FP32, WINDOW)
    _set_speed(_entries(tmp_path / "cache")[0], 3.0)
    image = str(pair["image"])
    window = ["--window", str(WINDOW)]  # the window measured (the tiny checkpoint's card says another)
    assert main(["predict", str(checkpoint), image, "-o", str(tmp_path / "auto.tif"), *PREDICT, *window]) == 0
    said = capsys.readouterr().err
    assert f"epoch_001.keras: as {(exports / EXPORT_FP32).resolve()}, its export" in said
    assert "predicting with model_int8.onnx" in said and "; precision int8" in said
    assert main(["predict", str(pair["int8"]), image, "-o", str(tmp_path / "int8.tif"), *PREDICT, *window]) == 0
    np.testing.assert_array_equal(_map(tmp_path / "auto.tif"), _map(tmp_path / "int8.tif"))

    other = models / "epoch_002.keras"  # not the exported checkpoint: converted in memory, as before
    save_tiny_checkpoint(other, depth=2, base_filters=8, seed=13, card=False)
    assert pipeline_export(other) is None and pipeline_export(pair["checkpoint"]) is None
    capsys.readouterr()
    assert main(["predict", str(other), image, "-o", str(tmp_path / "other.tif"), *PREDICT, *window]) == 0
    said = capsys.readouterr().err
    assert "on ONNX Runtime fp32 (--backend auto on a CPU" in said and "its export" not in said
