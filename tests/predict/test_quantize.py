"""int8 models: calibration samples, ONNX Runtime's QDQ graph, agreement with fp32, the CLI."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import pytest
import rasterio
from onnx import numpy_helper

from aerialseg.cli import main
from aerialseg.core.errors import DataError
from aerialseg.core.io import write_rgb
from aerialseg.predict.calibration import calibration_windows, image_windows, tile_store_windows
from aerialseg.predict.export import export_model
from aerialseg.predict.onnx_model import METADATA_KEY, OnnxSegmenter
from aerialseg.predict.quantize import PAYS, Calibration, int8_speedup, quantize_int8, speed_note
from aerialseg.prepare.tile_writer import write_manifest, write_split
from aerialseg.prepare.tiling import Tile

from conftest import CLASSES, TILE_FACTS, save_tiny_checkpoint

PATCH = 32


def _scene_like(rng: np.random.Generator, count: int, side: int) -> np.ndarray:
    """Blocky images with flat regions and edges, closer to aerial scenes than noise."""
    coarse = rng.integers(0, 256, (count, side // 8, side // 8, 3)).astype(np.float32)
    return np.repeat(np.repeat(coarse, 8, axis=1), 8, axis=2)


def _tile_store(folder: Path) -> dict[str, np.ndarray]:
    """A tile store with 20 train, 5 val and 5 test tiles; val/test tiles are all 255 so that
    a calibration sample holding any of them is seen."""
    rng = np.random.default_rng(3)
    images = {"train": _scene_like(rng, 20, PATCH).clip(0, 250).astype(np.uint8),
              "val": np.full((5, PATCH, PATCH, 3), 255, np.uint8), "test": np.full((5, PATCH, PATCH, 3), 255, np.uint8)}
    rows = []
    for split, batch in images.items():
        tiles = [Tile(f"{split}_{i}", 0, 0, image, np.zeros((PATCH, PATCH), np.uint8)) for i, image in enumerate(batch)]
        # several shards per split
        rows.append(write_split(folder, split, tiles, PATCH, shard_size=6, class_names=CLASSES.names))
    write_manifest(folder, pd.concat(rows, ignore_index=True), PATCH, PATCH, class_names=CLASSES.names,
                   data=TILE_FACTS)
    return images


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A tiny checkpoint, its fp32 ONNX export and an int8 one calibrated on a tile store."""
    folder = tmp_path_factory.mktemp("int8")
    checkpoint = folder / "model.keras"
    save_tiny_checkpoint(checkpoint, depth=2, base_filters=8, seed=11)
    store = folder / "tiles"
    images = _tile_store(store)
    fp32 = folder / "fp32.onnx"
    export_model(checkpoint, fp32, "onnx", gsd_m=0.4, window=PATCH, subdivisions=2, tta="none")
    windows = tile_store_windows(store, 16, seed=1, window=None)
    int8 = folder / "int8.onnx"
    card = quantize_int8(fp32, int8, Calibration(windows, "minmax", "test store"))
    return {"folder": folder, "checkpoint": checkpoint, "store": store, "images": images, "fp32": fp32,
            "int8": int8, "card": card, "windows": windows}


def test_calibration_takes_a_seeded_sample_of_train_tiles_only(models):
    store, train = models["store"], models["images"]["train"]
    first = tile_store_windows(store, 8, seed=1, window=None)
    assert first.dtype == np.float32 and first.shape == (8, PATCH, PATCH, 3)
    assert np.array_equal(first, tile_store_windows(store, 8, seed=1, window=None))
    assert not np.array_equal(first, tile_store_windows(store, 8, seed=2, window=None))
    rows = {tile.tobytes() for tile in train.astype(np.float32)}
    assert all(window.tobytes() in rows for window in first)  # every window is a train tile, none from val/test
    assert len({w.tobytes() for w in first}) == 8  # drawn without replacement
    everything = tile_store_windows(store, 1000, seed=1, window=None)
    assert sorted(w.tobytes() for w in everything) == sorted(rows)  # more than there are: each train tile once
    cropped = tile_store_windows(store, 4, seed=1, window=16)
    assert cropped.shape == (4, 16, 16, 3)
    with pytest.raises(DataError, match="smaller than the model's fixed 64 px window"):
        tile_store_windows(store, 4, seed=1, window=64)


