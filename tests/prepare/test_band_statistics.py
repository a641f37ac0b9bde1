"""Per-band percentiles of training scenes: exact for integer bands, against NumPy over the valid pixels."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from affine import Affine
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from aerialseg.core.errors import DataError
from aerialseg.prepare.band_statistics import BandSummary, summarise_raster, summarise_values


def _reference(scenes: list[tuple[np.ndarray, np.ndarray | None]], q: float) -> np.ndarray:
    """NumPy's inverted-CDF percentile of every valid pixel of every scene together, per band."""
    values = np.concatenate([image.reshape(-1, image.shape[-1])[slice(None) if valid is None else valid.reshape(-1)]
                             for image, valid in scenes])
    return np.percentile(values, q, axis=0, method="inverted_cdf")


@settings(max_examples=60, deadline=None)
@given(data=st.data(), dtype=st.sampled_from([np.uint8, np.uint16]), bands=st.integers(1, 5),
       q=st.sampled_from([0.0, 1.0, 2.5, 50.0, 99.0, 100.0]))
def test_merged_integer_summaries_give_numpy_s_percentiles_of_all_valid_pixels(data, dtype, bands, q):
    scenes = []
    for _ in range(data.draw(st.integers(1, 3))):
        shape = (data.draw(st.integers(1, 12)), data.draw(st.integers(1, 12)), bands)
        image = data.draw(hnp.arrays(dtype, shape, elements=st.integers(0, np.iinfo(dtype).max)))
        valid = data.draw(st.none() | hnp.arrays(bool, shape[:2]))
        scenes.append((image, valid))
    if not sum(image[..., 0].size if valid is None else int(valid.sum()) for image, valid in scenes):
        return  # no valid pixel: the error case has its own test
    total = BandSummary()
    for image, valid in scenes:
        total = total.merged(summarise_values(image, valid))
    np.testing.assert_array_equal(total.percentiles(q), _reference(scenes, q))


def test_float_bands_sample_but_stay_near_the_exact_percentiles():
    rng = np.random.default_rng(3)
    image = rng.gamma(2.0, 3.0, (700, 800, 2)).astype(np.float32)  # 560 000 pixels: more than a sample
    image[0, 0, 0] = np.nan  # a NaN sample is left out
    summary = summarise_values(image, None, seed=1)
    assert summary.sample is not None and len(summary.sample) == 250_000
    exact = np.nanpercentile(image.reshape(-1, 2).astype(np.float64), [1, 99], axis=0)
    for q, expected in zip((1.0, 99.0), exact, strict=True):
        ranks = [np.mean(image[..., b] <= v) * 100 for b, v in enumerate(summary.percentiles(q))]
        np.testing.assert_allclose(ranks, q, atol=0.1)  # within a tenth of a percent of rank
        np.testing.assert_allclose(summary.percentiles(q), expected, rtol=0.05)


def test_a_raster_is_summarised_over_its_footprint_read_in_strips(tmp_path, monkeypatch):
    rng = np.random.default_rng(5)
    bands = rng.integers(0, 4096, (4, 300, 200), dtype=np.uint16)
    bands[:, :, :40] = 0  # a nodata collar
    path = tmp_path / "scene.tif"
    with rasterio.open(path, "w", driver="GTiff", width=200, height=300, count=4, dtype="uint16", nodata=0,
                       crs="EPSG:25832", transform=Affine(0.2, 0, 0, 0, -0.2, 0), compress="deflate") as dst:
        dst.write(bands)
    monkeypatch.setattr("aerialseg.prepare.band_statistics._STRIP_PIXELS", 200 * 7)  # strips of 7 rows
    summary = summarise_raster(path, (4, 1))  # the bands in the model's order
    with rasterio.open(path) as src:
        valid = src.dataset_mask() > 0
    image = bands.transpose(1, 2, 0)[:, :, [3, 0]]
    for q in (1.0, 99.0):
        np.testing.assert_array_equal(summary.percentiles(q), _reference([(image, valid)], q))
    assert summary.pixels == int(valid.sum())


def test_no_valid_pixel_is_one_line_naming_the_files():
    empty = summarise_values(np.zeros((4, 4, 2), np.uint16), np.zeros((4, 4), bool))
    empty.sources = ["a.tif"]
    with pytest.raises(DataError, match=r"^a.tif: no valid pixel"):
        empty.percentiles(1.0)
