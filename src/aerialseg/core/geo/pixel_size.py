"""The size of a raster's pixels on the ground, per axis, whatever its transform and CRS.

A pixel of an affine transform ``(a, b, c, d, e, f)`` is a parallelogram spanned by its column
step ``u = (a, d)`` and its row step ``v = (b, e)``. Its ground size is measured per axis, so that
pixels that are not square on the ground are brought to square ones by a factor per axis:

- In a projected CRS whose scale factor at the image's centre is within 1 % of 1 (UTM's
  0.9996–1.0004, national grids) its units, converted to metres with PROJ's factor (metres,
  feet...), are taken as ground metres.
- Otherwise — Web Mercator, whose metres are 1/cos(latitude) ground metres (×1.64 at 52° N), any
  projection far from its standard lines, and a geographic CRS in degrees (a square degree is
  0.61:1 at 52° N) — the two steps are measured on the ellipsoid at the image's centre: the
  geodesics from the centre pixel to its two neighbours (pyproj) give ``u`` and ``v`` in metres
  east and north.

The sizes are the length of ``u`` and the spacing of the rows measured across them,
``|u × v| / |u|``: they multiply to the pixel's area, a grid rotated or sheared along its rows
(GDAL's skew terms) keeps the square pixels it places, and an axis-aligned 5 x 10 cm grid is
5 x 10 cm (summing ``|a| + |b|`` per axis instead overstates a 30° rotated 5 cm grid as 6.8 cm). A CRS
with neither a linear nor an angular unit cannot say the pixel size: that is a clear error,
unless the user gives it (``--gsd``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from affine import Affine
from rasterio.crs import CRS

from aerialseg.core.errors import DataError

SCALE_TOLERANCE = 0.01  # a CRS whose metres are within 1 % of ground metres is read by its units


@dataclass(frozen=True)
class PixelSize:
    """A pixel's size on the ground in metres: one column step (``x``) and one row step (``y``); ``why``
    says why it is not what the CRS's units say (None when it is)."""

    x: float
    y: float
    why: str | None = None

    @property
    def area_equivalent(self) -> float:
        """The side of the square pixel of the same area (metres)."""
        return math.sqrt(self.x * self.y)


def pixel_area_units(transform: Affine) -> float:
    """The area of one pixel in the CRS's units squared."""
    return abs(transform.a * transform.e - transform.b * transform.d)


def _axis_sizes(u: tuple[float, float], v: tuple[float, float]) -> tuple[float, float]:
    """Per-axis sizes of the pixel spanned by the column step ``u`` and the row step ``v``: the length
    of ``u``, and the spacing of the rows measured across them (``|u × v| / |u|``), so that the two
    multiply to the pixel's area and a rotated or row-sheared grid has the square pixels it places."""
    length_u = math.hypot(*u)
    return length_u, abs(u[0] * v[1] - u[1] * v[0]) / length_u


def _ground_steps(crs: CRS, transform: Affine, width: int, height: int) -> tuple[tuple[float, float], ...]:
    """The column and row steps at the image's centre in metres (east, north), measured on the ellipsoid."""
    import pyproj

    definition = pyproj.CRS.from_wkt(crs.to_wkt())
    geod = definition.get_geod()
    if geod is None or definition.geodetic_crs is None:
        raise ValueError("no ellipsoid")
    to_degrees = pyproj.Transformer.from_crs(definition, definition.geodetic_crs, always_xy=True)
    col, row = width / 2, height / 2
    lon0, lat0 = to_degrees.transform(*(transform * (col, row)))
    steps = []
    for step in ((1, 0), (0, 1)):
        lon, lat = to_degrees.transform(*(transform * (col + step[0], row + step[1])))
        azimuth, _, distance = geod.inv(lon0, lat0, lon, lat)
        steps.append((distance * math.sin(math.radians(azimuth)), distance * math.cos(math.radians(azimuth))))
    if not all(math.isfinite(value) and value == value for step in steps for value in step):
        raise ValueError("outside the projection's domain")
    return tuple(steps)


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


def ground_pixel_size(crs: CRS | None, transform: Affine, width: int, height: int, *,
                      source: str) -> PixelSize | None:
    """Metres per pixel on the ground, per axis; None when the transform places nothing (identity).

    Without a CRS (a world file only) the units are taken to be metres, as the ISPRS release
    and most orthophoto deliveries are. DataError naming ``source`` for a CRS whose units say
    nothing about size, or a geographic one whose ellipsoid PROJ cannot measure on.
    """
    if transform == Affine.identity():
        return None
    if not pixel_area_units(transform) > 0:  # NaN or a zero step: pixels of no size say nothing of scale
        raise DataError(f"{source}: its transform gives its pixels no area ({tuple(transform)[:6]}); fix its "
                        "georeference or give --gsd")
    u, v = (transform.a, transform.d), (transform.b, transform.e)
    if crs is None:
        return PixelSize(*_axis_sizes(u, v))
    name = crs.to_string() or "its CRS"
    if crs.is_geographic:
        try:
            steps = _ground_steps(crs, transform, width, height)
        except Exception as err:  # PROJ refuses an odd datum in several ways
            raise DataError(f"{source}: cannot measure its pixels on the ellipsoid of {crs.to_string()} "
                            f"({type(err).__name__}: {err}); give --gsd") from None
        return PixelSize(*_axis_sizes(*steps), why=f"{name} is in degrees, measured on its ellipsoid")
    factor = _metres_per_unit(crs)
    if not factor:
        raise DataError(f"{source}: its CRS ({crs.to_string()}) has no unit of length, so its pixel size is "
                        "unknown; give --gsd")
    x, y = (side * factor for side in _axis_sizes(u, v))
    try:
        ground = _axis_sizes(*_ground_steps(crs, transform, width, height))
    except Exception:  # no ellipsoid, or the centre outside the projection's domain: its units are all there is
        return PixelSize(x, y)
    scale = math.sqrt(x * y / (ground[0] * ground[1]))  # the CRS's metres per ground metre, here
    if abs(scale - 1) <= SCALE_TOLERANCE:
        return PixelSize(x, y)
    return PixelSize(*ground, why=f"{name}'s scale factor at the image centre is {scale:.3f}, so its "
                                  f"{math.sqrt(x * y):.4g} m pixels are not ground metres")


def ground_sample_distance(crs: CRS | None, transform: Affine, width: int, height: int, *,
                           source: str) -> float | None:
    """Metres per pixel (area-preserving, see ``ground_pixel_size``); None when the transform places nothing."""
    size = ground_pixel_size(crs, transform, width, height, source=source)
    return None if size is None else size.area_equivalent
