"""Uncertainty: the normalised entropy of the blended probabilities, against hand-computed values,
and as aerialseg predict writes it (nodata outside the footprint) and ranks a batch by it."""

import csv
import math

import numpy as np
import pytest
import rasterio

from aerialseg.cli import main
from aerialseg.core.io import read_rgb
from aerialseg.predict.uncertainty import normalised_entropy, quantised_uncertainty

from conftest import FIXTURES


def test_entropy_is_one_where_all_tie_low_where_one_dominates_and_exact_in_between():
    probabilities = np.zeros((1, 4, 6), np.float32)
    probabilities[0, 0] = 1 / 6  # all six tie
    probabilities[0, 1, :2] = 0.5  # two tie
    probabilities[0, 2] = [0.95, 0.01, 0.01, 0.01, 0.01, 0.01]
    probabilities[0, 3, 4] = 1.0  # certain
    u = normalised_entropy(probabilities)[0]
    assert u[0] == pytest.approx(1.0, abs=1e-6)
    assert u[1] == pytest.approx(math.log(2) / math.log(6), abs=1e-6)
    assert u[2] == pytest.approx(-(0.95 * math.log(0.95) + 5 * 0.01 * math.log(0.01)) / math.log(6), abs=1e-6)
    assert u[3] == 0.0
    assert u[0] > u[1] > u[2] > u[3]


def test_quantised_uncertainty_is_nodata_outside_the_footprint():
    probabilities = np.full((2, 3, 6), 1 / 6, np.float32)
    footprint = np.array([[True, True, False], [True, False, False]])
    quantised, mean = quantised_uncertainty(probabilities, footprint)
    assert quantised.shape == (1, 2, 3) and quantised.dtype == np.uint8
    assert (quantised[0][footprint] == 254).all() and (quantised[0][~footprint] == 255).all()
    assert mean == pytest.approx(1.0, abs=1e-6)


def _orthophoto(path, rgb, alpha=None):
    bands = [rgb[..., i] for i in range(3)] + ([alpha] if alpha is not None else [])
    profile = {"driver": "GTiff", "width": rgb.shape[1], "height": rgb.shape[0], "count": len(bands),
               "dtype": "uint8", "crs": "EPSG:25833", "transform": rasterio.Affine(0.4, 0, 366_000, 0, -0.4, 5_808_000)}
    if alpha is not None:
        profile.update(photometric="RGB", alpha="YES")
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.stack(bands))
    return path


def test_predict_writes_uncertainty_from_its_probabilities_and_ranks_a_batch(tmp_path, tiny_checkpoint):
    model = tmp_path / "m.keras"
    tiny_checkpoint(model, depth=2, base_filters=4, seed=3)
    rgb = read_rgb(FIXTURES / "top_potsdam_2_10_crop512_RGB.png")[:128, :128]
    alpha = np.full(rgb.shape[:2], 255, np.uint8)
    alpha[:, :20] = 0
    image = _orthophoto(tmp_path / "ortho.tif", rgb, alpha)
    options = ["--window", "32", "--tta", "none", "--backend", "keras"]
    assert main(["predict", str(model), str(image), "-o", str(tmp_path / "map.tif"), "--uncertainty",
                 "--probabilities", *options]) == 0
    with rasterio.open(tmp_path / "map_uncertainty.tif") as u, rasterio.open(tmp_path / "map_probabilities.tif") as p:
        assert u.nodata == 255 and u.scales == (1 / 254,) and u.transform == p.transform
        doubt, probabilities = u.read(1), p.read().transpose(1, 2, 0).astype(np.float32) / 254
    assert (doubt[:, :20] == 255).all() and (doubt[:, 20:] <= 254).all()
    # the uncertainty is the entropy of the written probabilities (up to their uint8 quantisation)
    expected = normalised_entropy(probabilities[:, 20:]) * 254
    assert np.abs(doubt[:, 20:].astype(np.float32) - expected).max() <= 3

    (tmp_path / "images").mkdir()
    second = _orthophoto(tmp_path / "images" / "flat.tif", np.full_like(rgb, 128))
    _orthophoto(tmp_path / "images" / "crop.tif", rgb)
    ranking = tmp_path / "ranking.csv"
    assert main(["predict", str(model), str(tmp_path / "images"), "-o", f"{tmp_path / 'maps'}/", "--ranking",
                 str(ranking), *options]) == 0
    rows = list(csv.DictReader(ranking.open()))
    assert [row["rank"] for row in rows] == ["1", "2"] and {row["image"] for row in rows} == {
        str(second), str(tmp_path / "images" / "crop.tif")}
    means = [float(row["mean_uncertainty"]) for row in rows]
    assert means[0] >= means[1] and all(0 <= m <= 1 for m in means)
