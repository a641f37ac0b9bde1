"""Exported models: ONNX Runtime and SavedModel agree with the Keras checkpoint; metadata round-trips."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio

from aerialseg.cli import main
from aerialseg.core.config.params import ENCODERS
from aerialseg.core.framework import tf
from aerialseg.core.io import read_npy, read_rgb, write_rgb
from aerialseg.core.model_card import card_beside, card_json
from aerialseg.predict.export import SAVEDMODEL_METADATA, export_model
from aerialseg.predict.onnx_model import METADATA_KEY, OnnxSegmenter
from deepness import deepness_reads

from conftest import CLASSES, save_tiny_checkpoint

CLASS_NAMES = CLASSES.names

# a U-Net on a pretrained backbone builds the whole backbone and converts it (25-50 s each): slow
ENCODER_CASES = [pytest.param(name, marks=() if name == "none" else pytest.mark.slow) for name in ENCODERS]


def _checkpoint(folder, encoder: str = "none"):
    path = folder / f"{encoder}.keras"
    if encoder == "none":
        return path, save_tiny_checkpoint(path, depth=3, base_filters=4, batch_norm=True, seed=5)
    return path, save_tiny_checkpoint(path, encoder=encoder, base_filters=4, seed=5)


def _windows(size: int = 64, count: int = 3) -> np.ndarray:
    return np.random.default_rng(7).integers(0, 256, (count, size, size, 3)).astype(np.float32)


@pytest.mark.parametrize("encoder", ENCODER_CASES)
def test_every_encoder_exports_one_input_within_1e4_of_keras(encoder, tmp_path):
    checkpoint, model = _checkpoint(tmp_path, encoder)
    out = tmp_path / "model.onnx"
    card = export_model(checkpoint, out, "onnx", gsd_m=0.4, window=64, subdivisions=2, tta="d4",
                        card=card_beside(checkpoint))
    exported = OnnxSegmenter(out)
    assert [i.name for i in exported.session.get_inputs()] == [exported.input_name]  # one input only
    windows = _windows()
    ours = exported.predict_on_batch(windows)
    assert ours.shape == (3, 64, 64, 6)
    assert np.abs(ours - model.predict(windows, verbose=0)).max() <= 1e-4
    assert json.loads(exported.props[METADATA_KEY]) == card_json(card) and exported.card == card
    assert card.classes is not None and card.classes.names == CLASS_NAMES and card.ground_sample_distance_m == 0.4
    assert card.input_multiple == (8 if encoder == "none" else 32)
    assert card.export is not None and card.export.layout == "nhwc255" and card.export.precision == "float32"
    assert "model_type" not in exported.props  # aerialseg's own layout: no Deepness keys that promise too much


@pytest.mark.parametrize("encoder", ENCODER_CASES)
def test_every_encoder_checkpoint_predicts_with_every_backend(encoder, tmp_path, real_crop_paths):
    checkpoint, _ = _checkpoint(tmp_path, encoder)
    image = tmp_path / "crop.png"
    write_rgb(image, read_rgb(real_crop_paths[0])[:96, :128])
    for backend in ("keras", "onnx"):  # auto is onnx on a CPU
        out = tmp_path / f"{backend}.tif"
        assert main(["predict", str(checkpoint), str(image), "-o", str(out), "--window", "64", "--tta", "none",
                     "--backend", backend]) == 0
        with rasterio.open(out) as src:
            assert src.count == 1 and src.dtypes[0] == "uint8" and src.read().max() < len(CLASS_NAMES)


def test_deepness_loads_the_nchw01_export_as_its_code_reads_it(tmp_path):
    checkpoint, model = _checkpoint(tmp_path)
    out = tmp_path / "deepness.onnx"
    export_model(checkpoint, out, "onnx", gsd_m=0.4, window=64, subdivisions=4, tta="d4", layout="nchw01",
                 card=card_beside(checkpoint))
    loaded = deepness_reads(out)
    assert loaded["model_type"] == "Segmentor" and loaded["class_names"] == list(CLASS_NAMES)
    assert loaded["resolution"] == 40.0 and loaded["tile_size"] == 64 and loaded["tiles_overlap"] == 75
    assert loaded["channels"] == 3
    windows = _windows()
    raw = loaded["session"].run(None, {loaded["input"]: (windows / 255).astype(np.float32).transpose(0, 3, 1, 2)})[0]
    expected = model.predict(windows, verbose=0)
    assert np.abs(raw.transpose(0, 2, 3, 1) - expected).max() <= 1e-4
    assert np.abs(OnnxSegmenter(out).predict_on_batch(windows) - expected).max() <= 1e-4
    assert OnnxSegmenter(out).fixed_window == 64


def test_a_fixed_size_export_refuses_another_window_in_one_line(tmp_path, real_crop_paths, capsys):
    checkpoint, _ = _checkpoint(tmp_path)
    out = tmp_path / "deepness.onnx"
    export_model(checkpoint, out, "onnx", gsd_m=None, window=64, subdivisions=2, tta="none", layout="nchw01")
    assert main(["predict", str(out), str(real_crop_paths[0]), "-o", str(tmp_path / "p.tif"), "--window", "32"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"aerialseg predict: error: --window: 32 does not fit {out}, exported with a fixed 64x64 px input; "
        "give --window 64 or export it again")
    assert main(["predict", str(out), str(real_crop_paths[0]), "-o", str(tmp_path / "p.tif")]) == 0
    assert "window 64 (model card)" in capsys.readouterr().err


def test_savedmodel_serves_the_same_probabilities_with_its_metadata(tmp_path):
    checkpoint, model = _checkpoint(tmp_path)
    out = tmp_path / "saved"
    metadata = export_model(checkpoint, out, "savedmodel", gsd_m=0.05, window=64, subdivisions=2, tta="d4")
    loaded = tf.saved_model.load(str(out))  # kept: its functions need the object alive
    served = loaded.serve(tf.constant(_windows()))
    assert np.abs(np.asarray(served) - model.predict(_windows(), verbose=0)).max() <= 1e-5
    assert json.loads((out / SAVEDMODEL_METADATA).read_text()) == card_json(metadata)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporaries left


def test_cli_exports_and_predicts_with_onnx_runtime_like_the_checkpoint(tmp_path, real_crop_paths, capsys):
    checkpoint, _ = _checkpoint(tmp_path)
    onnx_path = tmp_path / "model.onnx"
    assert main(["export", str(checkpoint), "--format", "onnx", "-o", str(onnx_path), "--window", "64",
                 "--gsd", "0.4"]) == 0
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
    assert main(["export", str(broken), "--format", "onnx", "-o", str(tmp_path / "x.onnx")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"aerialseg export: error: {broken}: not a readable Keras checkpoint") and "\n" not in err
    assert main(["export", str(checkpoint), "--format", "onnx", "-o", str(tmp_path / "x.onnx"), "--window", "60"]) == 2
    assert capsys.readouterr().err.strip() == ("aerialseg export: error: --window: 60 is not divisible by "
                                               "2**depth = 8 of the model")
    assert not (tmp_path / "x.onnx").exists()
    not_onnx = tmp_path / "fake.onnx"
    not_onnx.write_bytes(b"\x00" * 10)
    assert main(["predict", str(not_onnx), str(real_crop_paths[0]), "-o", str(tmp_path / "p.png")]) == 1
    assert capsys.readouterr().err.startswith(f"aerialseg predict: error: {not_onnx}: not a readable ONNX model")


def test_an_export_is_a_function_of_the_checkpoint(tmp_path):
    """The converter numbers names in an order that changes between processes, and symbolic sizes from a
    counter that runs on within one; the file must not change with either."""
    checkpoint, _ = _checkpoint(tmp_path)
    script = ("import sys; from aerialseg.predict.export import export_model; "
              "[export_model(sys.argv[1], out, 'onnx', gsd_m=0.4, window=64, subdivisions=2, tta='d4') "
              "for out in sys.argv[2:]]")
    for i in range(2):
        subprocess.run([sys.executable, "-c", script, str(checkpoint), *(str(tmp_path / f"run{i}_{j}.onnx")
                                                                         for j in range(2))],
                       check=True, timeout=300, capture_output=True)
    files = {path.read_bytes() for path in tmp_path.glob("run*.onnx")}
    assert len(files) == 1


def test_a_schema_1_card_exports_as_the_current_schema_and_is_said_once(tmp_path, capsys):
    from aerialseg.core.io import write_json
    from aerialseg.core.names import MODEL_CARD

    checkpoint, _ = _checkpoint(tmp_path)
    write_json(tmp_path / MODEL_CARD, {"schema_version": 1, "class_names": list(CLASS_NAMES),
                                       "class_colours": [list(c) for c in CLASSES.colours],
                                       "ground_sample_distance_m": 0.4, "window": 64, "subdivisions": 4,
                                       "tta": "flips"})
    out = tmp_path / "m.onnx"
    assert main(["export", str(checkpoint), "--format", "onnx", "-o", str(out)]) == 0
    said = capsys.readouterr()
    assert said.err.count("a schema 1 model card") == 1 and "window 64, subdivisions 4, tta flips" in said.out
    exported = OnnxSegmenter(out)
    assert json.loads(exported.props[METADATA_KEY])["schema_version"] == 2
    card = exported.card
    assert card is not None and card.upgraded_from is None and card.classes is not None
    assert (card.classes.names, card.ground_sample_distance_m, card.window, card.subdivisions, card.tta) == (
        CLASS_NAMES, 0.4, 64, 4, "flips")


def test_without_a_card_export_records_what_the_options_say_and_never_reads_params(tmp_path, capsys, monkeypatch):
    """No fallback to a params.yaml that may belong to another run: a card-less checkpoint exports with
    numbered classes, the options' settings or the declared defaults, and an unknown GSD unless --gsd."""
    import yaml

    folder = tmp_path / "bare"
    folder.mkdir()
    checkpoint = folder / "m.keras"
    save_tiny_checkpoint(checkpoint, depth=3, base_filters=4, seed=5, card=False)
    params = yaml.safe_load(Path("params.yaml").read_text())
    params["predict"].update(window=32, tta="none")
    params["resize"]["gsd"] = 0.25
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "m.onnx"
    assert main(["export", str(checkpoint), "--format", "onnx", "-o", str(out), "--subdivisions", "4"]) == 0
    said = capsys.readouterr()
    assert f"{checkpoint}: no model card beside it" in said.err
    assert "unknown ground sample distance (give --gsd), window 128, subdivisions 4, tta d4" in said.out
    card = OnnxSegmenter(out).card
    assert card is not None and card.classes is not None and card.classes.names == tuple(f"class_{i}" for i in range(6))
    assert (card.ground_sample_distance_m, card.window, card.subdivisions, card.tta) == (None, 128, 4, "d4")


