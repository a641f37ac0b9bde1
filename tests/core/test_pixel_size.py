"""Pixel sizes from any georeference, against hand-computed values and an independent geodesic."""

import math

import pytest
from affine import Affine
from rasterio.crs import CRS

from aerialseg.core.errors import DataError
from aerialseg.core.geo.pixel_size import ground_sample_distance

UTM = CRS.from_epsg(25833)


TURNS = Affine.translation(366_000, 5_808_000)
DOUBLE_SHEAR = 0.05 * math.sqrt(1 - math.tan(math.radians(20)) * math.tan(math.radians(10)))  # det of the shear


@pytest.mark.parametrize("transform, expected", [
    (Affine(0.05, 0, 366_000, 0, -0.05, 5_808_000), 0.05),
    (TURNS * Affine.rotation(30) * Affine.scale(0.05, -0.05), 0.05),
    (TURNS * Affine.rotation(-73) * Affine.scale(0.05, -0.05), 0.05),
    (TURNS * Affine.shear(20, 0) * Affine.scale(0.05, -0.05), 0.05),  # a shear keeps the area
    (TURNS * Affine.shear(20, 10) * Affine.scale(0.05, -0.05), DOUBLE_SHEAR),
])
def test_the_pixel_size_keeps_the_pixel_area_however_the_grid_turns(transform, expected):
    assert ground_sample_distance(UTM, transform, 100, 100, source="x") == pytest.approx(expected, rel=1e-12)


def test_feet_are_converted_and_no_crs_means_metres():
    feet = CRS.from_epsg(2263)  # NAD83 / New York Long Island (ftUS)
    assert ground_sample_distance(feet, Affine(1, 0, 0, 0, -1, 0), 10, 10, source="x") == pytest.approx(
        1200 / 3937, rel=1e-9)
    assert ground_sample_distance(None, Affine(0.4, 0, 0, 0, -0.4, 0), 10, 10, source="x") == pytest.approx(0.4)
    assert ground_sample_distance(UTM, Affine.identity(), 10, 10, source="x") is None


def test_degrees_become_metres_at_the_image_latitude():
    import pyproj

    geod = pyproj.Geod(ellps="WGS84")
    for lat in (0.0, 52.4, 70.0):
        step = 2e-6  # degrees
        transform = Affine(step, 0, 13.0, 0, -step, lat + 50 * step)
        east = geod.inv(13.0 + 50 * step, lat, 13.0 + 51 * step, lat)[2]
        north = geod.inv(13.0 + 50 * step, lat, 13.0 + 50 * step, lat - step)[2]
        got = ground_sample_distance(CRS.from_epsg(4326), transform, 100, 100, source="x")
        assert got == pytest.approx(math.sqrt(east * north), rel=1e-3)


def test_a_local_crs_in_metres_is_in_metres():
    local = CRS.from_wkt('LOCAL_CS["site grid",LOCAL_DATUM["site",0],UNIT["metre",1],AXIS["x",EAST],AXIS["y",NORTH]]')
    assert ground_sample_distance(local, Affine(0.05, 0, 0, 0, -0.05, 0), 10, 10, source="x") == pytest.approx(0.05)


def test_a_crs_without_a_unit_of_length_is_a_data_error():
    engineering = CRS.from_wkt('LOCAL_CS["pixels",LOCAL_DATUM["site",0],UNIT["unknown",0],AXIS["x",EAST],'
                               'AXIS["y",NORTH]]')
    with pytest.raises(DataError, match="^img.tif: its CRS .* has no unit of length"):
        ground_sample_distance(engineering, Affine(0.05, 0, 0, 0, -0.05, 0), 10, 10, source="img.tif")
