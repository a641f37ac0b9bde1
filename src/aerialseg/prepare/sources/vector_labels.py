"""Vector labels: the features of a GeoPackage, GeoJSON, Shapefile or FlatGeobuf layer, rasterised on a
scene's own grid.

``read_layer`` reads a layer with OGR (pyogrio: every geometry and the class column at once, as
arrays), checks it whole — a CRS, the class attribute, every
value a class of the table (by name, or by one of its declared ``values``), a buffer for every class
drawn with lines or points — and repairs invalid geometries (``shapely.make_valid``), counting them
and the features without geometry. ``rasterise`` then, per scene:

1. reprojects every geometry from the layer's CRS to the scene's with PROJ (``pyproj``, one
   vectorised call over all coordinates, x/y order whatever the CRS's axis order);
2. buffers lines and points by their class's width in **metres on the ground**, converted to the
   scene CRS's units at the scene (so a road is as wide at 5 cm as at 1 m, and in Web Mercator);
3. burns them with ``rasterio.features.rasterize`` on the scene's grid — at the image's full
   resolution, exactly as a label raster on that grid would be, after which ``resize`` samples it
   nearest-exact like any label (one path for every label after download; the finest grid there
   is, so the mask at ``resize.gsd`` is the exact burn's sample) — in the declared burn order, a
   later class over an earlier one where features overlap (default: the class table's order), each
   pixel whose centre a shape covers or, with ``all_touched``, every pixel it touches;
4. fills what no feature covers with the background class, inside the area of interest where one
   is given, or with ignore.

Values burnt are each class's first label value (its index unless the table declares ``values``),
so ``encode_masks`` reads the result like any class-index label.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aerialseg.core.classes import ClassTable
from aerialseg.core.config.data_params import VectorParams
from aerialseg.core.errors import DataError, listed, one_line_reason


@dataclass(frozen=True)
class Layer:
    """A vector label layer, checked: its CRS, repaired geometries with their class indices, and counts."""

    path: Path
    crs: Any  # a pyproj CRS
    geometries: np.ndarray  # shapely geometries
    classes: np.ndarray  # class index per geometry
    bounds: tuple[float, float, float, float]  # of the whole layer, in its CRS
    counts: dict[str, int] = field(default_factory=dict)  # features, repaired, without_geometry


@dataclass(frozen=True)
class Grid:
    """A scene's pixel grid: where each pixel is, in which CRS (a rasterio CRS)."""

    transform: Any
    width: int
    height: int
    crs: Any


def _class_lookup(classes: ClassTable) -> dict[object, int]:
    """Class index by name and by each declared label value."""
    lookup: dict[object, int] = {name: i for i, name in enumerate(classes.names)}
    for i in range(len(classes)):
        for value in (classes.values[i] if classes.values else (i,)):
            lookup.setdefault(value, i)
    return lookup


def _class_of(value: object, lookup: dict[object, int]) -> int | None:
    if isinstance(value, float):
        if not value.is_integer():
            return None  # NaN (a NULL in an integer column) too
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    return lookup.get(value)


def _shown(value: object) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "NULL"
    return repr(int(value)) if isinstance(value, float) and value.is_integer() else repr(value)


def _listed(counter: Counter[object]) -> str:
    shown = [f"{_shown(v)} ({n} feature{'s' * (n != 1)})" for v, n in counter.most_common()]
    return listed(shown)


def _layer_info(path: Path, layer: str | None) -> dict[str, Any]:
    """OGR's description of the named layer (or the file's only one): its name, CRS, fields, count."""
    import pyogrio

    if not path.exists():
        raise DataError(f"{path}: file not found")
    try:
        layers = [str(name) for name in pyogrio.list_layers(path)[:, 0]]
    except Exception as err:
        raise DataError(f"{path}: not a readable vector file ({one_line_reason(err)})") from None
    if layer is None and len(layers) > 1:
        raise DataError(f"{path}: has layers {', '.join(layers)}; name one in data.folder.vector.layer")
    if layer is not None and layer not in layers:
        raise DataError(f"{path}: no layer {layer!r} (data.folder.vector.layer); its layers: {', '.join(layers)}")
    info: dict[str, Any] = pyogrio.read_info(path, layer=layer or layers[0], force_total_bounds=True)
    return info


def _read(path: Path, info: dict[str, Any], columns: list[str],
          bbox: tuple[float, float, float, float] | None) -> tuple[np.ndarray, list[np.ndarray]]:
    """The layer's geometries (shapely; None where a feature has none) and the ``columns``' values."""
    import shapely
    from pyogrio.raw import read

    _, _, wkb, values = read(path, layer=info["layer_name"], columns=columns, bbox=bbox)
    return shapely.from_wkb(wkb), list(values)