def test_calibration_from_images_reads_seeded_windows_of_them(tmp_path):
    yy, xx = np.mgrid[0:90, 0:120]
    image = np.stack([xx, yy, np.full_like(xx, 7)], -1).astype(np.uint8)  # each pixel says where it is
    path = tmp_path / "ortho.tif"
    with rasterio.open(path, "w", driver="GTiff", width=120, height=90, count=4, dtype="uint8") as dst:
        dst.write(np.moveaxis(image, -1, 0), (1, 2, 3))
        dst.write(np.full((90, 120), 255, np.uint8), 4)
    windows = image_windows([path], 5, seed=4, window=32)
    assert windows.shape == (5, 32, 32, 3)
    for window in windows.astype(np.uint8):
        x, y = int(window[0, 0, 0]), int(window[0, 0, 1])
        assert np.array_equal(window, image[y:y + 32, x:x + 32])
    assert np.array_equal(windows, calibration_windows([path], 5, 4, 32, fixed_window=True))
    small = tmp_path / "small.png"
    write_rgb(small, image[:20, :20])
    with pytest.raises(DataError, match=r"small.png: calibration needs at least 32x32 px"):
        image_windows([small], 1, seed=0, window=32)
    with pytest.raises(DataError, match="not a tile store"):
        calibration_windows([tmp_path], 1, 0, 32, fixed_window=False)
    with pytest.raises(DataError, match="missing.tif: calibration image not found"):
        calibration_windows([tmp_path / "missing.tif"], 1, 0, 32, fixed_window=False)


def _initializers(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}


def test_int8_model_is_qdq_with_symmetric_per_channel_int8_weights(models):
    fp32, int8 = onnx.load(str(models["fp32"])), onnx.load(str(models["int8"]))
    values = _initializers(int8)
    produced_by = {out: node for node in int8.graph.node for out in node.output}
    float_convs = [n for n in fp32.graph.node if n.op_type == "Conv"]
    convs = [n for n in int8.graph.node if n.op_type == "Conv"]
    assert len(convs) == len(float_convs) > 0
    assert {"QuantizeLinear", "DequantizeLinear"} <= {n.op_type for n in int8.graph.node}
    for conv in convs:
        weight = produced_by[conv.input[1]]
        assert weight.op_type == "DequantizeLinear"
        quantised, scale, zero = (values[name] for name in weight.input)
        assert quantised.dtype == np.int8 and zero.dtype == np.int8 and not zero.any()  # symmetric int8
        assert scale.shape == (quantised.shape[0],)  # one scale per output channel
        activation = produced_by[conv.input[0]]
        assert activation.op_type == "DequantizeLinear" and values[activation.input[2]].dtype == np.uint8
    # the int8 weights times their scales give back the fp32 weights within half a step
    float_weights = [_initializers(fp32)[n.input[1]] for n in float_convs]
    for conv, reference in zip(convs, float_weights, strict=True):
        quantised, scale, _ = (values[name] for name in produced_by[conv.input[1]].input)
        step = scale.reshape(-1, 1, 1, 1)
        assert np.all(np.abs(quantised * step - reference) <= step / 2 + 1e-7)
    assert models["int8"].stat().st_size < models["fp32"].stat().st_size


def test_int8_model_agrees_with_fp32_where_fp32_is_confident(models):
    fp32, int8 = OnnxSegmenter(models["fp32"]), OnnxSegmenter(models["int8"])
    windows = _scene_like(np.random.default_rng(9), 12, PATCH)  # unseen windows like the calibration ones
    reference, quantised = fp32.predict_on_batch(windows), int8.predict_on_batch(windows)
    assert quantised.shape == reference.shape and quantised.dtype == np.float32
    assert np.abs(quantised - reference).mean() < 0.01
    ranked = np.sort(reference, -1)
    confident = ranked[..., -1] - ranked[..., -2] > 0.05
    assert confident.mean() > 0.3
    assert (quantised.argmax(-1) == reference.argmax(-1))[confident].mean() > 0.99


def test_int8_card_says_how_it_was_quantised_and_keeps_the_rest(models):
    int8 = OnnxSegmenter(models["int8"])
    fp32 = OnnxSegmenter(models["fp32"])
    assert fp32.card is not None and fp32.card.export is not None and fp32.card.export.precision == "float32"
    card = int8.card
    assert card == models["card"] and card is not None and card.export is not None
    assert card.export.precision == "int8" and card.export.quantization is not None
    assert card.export.quantization.format == "QDQ"
    assert (card.export.quantization.calibration_method, card.export.quantization.calibration_windows,
            card.export.quantization.calibration_source) == ("minmax", 16, "test store")
    assert dataclasses.replace(card, export=dataclasses.replace(card.export, precision="float32",
                                                                quantization=None)) == fp32.card


