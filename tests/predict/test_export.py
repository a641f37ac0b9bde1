"""Exported models: ONNX Runtime and SavedModel agree with the Keras checkpoint; metadata round-trips."""

from __future__ import annotations

import json

import numpy as np
import pytest

from aerialseg.cli import main
from aerialseg.core.framework import tf
from aerialseg.core.io import read_npy, read_rgb, write_rgb
from aerialseg.core.palette import CLASS_NAMES
from aerialseg.predict.export import SAVEDMODEL_METADATA, export_model
from aerialseg.predict.onnx_model import METADATA_KEY, OnnxSegmenter

from conftest import save_tiny_checkpoint


def _checkpoint(folder, encoder: str = "none"):
    path = folder / f"{encoder}.keras"
    if encoder == "none":
        return path, save_tiny_checkpoint(path, depth=3, base_filters=4, batch_norm=True, seed=5)
    return path, save_tiny_checkpoint(path, encoder=encoder, base_filters=4, seed=5)


def _windows(size: int = 64, count: int = 3) -> np.ndarray:
    return np.random.default_rng(7).integers(0, 256, (count, size, size, 3)).astype(np.float32)


@pytest.mark.parametrize("encoder", ["none", "resnet50"])
def test_onnx_runtime_matches_keras_and_metadata_round_trips(encoder, tmp_path):
    checkpoint, model = _checkpoint(tmp_path, encoder)
    out = tmp_path / "model.onnx"
    metadata = export_model(checkpoint, out, "onnx", gsd_m=0.4, window=64, subdivisions=2, tta="d4")

    windows = _windows()
    ours = OnnxSegmenter(out).predict_on_batch(windows)
    assert ours.shape == (3, 64, 64, 6)
    assert np.abs(ours - model.predict(windows, verbose=0)).max() <= 1e-4

    props = OnnxSegmenter(out).props
    assert json.loads(props[METADATA_KEY]) == metadata
    assert metadata["class_names"] == list(CLASS_NAMES) and metadata["ground_sample_distance_m"] == 0.4
    assert metadata["input_multiple"] == (8 if encoder == "none" else 32)
    # the keys (and value forms) QGIS's Deepness plugin reads
    assert json.loads(props["model_type"]) == "Segmentor"
    assert json.loads(props["class_names"]) == {str(i): name for i, name in enumerate(CLASS_NAMES)}
    assert json.loads(props["resolution"]) == 40.0  # cm per pixel
    assert json.loads(props["tiles_size"]) == 64 and json.loads(props["tiles_overlap"]) == 50


def test_channels_first_export_runs_as_deepness_expects_and_aerialseg_reads_it_back(tmp_path):
    import onnxruntime

    checkpoint, model = _checkpoint(tmp_path)
    out = tmp_path / "deepness.onnx"
    export_model(checkpoint, out, "onnx", gsd_m=None, window=64, subdivisions=4, tta="d4", layout="nchw01")
    windows = _windows()
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    raw = session.run(None, {session.get_inputs()[0].name: windows.transpose(0, 3, 1, 2) / 255})[0]
    expected = model.predict(windows, verbose=0)
    assert np.abs(raw.transpose(0, 2, 3, 1) - expected).max() <= 1e-4
    assert np.abs(OnnxSegmenter(out).predict_on_batch(windows) - expected).max() <= 1e-4
    props = OnnxSegmenter(out).props
    assert "resolution" not in props and json.loads(props["tiles_overlap"]) == 75


def test_savedmodel_serves_the_same_probabilities_with_its_metadata(tmp_path):
    checkpoint, model = _checkpoint(tmp_path)
    out = tmp_path / "saved"
    metadata = export_model(checkpoint, out, "savedmodel", gsd_m=0.05, window=64, subdivisions=2, tta="d4")
    loaded = tf.saved_model.load(str(out))  # kept: its functions need the object alive
    served = loaded.serve(tf.constant(_windows()))
    assert np.abs(np.asarray(served) - model.predict(_windows(), verbose=0)).max() <= 1e-5
    assert json.loads((out / SAVEDMODEL_METADATA).read_text()) == metadata
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporaries left


def test_cli_exports_and_predicts_with_onnx_runtime_like_the_checkpoint(tmp_path, real_crop_paths, capsys):
    checkpoint, _ = _checkpoint(tmp_path)
    onnx_path = tmp_path / "model.onnx"
    assert main(["export", str(checkpoint), "--format", "onnx", "-o", str(onnx_path), "--window", "64",
                 "--gsd", "0.4", "--params", str(tmp_path / "none.yaml")]) == 0
    assert "wrote" in capsys.readouterr().out
    image = tmp_path / "crop.png"
    write_rgb(image, read_rgb(real_crop_paths[0])[:150, :170])
    outputs = {}
    runs = {"keras": (checkpoint, "keras"), "converted": (checkpoint, "auto"), "exported": (onnx_path, "auto")}
    for name, (model, backend) in runs.items():
        out, probs = tmp_path / f"{name}.png", tmp_path / f"{name}.npy"
        assert main(["predict", str(model), str(image), "-o", str(out), "--window", "64", "--tta", "flips",
                     "--probabilities", str(probs), "--backend", backend]) == 0
        outputs[name] = read_rgb(out), read_npy(probs).astype(np.float32)
    for name in ("converted", "exported"):  # ONNX Runtime: the CPU default, and the exported file
        assert np.abs(outputs[name][1] - outputs["keras"][1]).max() <= 1e-3  # stored as float16
        assert (outputs[name][0] == outputs["keras"][0]).all(-1).mean() >= 0.999
    assert not list(tmp_path.glob(".*"))  # nothing left behind by the conversion or the writes


def test_cli_export_errors_are_one_line(tmp_path, real_crop_paths, capsys):
    checkpoint, _ = _checkpoint(tmp_path)
    broken = tmp_path / "broken.keras"
    broken.write_bytes(b"not a zip")
    assert main(["export", str(broken), "--format", "onnx", "-o", str(tmp_path / "x.onnx"),
                 "--params", str(tmp_path / "none.yaml")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"aerialseg export: error: {broken}: not a readable Keras checkpoint") and "\n" not in err
    assert main(["export", str(checkpoint), "--format", "onnx", "-o", str(tmp_path / "x.onnx"), "--window", "60",
                 "--params", str(tmp_path / "none.yaml")]) == 2
    assert capsys.readouterr().err.strip() == ("aerialseg export: error: --window: 60 is not divisible by "
                                               "2**depth = 8 of the model")
    assert not (tmp_path / "x.onnx").exists()
    not_onnx = tmp_path / "fake.onnx"
    not_onnx.write_bytes(b"\x00" * 10)
    assert main(["predict", str(not_onnx), str(real_crop_paths[0]), "-o", str(tmp_path / "p.png")]) == 1
    assert capsys.readouterr().err.startswith(f"aerialseg predict: error: {not_onnx}: not a readable ONNX model")