def read_layer(path: Path, rules: VectorParams, classes: ClassTable,
               bbox: tuple[float, float, float, float] | None = None) -> Layer:
    """The layer at ``path``, checked whole (or its features crossing ``bbox``, in the layer's CRS, once
    it has been); a one-line DataError for a layer without a CRS, without the class attribute, empty,
    with values that are no class, or with lines or points of a class that has no buffer."""
    import shapely
    from pyproj import CRS

    info = _layer_info(path, rules.layer)
    if not info["crs"]:
        hint = " (no .prj beside it)" if path.suffix.lower() == ".shp" else ""
        raise DataError(f"{path}: has no CRS{hint}; add one (e.g. ogr2ogr -a_srs EPSG:25832), so its features "
                        "can be put on each scene's grid")
    attributes = [str(f) for f in info["fields"]]
    if rules.class_field not in attributes:
        raise DataError(f"{path}: no attribute {rules.class_field!r} (data.folder.vector.class_field); its "
                        f"attributes: {', '.join(attributes) or 'none'}")
    if info["features"] == 0:
        raise DataError(f"{path}: layer {info['layer_name']} has no features")
    geometries, (values,) = _read(path, info, [rules.class_field], bbox)
    lookup = _class_lookup(classes)
    listed = [None if isinstance(v, float) and np.isnan(v) else v for v in values.tolist()]  # NULL in a number column
    found = Counter(listed)
    index_of = {value: _class_of(value, lookup) for value in found}
    unknown = Counter({value: n for value, n in found.items() if index_of[value] is None})
    if unknown:
        raise DataError(f"{path}: {rules.class_field} values {_listed(unknown)} are not classes of classes.table "
                        f"({', '.join(classes.names)}) nor their values; declare them (classes.table.<class>.values) "
                        "or fix the layer")
    indices = np.array([index_of[v] for v in listed], np.int64)
    present = ~(shapely.is_missing(geometries) | shapely.is_empty(geometries))
    geometries, indices = geometries[present], indices[present]
    invalid = ~shapely.is_valid(geometries)
    if invalid.any():
        geometries = geometries.copy()
        geometries[invalid] = shapely.make_valid(geometries[invalid])
    thin = shapely.get_dimensions(geometries) < 2
    buffers = dict(rules.buffer_m)
    unbuffered = Counter(classes.names[i] for i in indices[thin] if classes.names[i] not in buffers)
    if unbuffered:
        thin_listed = ", ".join(f"{n} line or point feature{'s' * (n != 1)} of {c}"
                                for c, n in unbuffered.most_common())
        raise DataError(f"{path}: {thin_listed} need a width: give data.folder.vector.buffer_m."
                        f"{unbuffered.most_common(1)[0][0]} (metres each side)")
    counts = {"features": len(values), "repaired": int(invalid.sum()), "without_geometry": int((~present).sum())}
    return Layer(path, CRS.from_user_input(info["crs"]), geometries, indices, tuple(info["total_bounds"]), counts)


def read_area(path: Path) -> Layer:
    """The polygons of an area-of-interest file (its only layer), repaired; lines and points are
    refused, having no area."""
    import shapely
    from pyproj import CRS

    info = _layer_info(path, None)
    if not info["crs"]:
        raise DataError(f"{path}: has no CRS; add one, so the area can be put on each scene's grid")
    shapes, _ = _read(path, info, [], None)
    shapes = shapes[~(shapely.is_missing(shapes) | shapely.is_empty(shapes))]
    shapes = np.where(shapely.is_valid(shapes), shapes, shapely.make_valid(shapes))
    if not len(shapes) or (shapely.get_dimensions(shapes) < 2).any():
        raise DataError(f"{path}: an area of interest (data.folder.vector.aoi) is polygons; found "
                        f"{len(shapes)} feature(s), not all polygons")
    return Layer(path, CRS.from_user_input(info["crs"]), shapes, np.zeros(len(shapes), np.int64),
                 tuple(info["total_bounds"]))


def layer_bbox(path: Path, rules: VectorParams, grid: Grid) -> tuple[float, float, float, float]:
    """The scene's bounds in the layer's CRS (densified edges), for reading only its features."""
    from rasterio.warp import transform_bounds

    layer_crs = _layer_info(path, rules.layer)["crs"]
    left, top = grid.transform * (0, 0)
    right, bottom = grid.transform * (grid.width, grid.height)
    return tuple(transform_bounds(grid.crs, layer_crs, min(left, right), min(top, bottom), max(left, right),
                                  max(top, bottom), densify_pts=21))