def test_int8_export_is_reproducible_and_depends_on_its_sample(models, tmp_path):
    again = tmp_path / "again.onnx"
    quantize_int8(models["fp32"], again, Calibration(models["windows"], "minmax", "test store"))
    assert again.read_bytes() == models["int8"].read_bytes()
    other = tmp_path / "other.onnx"
    quantize_int8(models["fp32"], other, Calibration(models["windows"][:2], "minmax", "test store"))
    scales = [{k: v for k, v in _initializers(onnx.load(str(p))).items() if v.dtype == np.float32 and v.ndim == 0}
              for p in (models["int8"], other)]
    assert any(not np.isclose(scales[0][k], scales[1][k]) for k in scales[0])  # other ranges from other windows


def test_cli_exports_int8_for_deepness_and_predicts_with_it(models, tmp_path, capsys):
    out = tmp_path / "deepness_int8.onnx"
    assert main(["export", str(models["checkpoint"]), "--format", "onnx", "--layout", "nchw01", "--window", "32",
                 "--gsd", "0.4", "--quantize", "int8", "--calibration", str(models["store"]),
                 "--calibration-windows", "8", "--seed", "3", "-o", str(out)]) == 0
    said = capsys.readouterr()
    assert "int8 calibrated on 8 windows of" in said.out
    # the int8 model's speed, measured against the fp32 one on this CPU, is said (which way it goes is this
    # machine's: the note's two readings are checked by hand below)
    assert re.search(r"aerialseg export: deepness_int8.onnx: int8 runs \d+\.\d\dx the fp32 model's speed on this "
                     r"CPU \(32 windows, measured now\)", said.err)
    model = onnx.load(str(out))
    props = {p.key: p.value for p in model.metadata_props}
    assert json.loads(props["tile_size"]) == 32 and json.loads(props["model_type"]) == "Segmentor"
    assert json.loads(props[METADATA_KEY])["export"]["layout"] == "nchw01"
    assert [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim][1:] == [3, 32, 32]
    image = _scene_like(np.random.default_rng(5), 1, 96)[0].astype(np.uint8)
    source = tmp_path / "scene.png"
    write_rgb(source, image)
    result = tmp_path / "map.png"
    capsys.readouterr()
    assert main(["predict", str(out), str(source), "-o", str(result), "--tta", "none", "--model-gsd", "0.4",
                 "--gsd", "0.4"]) == 0
    assert result.is_file()
    assert "; precision int8" in capsys.readouterr().err


@pytest.fixture(scope="module")
def odd_images(tmp_path_factory):
    """Images prediction refuses (16-bit RGBN, one band), one it takes, and an empty folder."""
    folder = tmp_path_factory.mktemp("odd")
    rng = np.random.default_rng(2)
    paths = {}
    for name, count, dtype in (("rgbn16", 4, "uint16"), ("grey", 1, "uint8"), ("scene", 3, "uint8")):
        paths[name] = folder / f"{name}.tif"
        with rasterio.open(paths[name], "w", driver="GTiff", width=160, height=160, count=count, dtype=dtype) as dst:
            dst.write(rng.integers(0, 200, (count, 160, 160)).astype(dtype))
    (folder / "empty").mkdir()
    return {**{name: str(path) for name, path in paths.items()}, "empty": str(folder / "empty")}


@pytest.mark.parametrize(("args", "message"), [
    (["--format", "savedmodel", "--quantize", "int8", "--calibration", "{store}"], "give --format onnx"),
    (["--format", "onnx", "--quantize", "int8"], "give --calibration"),
    (["--format", "onnx", "--quantize", "int8", "--calibration", "{store}", "--seed", "-1"],
     "--seed: must be between 0 and"),
    (["--format", "onnx", "--quantize", "int8", "--calibration", "{store}", "--calibration-windows", "0"],
     "--calibration-windows: must be between 1 and 10000"),
    (["--format", "onnx", "--quantize", "int8", "--calibration", "{folder}"], "not a tile store"),
    (["--format", "onnx", "--quantize", "int8", "--calibration", "{store}", "--layout", "nchw01", "--window", "64"],
     "smaller than the model's fixed 64 px window"),
    # calibration images follow prediction's input rules: what predict refuses cannot calibrate
    (["--format", "onnx", "--quantize", "int8", "--calibration", "{rgbn16}"],
     "rgbn16.tif: bands of uint16, the model was trained on uint8 bands (red, green, blue)"),
    (["--format", "onnx", "--quantize", "int8", "--calibration", "{scene}", "{grey}"],
     "grey.tif: has 1 band(s), the model reads 3 (red, green, blue); an image of those bands, or --bands"),
    (["--format", "onnx", "--quantize", "int8", "--calibration", "{empty}"], "empty: not a tile store"),
])
def test_cli_quantisation_mistakes_are_one_line_and_write_nothing(models, odd_images, tmp_path, args, message,
                                                                  capsys):
    out = tmp_path / "out.onnx"
    filled = [a.format(store=models["store"], folder=models["folder"], **odd_images) for a in args]
    try:
        status = main(["export", str(models["checkpoint"]), *filled, "-o", str(out)])
    except SystemExit as exit_:  # argparse's usage errors
        status = exit_.code
    assert status in (1, 2)
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and lines[0].startswith("aerialseg export: error:"), lines
    assert not out.exists() and not list(tmp_path.iterdir())


