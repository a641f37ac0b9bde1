"""The ground sample distance of a georeferenced raster: metres per pixel, whatever its transform and CRS.

A pixel of an affine transform ``(a, b, c, d, e, f)`` is a parallelogram of area ``|a·e − b·d|``
in the CRS's units; its side-equivalent ``sqrt(area)`` is the pixel size that preserves area,
also for rotated and sheared grids (summing ``|a| + |b|`` per axis instead overstates a 30°
rotated 5 cm grid as 6.8 cm). In a projected CRS the units are converted to metres with
PROJ's factor (metres, feet, ...). In a geographic CRS (degrees) the pixel is measured on the
ellipsoid at the image's centre: the geodesics from the centre pixel to its two neighbours
(pyproj) give the parallelogram in metres. A CRS with neither a linear nor an angular unit
cannot say the pixel size: that is a clear error, unless the user gives it (``--gsd``).
"""

from __future__ import annotations

import math

from affine import Affine
from rasterio.crs import CRS

from aerialseg.core.errors import DataError


def pixel_area_units(transform: Affine) -> float:
    """The area of one pixel in the CRS's units squared."""
    return abs(transform.a * transform.e - transform.b * transform.d)


def _geodesic_gsd(crs: CRS, transform: Affine, width: int, height: int) -> float:
    import pyproj

    geod = pyproj.CRS.from_wkt(crs.to_wkt()).get_geod()
    if geod is None:
        raise ValueError("no ellipsoid")
    col, row = width / 2, height / 2
    lon0, lat0 = transform * (col, row)
    sides = []
    for step in ((1, 0), (0, 1)):
        lon, lat = transform * (col + step[0], row + step[1])
        azimuth, _, distance = geod.inv(lon0, lat0, lon, lat)
        sides.append((distance * math.sin(math.radians(azimuth)), distance * math.cos(math.radians(azimuth))))
    (east_u, north_u), (east_v, north_v) = sides
    return math.sqrt(abs(east_u * north_v - north_u * east_v))


def _metres_per_unit(crs: CRS) -> float | None:
    """Metres per unit of a projected, local or engineering CRS's first axis (None: unknown unit)."""
    import pyproj

    try:
        axes = pyproj.CRS.from_wkt(crs.to_wkt()).axis_info
    except Exception:  # PROJ refuses odd definitions in several ways
        return None
    if not axes or axes[0].unit_name.lower() in ("", "unknown") or not axes[0].unit_conversion_factor > 0:
        return None
    return float(axes[0].unit_conversion_factor)


def ground_sample_distance(crs: CRS | None, transform: Affine, width: int, height: int, *,
                           source: str) -> float | None:
    """Metres per pixel (area-preserving); None when the transform places nothing (identity).

    Without a CRS (a world file only) the units are taken to be metres, as the ISPRS release
    and most orthophoto deliveries are. DataError naming ``source`` for a CRS whose units say
    nothing about size.
    """
    if transform == Affine.identity():
        return None
    area = pixel_area_units(transform)
    if crs is None:
        return math.sqrt(area)
    if crs.is_geographic:
        try:
            return _geodesic_gsd(crs, transform, width, height)
        except Exception as err:  # PROJ refuses an odd datum in several ways
            raise DataError(f"{source}: cannot measure its pixels on the ellipsoid of {crs.to_string()} "
                            f"({type(err).__name__}: {err}); give --gsd") from None
    factor = _metres_per_unit(crs)
    if not factor:
        raise DataError(f"{source}: its CRS ({crs.to_string()}) has no unit of length, so its pixel size is "
                        "unknown; give --gsd")
    return math.sqrt(area) * float(factor)