def _to_grid_crs(geometries: np.ndarray, source_crs: Any, grid: Grid) -> np.ndarray:
    """The geometries reprojected to the grid's CRS, x/y order (PROJ, one call over every coordinate)."""
    import shapely
    from pyproj import CRS, Transformer

    target = CRS.from_user_input(grid.crs.to_wkt())
    if source_crs == target or not len(geometries):
        return geometries
    transformer = Transformer.from_crs(source_crs, target, always_xy=True)

    def move(xy: np.ndarray) -> np.ndarray:
        x, y = transformer.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([x, y])

    moved: np.ndarray = shapely.transform(geometries, move)
    return moved


def crs_units_per_metre(grid: Grid) -> float:
    """How many of the grid CRS's units make a metre on the ground at the scene (1 in UTM; about
    1/cos(latitude) in Web Mercator); a DataError for a geographic CRS, whose degrees are not
    the same length across and along."""
    from aerialseg.core.geo.pixel_size import ground_pixel_size

    if grid.crs.is_geographic:
        raise DataError(f"the scene is in {grid.crs.to_string()}, in degrees: lines and points cannot be widened by "
                        "metres there; reproject the image to a projected CRS (gdalwarp -t_srs)")
    size = ground_pixel_size(grid.crs, grid.transform, grid.width, grid.height, source="the scene")
    if size is None:
        raise DataError("the scene has no georeference: vector labels cannot be placed on it")
    return float(abs(grid.transform.a) / size.x)


def rasterise(layer: Layer, grid: Grid, rules: VectorParams, classes: ClassTable, ignore: int,
              aoi: Layer | None = None) -> tuple[np.ndarray, dict[str, int]]:
    """The layer burnt on ``grid`` as label values (each class's first value; ``ignore`` where no
    feature and no background is), and how many features reached the scene."""
    import shapely
    from rasterio.features import rasterize

    values = [(classes.values[i][0] if classes.values else i) for i in range(len(classes))]
    dtype = np.uint8 if max(values + [ignore]) <= 255 else np.uint16
    rank = {c: r for r, c in enumerate(rules.burn_order or classes.names)}
    geometries = _to_grid_crs(layer.geometries, layer.crs, grid)
    if len(geometries):
        thin = shapely.get_dimensions(geometries) < 2
        if thin.any():
            per_metre = crs_units_per_metre(grid)
            widths = dict(rules.buffer_m)
            distance = np.array([widths.get(classes.names[c], 0.0) * per_metre for c in layer.classes[thin]])
            geometries = geometries.copy()
            geometries[thin] = shapely.buffer(geometries[thin], distance)
    order = sorted(range(len(geometries)), key=lambda k: rank[classes.names[layer.classes[k]]])  # stable
    shape = (grid.height, grid.width)
    background = ignore if rules.background is None else values[classes.names.index(rules.background)]
    label = np.full(shape, background, dtype)
    if aoi is not None:
        inside = rasterize(((g, 1) for g in _to_grid_crs(aoi.geometries, aoi.crs, grid)), out_shape=shape,
                           transform=grid.transform, fill=0, dtype=np.uint8)
        label[inside == 0] = ignore
    empty = shapely.is_empty(geometries) if len(geometries) else np.zeros(0, bool)
    kept = [k for k in order if not empty[k]]
    # as GeoJSON mappings, written by GEOS in one call: rasterio's own conversion walks each coordinate in Python
    mappings = json.loads("[" + ",".join(shapely.to_geojson(geometries[kept])) + "]") if kept else []
    burnt = [(mapping, values[layer.classes[k]]) for mapping, k in zip(mappings, kept, strict=True)]
    if burnt:
        rasterize(burnt, out=label, transform=grid.transform, all_touched=rules.all_touched)
    return label, {"features": len(burnt), "repaired": layer.counts.get("repaired", 0),
                   "without_geometry": layer.counts.get("without_geometry", 0)}


def bounds_in(layer: Layer, grid: Grid) -> tuple[float, float, float, float]:
    """The whole layer's bounds in the grid's CRS, to set beside the scene's in a message."""
    from rasterio.warp import transform_bounds

    return tuple(transform_bounds(layer.crs.to_wkt(), grid.crs, *layer.bounds, densify_pts=21))
