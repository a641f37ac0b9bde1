"""Pixels measured on the ground whatever the projection: Web Mercator and square-degree inputs map as
their north-up UTM twin (issue: a 5 cm orthophoto in EPSG:3857 was read as 8 cm, in EPSG:4326 as
stretched 1.6:1)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.warp import Resampling, calculate_default_transform, reproject

from aerialseg.cli import main
from aerialseg.core.geo.pixel_size import ground_pixel_size
from aerialseg.core.io import write_json
from aerialseg.core.names import MODEL_CARD

from conftest import CLASSES, FIXTURES

UTM33 = CRS.from_epsg(25833)
ORIGIN = (366000.0, 5808000.0)  # Potsdam, 52.4 degrees north
GSD = 0.05


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A model that learned 5 cm pixels and maps them smoothly: brightness averaged over about 1.5 m
    (three 11-pixel box filters), dark -> class 1, bright -> class 0. Its map has few boundaries, so
    that what two inputs share shows, and its box filters count pixels, so that it sees another map
    when it is given the scene at another scale."""
    from aerialseg.core.framework import keras
    from aerialseg.core.model_card import build_card, card_json

    path = tmp_path_factory.mktemp("model") / "smooth.keras"
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Rescaling(1 / 64, offset=-2.0)(inputs)
    for _ in range(3):
        x = keras.layers.AveragePooling2D(11, strides=1, padding="same")(x)
    head = keras.layers.Conv2D(6, 1)
    model = keras.Model(inputs, keras.layers.Softmax()(head(x)))
    weights = np.zeros((1, 1, 3, 6), np.float32)
    weights[0, 0, :, 0] = 10.0
    head.set_weights([weights, np.array([0, 0, -50, -50, -50, -50], np.float32)])
    model.save(path)
    write_json(path.parent / MODEL_CARD, card_json(build_card(CLASSES.displayed(), gsd=GSD, window=None,
                                                              subdivisions=None, tta=None, input_multiple=None)))
    return path


@pytest.fixture(scope="module")
def north_up(tmp_path_factory):
    from aerialseg.core.io import read_rgb

    rgb = read_rgb(FIXTURES / "top_potsdam_2_10_crop512_RGB.png")
    path = tmp_path_factory.mktemp("north_up") / "utm.tif"
    with rasterio.open(path, "w", driver="GTiff", width=rgb.shape[1], height=rgb.shape[0], count=3, dtype="uint8",
                       crs=UTM33, transform=Affine(GSD, 0, ORIGIN[0], 0, -GSD, ORIGIN[1])) as dst:
        dst.write(rgb.transpose(2, 0, 1))
    return path


def _warp(source: Path, target: Path, crs: CRS, resampling: Resampling, **grid) -> Path:
    """``gdalwarp -t_srs crs`` of ``source``: GDAL's default grid for the target CRS (square pixels in its units)."""
    with rasterio.open(source) as src:
        transform, width, height = calculate_default_transform(src.crs, crs, src.width, src.height, *src.bounds,
                                                               **grid)
        profile = {**src.profile, "crs": crs, "transform": transform, "width": width, "height": height}
        with rasterio.open(target, "w", **profile) as dst:
            for band in range(1, src.count + 1):
                reproject(rasterio.band(src, band), rasterio.band(dst, band), resampling=resampling)
    return target


def _predict(model: Path, image: Path, out: Path, capsys) -> str:
    capsys.readouterr()
    assert main(["predict", str(model), str(image), "-o", str(out), "--window", "32", "--tta", "none",
                 "--backend", "keras"]) == 0
    return capsys.readouterr().err


