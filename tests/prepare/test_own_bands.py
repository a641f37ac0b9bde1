"""Any bands: a folder of 4-band 16-bit GeoTIFFs (red, green, blue, near-infrared) from download to report,
then predicted, exported and refused as a GIS user meets them.

The scenes are built here at the model's 0.4 m (so resize keeps their pixels and ``aerialseg predict``
reads exactly what the pipeline read): 12-bit values per class and band, noise, a nodata collar on a
training scene. The card's statistics are checked against NumPy over the training scenes' valid pixels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import yaml
from affine import Affine

from aerialseg.cli import main
from aerialseg.core.framework import keras
from aerialseg.core.input_spec import PERCENTILES
from aerialseg.predict.onnx_model import OnnxSegmenter
from deepness import deepness_reads
from tiny_project import copy_project, run_stages_in

from conftest import CLASSES

pytestmark = pytest.mark.slow  # the whole pipeline, then four predictions: about a minute and a half

CRS = "EPSG:25832"
GSD = 0.4
NODATA = 0
# per class, its 12-bit red, green, blue, NIR: vegetation bright in NIR, roofs and roads not
LEVELS = np.array([[1500, 1450, 1400, 1700], [900, 700, 650, 800], [700, 1100, 500, 3200],
                   [400, 700, 350, 3600], [1800, 300, 300, 900], [1200, 1150, 1000, 1300]], np.float64)
SCENES = {"t1": "train", "t2": "train", "v1": "val", "s1": "test"}


def _labels(seed: int, size: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, len(CLASSES), (size // 32, size // 32), dtype=np.uint8)
    return np.repeat(np.repeat(coarse, 32, 0), 32, 1)


def _image(labels: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(100 + seed)
    image = LEVELS[labels] + rng.normal(0, 60, labels.shape + (4,))
    return np.clip(image, 1, 4095).astype(np.uint16)  # 0 is nodata


def _write(path: Path, bands: np.ndarray, nodata: int | None = NODATA, gsd: float = GSD) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", driver="GTiff", width=bands.shape[2], height=bands.shape[1], count=bands.shape[0],
                       dtype=bands.dtype.name, crs=CRS, transform=Affine(gsd, 0, 500000, 0, -gsd, 5700000),
                       nodata=nodata, compress="deflate", tiled=True, blockxsize=128, blockysize=128) as dst:
        dst.write(bands)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """The tiny project on four 256 px scenes of 4-band uint16, run from download to report."""
    root = copy_project(tmp_path_factory.mktemp("bands") / "project")
    own = root / "external" / "own"
    for seed, scene in enumerate(SCENES):
        labels = _labels(seed, 256)
        image = _image(labels, seed).transpose(2, 0, 1)
        if scene == "t1":  # a nodata collar: left out of the statistics, ignore in the labels
            image[:, :, :64] = NODATA
        _write(own / "images" / f"{scene}.tif", image)
        _write(own / "labels" / f"{scene}.tif", labels[None], nodata=None)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["data"]["source"] = "folder"
    params["data"]["folder"].update(bands=["red", "green", "blue", "nir"], train=["t1", "t2"], val=["v1"],
                                    test=["s1"])
    params["classes"]["ignore"]["values"] = [255]
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    summaries, _ = run_stages_in(root)
    return root, summaries


def test_the_card_s_statistics_are_the_training_scenes_valid_pixels_percentiles(project):
    root, _ = project
    card = json.loads((root / "data" / "models" / "model_card.json").read_text())
    assert card["input"]["bands"] == ["red", "green", "blue", "nir"] and card["input"]["dtype"] == "uint16"
    assert card["input"]["normalisation"]["method"] == "percentiles"
    pixels = []
    for scene in ("t1", "t2"):  # the training scenes only, without their nodata
        with rasterio.open(root / "external" / "own" / "images" / f"{scene}.tif") as src:
            valid = src.dataset_mask() > 0
            pixels.append(src.read().transpose(1, 2, 0)[valid])
    values = np.concatenate(pixels)
    assert len(values) == 2 * 256 * 256 - 256 * 64
    low, high = (np.percentile(values, q, axis=0, method="inverted_cdf") for q in PERCENTILES)
    assert card["input"]["normalisation"]["low"] == low.tolist()
    assert card["input"]["normalisation"]["high"] == high.tolist()
    manifest = json.loads((root / "data" / "tiles" / "manifest.json").read_text())
    assert manifest["data"]["input"] == card["input"]
    shard = np.load(root / "data" / "tiles" / "train" / "images_000.npy", mmap_mode="r")
    assert shard.dtype == np.uint16 and shard.shape[1:] == (64, 64, 4)
    assert (root / "reports" / "gallery.png").is_file()


def test_aerialseg_predict_on_a_scene_reproduces_the_pipeline_s_prediction(project, tmp_path, capsys):
    root, _ = project
    checkpoint = root / "data" / "models" / "epoch_002.keras"
    out = tmp_path / "s1.tif"
    assert main(["predict", str(checkpoint), str(root / "external" / "own" / "images" / "s1.tif"), "-o", str(out),
                 "--backend", "keras"]) == 0
    pipeline = root / "data" / "predictions" / "epoch_002" / "s1_smooth.tif"
    with rasterio.open(out) as ours, rasterio.open(pipeline) as theirs:
        agree = np.mean(ours.read(1) == theirs.read(1))
    assert agree > 0.999  # equal but for near-ties


def test_a_wrong_band_count_or_type_is_one_line_naming_both(project, tmp_path, capsys):
    root, _ = project
    checkpoint = root / "data" / "models" / "epoch_002.keras"
    with rasterio.open(root / "external" / "own" / "images" / "s1.tif") as src:
        bands = src.read()
    _write(tmp_path / "rgb.tif", bands[:3])
    assert main(["predict", str(checkpoint), str(tmp_path / "rgb.tif"), "-o", str(tmp_path / "a.tif")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "has 3 band(s), the model reads 4 (red, green, blue, nir)" in err[0]
    _write(tmp_path / "eight.tif", (bands >> 4).astype(np.uint8))
    assert main(["predict", str(checkpoint), str(tmp_path / "eight.tif"), "-o", str(tmp_path / "b.tif")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bands of uint8, the model was trained on uint16" in err[0]
    assert not (tmp_path / "a.tif").exists() and not (tmp_path / "b.tif").exists()


def test_bands_picks_the_model_s_bands_from_any_order_and_a_strange_scaling_is_warned(project, tmp_path, capsys):
    root, _ = project
    checkpoint = root / "data" / "models" / "epoch_002.keras"
    with rasterio.open(root / "external" / "own" / "images" / "s1.tif") as src:
        bands = src.read()
    _write(tmp_path / "shuffled.tif", np.stack([bands[3], bands[0] // 2, bands[0], bands[1], bands[2]]))
    _write(tmp_path / "plain.tif", bands)
    assert main(["predict", str(checkpoint), str(tmp_path / "plain.tif"), "-o", str(tmp_path / "plain_map.tif"),
                 "--backend", "keras"]) == 0
    assert main(["predict", str(checkpoint), str(tmp_path / "shuffled.tif"), "-o", str(tmp_path / "picked.tif"),
                 "--bands", "3,4,5,1", "--backend", "keras"]) == 0
    with rasterio.open(tmp_path / "plain_map.tif") as a, rasterio.open(tmp_path / "picked.tif") as b:
        np.testing.assert_array_equal(a.read(1), b.read(1))
    assert "warning" not in capsys.readouterr().err
    _write(tmp_path / "stretched.tif", (bands.astype(np.uint32) * 16).clip(0, 65535).astype(np.uint16))
    assert main(["predict", str(checkpoint), str(tmp_path / "stretched.tif"), "-o", str(tmp_path / "c.tif"),
                 "--backend", "keras"]) == 0
    err = capsys.readouterr().err
    assert "warning: band nir's median" in err and "outside the training scenes' percentiles 1 .. 99" in err


def test_the_four_band_onnx_export_predicts_as_keras(project):
    root, _ = project
    model = keras.models.load_model(root / "data" / "models" / "epoch_002.keras", compile=False)
    exported = OnnxSegmenter(root / "data" / "export" / "model.onnx")
    assert exported.session.get_inputs()[0].shape[-1] == 4 and exported.card.input.dtype == "uint16"
    rng = np.random.default_rng(4)
    windows = rng.integers(0, 4096, (2, 64, 64, 4)).astype(np.float32)
    np.testing.assert_allclose(exported.predict_on_batch(windows), model.predict(windows, verbose=0), atol=1e-4)


def test_a_four_band_deepness_export_declares_its_bands_as_deepness_reads_them(project, tmp_path):
    root, _ = project
    checkpoint = root / "data" / "models" / "epoch_002.keras"
    out = tmp_path / "deepness.onnx"
    assert main(["export", str(checkpoint), "--format", "onnx", "--layout", "nchw01", "--window", "64",
                 "-o", str(out)]) == 0
    loaded = deepness_reads(out)
    assert loaded["channels"] == 4 and loaded["tile_size"] == 64 and loaded["resolution"] == 40.0
    card = OnnxSegmenter(out).card
    assert card.input.bands == ("red", "green", "blue", "nir") and card.input.dtype == "uint16"
    assert "(N, 4, window, window) red, green, blue, nir as uint16 values / 255" in card.export.input_layout
    windows = np.random.default_rng(5).integers(0, 4096, (2, 64, 64, 4)).astype(np.float32)
    raw = loaded["session"].run(None, {loaded["input"]: (windows / 255).astype(np.float32).transpose(0, 3, 1, 2)})[0]
    model = keras.models.load_model(checkpoint, compile=False)
    np.testing.assert_allclose(raw.transpose(0, 2, 3, 1), model.predict(windows, verbose=0), atol=1e-4)