def test_the_softmax_runs_over_the_last_axis_after_the_transpose_with_identical_outputs(tmp_path):
    """An export ends in a transpose to channels-last, then a softmax over that last axis; the same
    graph with the converter's order (softmax over channels first, then the transpose) gives the
    very same bits in ONNX Runtime."""
    import onnx
    import onnxruntime
    from onnx import helper

    checkpoint, _ = _checkpoint(tmp_path)
    out = tmp_path / "model.onnx"
    export_model(checkpoint, out, "onnx", gsd_m=0.4, window=64, subdivisions=2, tta="d4")
    model = onnx.load(str(out))
    last, before = model.graph.node[-1], model.graph.node[-2]
    assert last.op_type == "Softmax" and helper.get_attribute_value(last.attribute[0]) == -1
    assert before.op_type == "Transpose" and list(before.attribute[0].ints) == [0, 2, 3, 1]
    # the converter's order, rebuilt by hand: softmax over channels (axis 1), then the transpose
    nodes = list(model.graph.node)
    nodes[-2] = helper.make_node("Softmax", [before.input[0]], ["channels_first"], axis=1)
    nodes[-1] = helper.make_node("Transpose", ["channels_first"], [last.output[0]], perm=[0, 2, 3, 1])
    model.graph.ClearField("node")
    model.graph.node.extend(nodes)
    converter_order = tmp_path / "converter_order.onnx"
    onnx.save(model, str(converter_order))
    windows = _windows()
    outputs = []
    for path in (out, converter_order):
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        outputs.append(session.run(None, {session.get_inputs()[0].name: windows})[0])
    assert outputs[0].shape == windows.shape[:3] + (len(CLASSES),)
    np.testing.assert_array_equal(outputs[0], outputs[1])