def _ground_steps_of(path: Path) -> tuple[float, float]:
    """A north-up raster's column and row steps on the ground at its centre, independently of aerialseg:
    geodesics between lon/lat points (pyproj) for degrees, the Mercator scale on the ellipsoid otherwise."""
    import pyproj

    with rasterio.open(path) as src:
        t, centre = src.transform, src.xy(src.height // 2, src.width // 2)
        crs = src.crs
    to_degrees = pyproj.Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    lon, lat = to_degrees.transform(*centre)
    if crs.is_geographic:
        geod = pyproj.Geod(ellps="WGS84")
        return geod.inv(lon, lat, lon + t.a, lat)[2], geod.inv(lon, lat, lon, lat - t.e)[2]
    e2 = 0.00669437999014  # WGS 84's first eccentricity squared: Mercator's scale is sec(lat) sqrt(1 - e2 sin2 lat)
    scale = np.sqrt(1 - e2 * np.sin(np.radians(lat)) ** 2) / np.cos(np.radians(lat))
    return abs(t.a) / scale, abs(t.e) / scale


def reference_of(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read(1)


def _on_grid_of(path: Path, reference: Path) -> np.ndarray:
    """A class map warped onto the reference map's grid with nearest (nodata where it has none)."""
    with rasterio.open(path) as src, rasterio.open(reference) as ref:
        out = np.full((ref.height, ref.width), 255, np.uint8)
        reproject(rasterio.band(src, 1), out, dst_transform=ref.transform, dst_crs=ref.crs,
                  resampling=Resampling.nearest, src_nodata=255, dst_nodata=255)
    return out


@pytest.mark.parametrize("crs", ["EPSG:3857", "EPSG:4326"])
def test_a_reprojected_orthophoto_maps_as_its_north_up_twin(model, north_up, tmp_path, capsys, crs):
    reference_map = tmp_path / "utm_map.tif"
    _predict(model, north_up, reference_map, capsys)
    warped = _warp(north_up, tmp_path / "warped.tif", CRS.from_user_input(crs), Resampling.lanczos)
    said = _predict(model, warped, tmp_path / "warped_map.tif", capsys)
    assert np.unique(reference_of(reference_map)).size == 2  # both classes, in large regions
    sizes = re.search(r"ground pixels of ([\d.]+)(?: x ([\d.]+))? m", said)
    assert sizes, said
    x, y = float(sizes[1]), float(sizes[2] or sizes[1])
    expected = _ground_steps_of(warped)
    assert abs(x / expected[0] - 1) < 0.01 and abs(y / expected[1] - 1) < 0.01, (said, expected)
    if crs == "EPSG:3857":  # its pixels are the twin's 5 cm on the ground
        assert abs(x / GSD - 1) < 0.01 and abs(y / GSD - 1) < 0.01, said
    assert "scale factor" in said or "degrees" in said  # why the CRS's units are not ground metres
    back = _on_grid_of(tmp_path / "warped_map.tif", reference_map)
    reference = reference_of(reference_map)
    inside = back != 255  # the warped image's corners lie outside the twin's footprint
    assert inside.mean() > 0.95
    agreement = (back == reference)[inside].mean()
    assert agreement >= 0.99, agreement


def test_ground_pixel_sizes_of_utm_mercator_and_degrees():
    """The measured sizes against hand-computed ones: UTM's units are ground metres (its scale factor
    0.9996..1.0004 is within 1 %), Web Mercator's are 1/cos(latitude) of them, a degree is not square."""
    import pyproj

    utm = ground_pixel_size(UTM33, Affine(0.05, 0, ORIGIN[0], 0, -0.05, ORIGIN[1]), 100, 100, source="u")
    assert utm is not None and (utm.x, utm.y) == pytest.approx((0.05, 0.05), rel=1e-12) and utm.why is None
    lon, lat = pyproj.Transformer.from_crs(25833, 4326, always_xy=True).transform(*ORIGIN)
    x, y = pyproj.Transformer.from_crs(4326, 3857, always_xy=True).transform(lon, lat)
    units = 0.05 / np.cos(np.radians(lat))  # Web Mercator metres per ground metre at this latitude (sphere)
    mercator = ground_pixel_size(CRS.from_epsg(3857), Affine(units, 0, x - 50 * units, 0, -units, y + 50 * units),
                                 100, 100, source="m")
    assert mercator is not None and mercator.why is not None and "scale factor" in mercator.why
    assert mercator.x == pytest.approx(0.05, rel=0.005) and mercator.y == pytest.approx(0.05, rel=0.005)
    step = 1e-6  # degrees
    degrees = ground_pixel_size(CRS.from_epsg(4326), Affine(step, 0, lon - 50 * step, 0, -step, lat + 50 * step),
                                100, 100, source="d")
    geod = pyproj.Geod(ellps="WGS84")
    east = geod.inv(lon, lat, lon + step, lat)[2]
    north = geod.inv(lon, lat, lon, lat + step)[2]
    assert degrees is not None and degrees.x == pytest.approx(east, rel=1e-3)
    assert degrees.y == pytest.approx(north, rel=1e-3) and north / east == pytest.approx(1 / np.cos(np.radians(lat)),
                                                                                         rel=0.01)


def test_a_transform_whose_pixels_have_no_area_is_one_line():
    """A degenerate georeference (a zero step) is refused, not read as a pixel size of 0 (a map of one pixel)."""
    from aerialseg.core.errors import DataError

    with pytest.raises(DataError, match=r"^x.tif: its transform gives its pixels no area .*give --gsd$"):
        ground_pixel_size(UTM33, Affine(0.05, 0, ORIGIN[0], 0, 0, ORIGIN[1]), 10, 10, source="x.tif")
    with pytest.raises(DataError, match="no area"):
        ground_pixel_size(CRS.from_epsg(4326), Affine(0, 0, 13.0, 0, -1e-6, 52.0), 10, 10, source="y.tif")
