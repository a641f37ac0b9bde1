"""Turn one orthophoto into GIS outputs with a trained model, at the model's resolution.

The image is read by rows (or resampled with Lanczos to the ground sample distance the
model was trained at), smooth-blended, and written on the input's own grid (or the
model's): a class GeoTIFF with the input's CRS and transform, optionally probabilities
and polygons. Pixels outside the image footprint are nodata in every output.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
from affine import Affine
from rasterio.features import bounds as feature_bounds
from rasterio.features import geometry_mask

from aerialseg.core.atomic import atomic_paths
from aerialseg.core.classes import ClassTable, numbered_classes
from aerialseg.core.errors import DataError, ParamsError
from aerialseg.core.geo.geoio import (
    NODATA,
    Georeference,
    category_names_xml,
    parse_crs,
    quantise_probabilities,
    read_area,
    write_class_geotiff,
    write_class_polygons,
    write_probability_geotiff,
    write_uncertainty_geotiff,
)
from aerialseg.core.geo.orthophoto import Orthophoto, is_remote
from aerialseg.core.geo.pixel_size import PixelSize
from aerialseg.core.geo.qgis_style import raster_qml
from aerialseg.core.geo.worldfile import WorldFile, world_file_for
from aerialseg.core.input_spec import RGB_UINT8, InputSpec
from aerialseg.core.io import open_npy_memmap, read_npy, write_rgb_into
from aerialseg.core.palette import index_to_rgb
from aerialseg.core.protocols import BatchModel, RowImage
from aerialseg.core.verify import GEOTIFF_SUFFIXES
from aerialseg.predict.blending import blend_rows, count_windows
from aerialseg.predict.input_statistics import statistics_notes
from aerialseg.predict.uncertainty import quantised_uncertainty

GSD_TOLERANCE = 0.01  # relative: closer than this, the input is taken to be at the model's resolution
OUTPUT_GRIDS = ("input", "model")


@dataclass(frozen=True)
class MapSettings:
    """How to predict: blending, resolution and output choices (one image or a whole batch)."""

    window: int
    subdivisions: int
    tta: str
    batch_size: int
    input_gsd: float | None = None  # metres per pixel of the input, when its georeference does not say
    model_gsd: float | None = None  # metres per pixel the model was trained at, when it does not record it
    output_grid: str = "input"
    cog: bool = False
    crs: str | None = None  # assigned to inputs that carry none (e.g. EPSG:25833 for the ISPRS tiles)
    uncertainty: bool = False  # measure it (for a ranking) even when no uncertainty GeoTIFF is written
    bands: tuple[int, ...] | None = None  # the inputs' bands (1-based) the model reads, in its order (None: the first)
    inputs: InputSpec = RGB_UINT8  # what the model reads: its card's input (bands by name, type, normalisation)
    alpha_band: int | str = "auto"  # auto (the band tagged alpha) | none | a band number
    bounds: tuple[float, float, float, float] | None = None  # only this area (minx, miny, maxx, maxy) ...
    bounds_crs: str | None = None  # ... in this CRS (default: each image's)
    aoi: str | None = None  # only within the polygons of this vector file (any CRS)
    classes: ClassTable | None = None  # names and colours of the outputs (the model card's); None: numbered


@dataclass(frozen=True)
class MapOutputs:
    """Where one image's outputs go; None: not written."""

    class_map: Path
    probabilities: Path | None = None
    vector: Path | None = None
    uncertainty: Path | None = None

    def all(self) -> list[Path]:
        """Every path that will be written (beside a GeoTIFF class map its category names and QGIS style too)."""
        paths = [p for p in (self.class_map, self.probabilities, self.vector, self.uncertainty) if p is not None]
        if self.class_map.suffix.lower() in GEOTIFF_SUFFIXES:
            paths += [categories_file(self.class_map), style_file(self.class_map)]
        return paths


def categories_file(class_map: Path) -> Path:
    """Where GDAL looks for a GeoTIFF's category names: ``NAME.tif.aux.xml``."""
    return class_map.with_name(class_map.name + ".aux.xml")


def style_file(class_map: Path) -> Path:
    """Where QGIS looks for a layer's default style: ``NAME.qml`` (``aerialseg.core.geo.qgis_style``)."""
    return class_map.with_suffix(".qml")


class Mapped(NamedTuple):
    """What mapping one image did: a summary line, notes on what was assumed, the mean uncertainty."""

    summary: str
    notes: list[str]
    mean_uncertainty: float | None = None