def test_the_int8_speed_note_says_where_int8_does_not_pay(models):
    assert speed_note("m.onnx", 0.97, 32) == (
        "m.onnx: int8 runs 0.97x the fp32 model's speed on this CPU (32 windows, measured now): this model's layers "
        "are too narrow for int8 convolutions to pay (docs/export.md, \"int8 models\"); the fp32 model is as fast, "
        "and exact")
    fast = "m.onnx: int8 runs 2.31x the fp32 model's speed on this CPU (32 windows, measured now)"
    assert speed_note("m.onnx", 2.31, 32) == fast
    assert speed_note("m.onnx", PAYS, 32).endswith("measured now)")
    same = int8_speedup(models["fp32"], models["fp32"], models["windows"], repeats=3)  # a model against itself
    assert 0.5 < same < 2.0


def test_wide_up_sampling_becomes_a_1x1_convolution_and_depth_to_space_with_the_same_outputs(tmp_path):
    """The rewrite behind int8's speed on wide U-Nets: exact in float32 (against ONNX Runtime running the
    transposed convolution itself), applied from PIXEL_SHUFFLE_MIN_CHANNELS output channels only, so that
    the int8 model of a wide U-Net has no transposed convolution left and a narrow one keeps its own."""
    from collections import Counter

    from aerialseg.predict.quantize import PIXEL_SHUFFLE_MIN_CHANNELS, transposed_as_pixel_shuffle

    checkpoint = tmp_path / "wide.keras"
    save_tiny_checkpoint(checkpoint, depth=2, base_filters=PIXEL_SHUFFLE_MIN_CHANNELS // 2, seed=5)  # ups: 64, 32
    fp32 = tmp_path / "wide.onnx"
    export_model(checkpoint, fp32, "onnx", gsd_m=0.4, window=PATCH, subdivisions=2, tta="none")
    proto = onnx.load(str(fp32))
    widths = [numpy_helper.to_array(t).shape[1] for n in proto.graph.node if n.op_type == "ConvTranspose"
              for t in proto.graph.initializer if t.name == n.input[1]]
    assert sorted(widths) == [32, 64]
    assert transposed_as_pixel_shuffle(proto.graph, PIXEL_SHUFFLE_MIN_CHANNELS) == 1  # the 64-channel one
    ops = Counter(n.op_type for n in proto.graph.node)
    assert ops["ConvTranspose"] == 1 and ops["DepthToSpace"] == 1
    rewritten = tmp_path / "rewritten.onnx"
    onnx.save(proto, str(rewritten))
    windows = _scene_like(np.random.default_rng(2), 4, PATCH)
    original = OnnxSegmenter(fp32).predict_on_batch(windows)
    np.testing.assert_allclose(OnnxSegmenter(rewritten).predict_on_batch(windows), original, atol=1e-6)
    every = onnx.load(str(fp32))
    assert transposed_as_pixel_shuffle(every.graph) == 2
    onnx.save(every, str(tmp_path / "every.onnx"))
    np.testing.assert_allclose(OnnxSegmenter(tmp_path / "every.onnx").predict_on_batch(windows), original, atol=1e-6)

    int8 = tmp_path / "wide_int8.onnx"
    quantize_int8(fp32, int8, Calibration(windows, "minmax", "test windows"))
    quantized = Counter(n.op_type for n in onnx.load(str(int8)).graph.node)
    assert quantized["ConvTranspose"] == 1 and quantized["DepthToSpace"] == 1
    assert (OnnxSegmenter(int8).predict_on_batch(windows).argmax(-1) == original.argmax(-1)).mean() > 0.9


def test_a_narrow_models_int8_graph_keeps_its_transposed_convolutions(models):
    from collections import Counter

    ops = Counter(n.op_type for n in onnx.load(str(models["int8"])).graph.node)
    assert ops["ConvTranspose"] == 2 and ops["DepthToSpace"] == 0