class ArrayImage:
    """An (H, W, bands) array from a ``.npy`` file, read like an ungeoreferenced orthophoto."""

    has_alpha = False

    def __init__(self, path: Path, notes: list[str], bands: tuple[int, ...] | None = None,
                 inputs: InputSpec = RGB_UINT8) -> None:
        self.path = path
        array = read_npy(path, mmap=True)
        count = len(inputs.bands)
        channels = 1 if array.ndim == 2 else (array.shape[2] if array.ndim == 3 else "?")
        if array.ndim != 3 or (bands is None and array.shape[2] < count):
            raise DataError(f"{path}: has {channels} channel(s) (shape {array.shape}), the model reads {count} "
                            f"({', '.join(inputs.bands)})")
        if bands is not None and (len(bands) != count or max(bands) > array.shape[2]):
            raise DataError(f"{path}: --bands {','.join(map(str, bands))} does not pick {count} of its {channels} "
                            f"channel(s) for the model's {', '.join(inputs.bands)}")
        if array.dtype != np.dtype(inputs.dtype):
            raise DataError(f"{path}: {array.dtype} values, the model was trained on {inputs.dtype}; give it "
                            f"{inputs.dtype} of the same scaling")
        if array.shape[0] == 0 or array.shape[1] == 0:
            raise DataError(f"{path}: the image is empty ({array.shape[1]}x{array.shape[0]} px)")
        chosen = [b - 1 for b in bands] if bands is not None else list(range(count))
        if array.shape[2] > count and bands is None:
            notes.append(f"channel(s) {', '.join(str(c + 1) for c in range(count, array.shape[2]))} not read "
                         f"(the model reads {count}: --bands picks others)")
        self.array = array[..., :count] if chosen == list(range(count)) else array[..., chosen]  # a view if it can
        self.native = self.grid = Georeference(None, Affine.identity(), array.shape[1], array.shape[0])

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width) of the working grid."""
        return self.grid.height, self.grid.width

    def resample_to(self, width: int, height: int) -> None:
        """Resample (Lanczos) to ``width`` x ``height`` pixels."""
        self.grid = self.native.resampled(width, height)
        self.array = _to_grid(np.ascontiguousarray(self.array), (width, height), cv2.INTER_LANCZOS4)

    def read_rows(self, rows: np.ndarray) -> np.ndarray:
        """Rows of the working grid, (len(rows), W, bands)."""
        return self.array[rows]

    def footprint(self, grid: Georeference | None = None) -> np.ndarray:
        """Every pixel of an array is image."""
        grid = grid or self.native
        return np.ones((grid.height, grid.width), bool)

    def close(self) -> None:
        """Nothing to release."""


def open_orthophoto(path: str | Path, crs: str | None = None, *, bands: tuple[int, ...] | None = None,
                    alpha_band: int | str = "auto", inputs: InputSpec = RGB_UINT8) -> tuple[RowImage, list[str]]:
    """An image to predict (a local file or an http(s) URL) as the model reads it (``inputs``: its
    bands' count and type; ``bands`` picks them), and notes on what was assumed or converted;
    DataError names the file."""
    notes: list[str] = []
    if not is_remote(path):
        path = Path(path)
        if not path.is_file():
            raise DataError(f"{path}: file not found")
        if path.suffix.lower() == ".npy":
            return ArrayImage(path, notes, bands, inputs), notes
    image = Orthophoto(path, parse_crs(crs, "--crs") if crs else None, bands=bands, alpha_band=alpha_band,
                       band_names=inputs.bands, dtype=inputs.dtype)
    if image.alpha_band is not None:
        notes.append(f"band {image.alpha_band} is taken as alpha: its transparent (0) pixels are nodata "
                     "(--alpha-band none if it is data, such as a near-infrared band)")
    if image.unread:
        notes.append(f"band(s) {', '.join(map(str, image.unread))} not read: the model reads "
                     f"{len(inputs.bands)} ({', '.join(inputs.bands)}; --bands picks them)")
    return image, notes


def check_input(path: str | Path, crs: str | None = None, *, bands: tuple[int, ...] | None = None,
                alpha_band: int | str = "auto", inputs: InputSpec = RGB_UINT8) -> None:
    """DataError naming ``path`` unless the model can take it (what ``open_orthophoto`` checks: a
    readable raster with the model's band count and type, the bands it names): the one check of
    every path that feeds the model, run on the header alone, before any model loads."""
    image, _ = open_orthophoto(path, crs, bands=bands, alpha_band=alpha_band, inputs=inputs)
    image.close()


def _restrict(image: RowImage, settings: MapSettings) -> list[dict] | None:
    """Narrow ``image`` to ``--bounds`` or to the extent of ``--aoi``'s polygons; return the polygons
    (in the image's CRS) that mask the footprint, if any."""
    if not isinstance(image, Orthophoto):
        raise ParamsError("--bounds/--aoi: need a georeferenced raster, not a .npy array")
    step = max(1, settings.window // settings.subdivisions)  # the blending's step: see Orthophoto.restrict_to
    if settings.bounds is not None:
        crs = parse_crs(settings.bounds_crs, "--bounds-crs") if settings.bounds_crs else None
        image.restrict_to(settings.bounds, crs, "--bounds", align=step)
        return None
    assert settings.aoi is not None
    polygons = read_area(Path(settings.aoi), image.native.crs)
    extents = np.array([feature_bounds(p) for p in polygons])
    image.restrict_to((extents[:, 0].min(), extents[:, 1].min(), extents[:, 2].max(), extents[:, 3].max()), None,
                      "--aoi", align=step)
    return polygons


def check_crs(value: str | None, key: str = "--crs") -> None:
    """ParamsError naming ``key`` unless ``value`` is a CRS that PROJ knows (EPSG:25833, a WKT...)."""
    if value is not None:
        parse_crs(value, key)


def working_size(native: Georeference, settings: MapSettings, model_gsd: float | None,
                 notes: list[str], source: str = "the input") -> tuple[int, int]:
    """(width, height) at which the model sees the image: its own size, or resampled per axis from the
    input's pixel size on the ground to the model's, so that the model sees square ground pixels of
    the size it learned. Notes say what was assumed and, when the CRS's units are not ground metres, why."""
    size = PixelSize(settings.input_gsd, settings.input_gsd) if settings.input_gsd else native.pixel_size(source)
    model_gsd = settings.model_gsd or model_gsd
    if model_gsd is None:
        notes.append("the model does not record its ground sample distance: predicting at the input's "
                     "resolution (give --model-gsd to resample)")
        return native.width, native.height
    if size is None:
        notes.append(f"no georeference says the input's pixel size: assuming the model's {model_gsd:g} m/px "
                     "(give --gsd if it differs)")
        return native.width, native.height
    factors = size.x / model_gsd, size.y / model_gsd
    ground = f"{size.x:.4g} m" if size.x == size.y else f"{size.x:.4g} x {size.y:.4g} m"
    if all(abs(factor - 1) <= GSD_TOLERANCE for factor in factors):
        if size.why:
            notes.append(f"ground pixels of {ground}, the model's {model_gsd:g} m/px: not resampled; {size.why}")
        return native.width, native.height
    width, height = max(1, round(native.width * factors[0])), max(1, round(native.height * factors[1]))
    notes.append(f"resampled from ground pixels of {ground} to the model's {model_gsd:g} m/px (Lanczos): "
                 f"{native.width}x{native.height} -> {width}x{height} px" + (f"; {size.why}" if size.why else ""))
    return width, height


def _to_grid(array: np.ndarray, size: tuple[int, int], interpolation: int) -> np.ndarray:
    """Resize (H, W[, C]) to ``size`` = (width, height), more than 4 channels included."""
    if array.ndim == 3 and array.shape[2] > 4:
        return np.dstack([_to_grid(array[..., i:i + 4], size, interpolation) for i in range(0, array.shape[2], 4)])
    return cv2.resize(array, size, interpolation=interpolation).reshape(size[1], size[0], *array.shape[2:])


def predict_map(model: BatchModel, image: RowImage, settings: MapSettings, size: tuple[int, int], *,
                keep_probabilities: bool, on_batch: Callable[[int], None] | None = None,
                area: list[dict] | None = None) -> tuple[np.ndarray, np.ndarray | None, Georeference]:
    """Blend ``model`` over the image seen at ``size`` = (width, height) (see ``working_size``):
    (class map, probabilities or None, the grid they lie on).

    The class map is uint8 with nodata 255 outside the footprint; probabilities are
    float16 (H, W, classes).
    """
    width, height = size
    if (width, height) != (image.native.width, image.native.height):
        image.resample_to(width, height)
    shape = image.shape
    class_map = np.empty(shape, np.uint8)
    num_classes = int(model.output_shape[-1])
    probabilities = np.empty((*shape, num_classes), np.float16) if keep_probabilities else None
    for top, rows in blend_rows(image.read_rows, shape, model, window=settings.window, num_classes=num_classes,
                                subdivisions=settings.subdivisions, tta=settings.tta,
                                batch_size=settings.batch_size, on_batch=on_batch):
        class_map[top:top + len(rows)] = rows.argmax(-1)
        if probabilities is not None:
            probabilities[top:top + len(rows)] = rows
    grid = image.grid
    if settings.output_grid == "input" and grid != image.native:
        grid = image.native
        size = (grid.width, grid.height)
        class_map = _to_grid(class_map, size, cv2.INTER_NEAREST_EXACT)
        if probabilities is not None:
            probabilities = _to_grid(probabilities.astype(np.float32), size, cv2.INTER_LINEAR).astype(np.float16)
    footprint = image.footprint(grid)
    if area is not None:  # the area of interest's polygons, in the image's CRS
        footprint &= geometry_mask(area, out_shape=footprint.shape, transform=grid.transform, invert=True)
    class_map[~footprint] = NODATA
    if probabilities is not None:
        probabilities[~footprint] = 0
    return class_map, probabilities, grid


def write_outputs(outputs: MapOutputs, class_map: np.ndarray, probabilities: np.ndarray | None,
                  grid: Georeference, classes: ClassTable, *, cog: bool, uncertainty: np.ndarray | None = None,
                  notes: list[str] | None = None) -> None:
    """Write the class map (GeoTIFF with the table's colours and category names, or an RGB PNG with
    a world file), probabilities (a band per class, named), uncertainty and polygons (attribute
    ``name``): all of them, or none if one fails (a full disk). What was not as asked is added to
    ``notes``."""
    notes = [] if notes is None else notes
    paths = outputs.all()
    geotiff = outputs.class_map.suffix.lower() in GEOTIFF_SUFFIXES
    world = world_file_for(outputs.class_map) if not geotiff and grid.is_georeferenced else None
    if world is not None:
        paths.append(world)
    with atomic_paths(paths) as temporaries:
        into = dict(zip(paths, temporaries, strict=True))
        if geotiff:
            write_class_geotiff(outputs.class_map, class_map, grid, classes, cog=cog, into=into[outputs.class_map])
            into[categories_file(outputs.class_map)].write_text(category_names_xml(classes.names))
            into[style_file(outputs.class_map)].write_text(raster_qml(classes))
        else:
            write_rgb_into(into[outputs.class_map], index_to_rgb(class_map, classes.colours), outputs.class_map)
        if world is not None:
            into[world].write_text(WorldFile.of_transform(grid.transform).to_text())
        if outputs.probabilities is not None and probabilities is not None:
            tmp = into[outputs.probabilities]
            if outputs.probabilities.suffix.lower() == ".npy":
                array = open_npy_memmap(tmp, probabilities.shape, np.float16)
                array[:] = probabilities
                array.flush()
                del array
            else:
                write_probability_geotiff(outputs.probabilities,
                                          quantise_probabilities(probabilities, class_map != NODATA), grid,
                                          classes.names, cog=cog, into=tmp)
        if outputs.uncertainty is not None and uncertainty is not None:
            write_uncertainty_geotiff(outputs.uncertainty, uncertainty, grid, cog=cog, into=into[outputs.uncertainty])
        if outputs.vector is not None:
            _, indexed = write_class_polygons(outputs.vector, class_map, grid, classes, into=into[outputs.vector])
            if not indexed:
                notes.append(f"{outputs.vector}: written without a spatial index (TensorFlow's SQLite has no "
                             "R*Tree module); predict with an exported .onnx model for an indexed GeoPackage")


def map_orthophoto(model: BatchModel, path: str | Path, outputs: MapOutputs, settings: MapSettings, *,
                   model_gsd: float | None = None, on_batch: Callable[[int], None] | None = None,
                   on_start: Callable[[int], None] | None = None) -> Mapped:
    """Predict one image into its outputs; a summary line, the notes on what was assumed, and the
    mean uncertainty when it is measured (``settings.uncertainty`` or an uncertainty output).

    ``on_start`` is told how many windows will run (for a progress bar).
    """
    image, notes = open_orthophoto(path, settings.crs, bands=settings.bands, alpha_band=settings.alpha_band,
                                   inputs=settings.inputs)
    area: list[dict] | None = None
    try:
        if isinstance(image, Orthophoto):
            notes += statistics_notes(*image.overview(), settings.inputs)
        if settings.bounds is not None or settings.aoi is not None:
            area = _restrict(image, settings)
        width, height = working_size(image.native, settings, model_gsd, notes, str(path))
        total = count_windows((height, width), window=settings.window, subdivisions=settings.subdivisions,
                              tta=settings.tta)
        if on_start is not None:
            on_start(total)
        measure = settings.uncertainty or outputs.uncertainty is not None
        class_map, probabilities, grid = predict_map(model, image, settings, (width, height),
                                                     keep_probabilities=outputs.probabilities is not None or measure,
                                                     on_batch=on_batch, area=area)
    finally:
        image.close()
    uncertainty, mean = (quantised_uncertainty(probabilities, class_map != NODATA)
                         if measure and probabilities is not None else (None, None))
    classes = settings.classes or numbered_classes(int(model.output_shape[-1]))
    write_outputs(outputs, class_map, probabilities if outputs.probabilities is not None else None, grid, classes,
                  cog=settings.cog, uncertainty=uncertainty, notes=notes)
    crs = f", {grid.crs.to_string()}" if grid.crs else ""
    said = "" if mean is None else f", mean uncertainty {mean:.3f}"
    return Mapped(f"wrote {outputs.class_map} ({grid.width}x{grid.height} px{crs}, {total} windows{said})", notes,
                  mean)
