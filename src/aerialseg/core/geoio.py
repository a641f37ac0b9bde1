"""Georeferenced rasters through rasterio (GDAL): orthophotos in by rows, GIS-ready maps out.

Inputs are any raster GDAL reads (GeoTIFF compressed or tiled, PNG/JPEG with a world
file) with their CRS, transform and footprint: nodata, an alpha band or an internal mask
all mark pixels outside the image, which stay nodata in every output. Outputs are
single-band class GeoTIFFs with the ISPRS colour table (or Cloud-Optimized GeoTIFFs),
uint8-quantised probability GeoTIFFs and GeoPackage polygons, written atomically.
"""

from __future__ import annotations

import functools
import glob
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.shutil
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import ColorInterp, MaskFlags, Resampling
from rasterio.errors import NotGeoreferencedWarning
from rasterio.windows import Window

from aerialseg.core.atomic import atomic_path, write_errors_named
from aerialseg.core.errors import DataError, ParamsError, one_line_reason
from aerialseg.core.names import POLYGON_LAYER
from aerialseg.core.native_stderr import captured_stderr
from aerialseg.core.palette import CLASS_COLOURS, CLASS_NAMES, IGNORE_INDEX
from aerialseg.core.pixel_size import ground_sample_distance
from aerialseg.core.verify import check_geopackage, check_geotiff, write_failure

NODATA = IGNORE_INDEX  # class maps: 0..5 are classes, 255 is outside the image (as in the masks)
PROBABILITY_SCALE = 254  # probabilities quantised to 0..254 (value / 254), 255 is nodata
_TILED_DEFLATE = {"tiled": True, "blockxsize": 256, "blockysize": 256, "compress": "deflate", "predictor": 1}


@dataclass(frozen=True)
class Georeference:
    """Where a raster lies: its CRS (None when only a world file places it), affine transform and size."""

    crs: CRS | None
    transform: Affine
    width: int
    height: int

    @property
    def is_georeferenced(self) -> bool:
        """Whether a transform places the pixels (GDAL's identity transform means it does not)."""
        return self.transform != Affine.identity()

    def gsd_m(self, source: str) -> float | None:
        """The ground sample distance in metres (see ``aerialseg.core.pixel_size``); None without a
        georeference. DataError naming ``source`` for a CRS whose units say nothing about size."""
        if not self.is_georeferenced:
            return None
        return ground_sample_distance(self.crs, self.transform, self.width, self.height, source=source)

    def resampled(self, width: int, height: int) -> Georeference:
        """The same footprint on a grid of ``width`` x ``height`` pixels."""
        return Georeference(self.crs, self.transform @ Affine.scale(self.width / width, self.height / height),
                            width, height)


class Orthophoto:
    """An 8-bit RGB orthophoto read by rows, on its own grid or resampled (Lanczos) to another.

    On its own grid nothing is decoded whole: ``read_rows`` reads the strip it is asked for
    (GDAL's block cache keeps the tiles that overlapping strips share). Resampled, the
    image is read once at the working size, which is what the model sees.
    """

    def __init__(self, path: str | Path, crs: CRS | None = None, *, bands: tuple[int, int, int] = (1, 2, 3),
                 alpha_band: int | str = "auto") -> None:
        """``bands``: the red, green and blue bands (1-based). ``alpha_band``: ``auto`` (the band
        GDAL says is alpha, if any), ``none`` (no band marks the footprint; a NIR band tagged as
        alpha is data), or a band number whose zeros are outside the footprint."""
        self.path = Path(path)
        if not self.path.is_file():
            raise DataError(f"{self.path}: file not found")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", NotGeoreferencedWarning)
                self.dataset = rasterio.open(self.path)
        except Exception as err:  # GDAL reports a damaged or foreign file as several kinds of error
            raise DataError(f"{self.path}: not a readable raster ({one_line_reason(err)})") from None
        ds = self.dataset
        if ds.count < 3 or ColorInterp.palette in ds.colorinterp:
            self.close()
            raise DataError(f"{self.path}: the model needs 3-channel RGB, this raster has {ds.count} band(s)")
        if ds.dtypes[0] != "uint8":
            self.close()
            raise DataError(f"{self.path}: the model was trained on 8-bit images, this one is {ds.dtypes[0]}; "
                            "convert it to 8-bit first")
        for band in (*bands, *([alpha_band] if isinstance(alpha_band, int) else [])):
            if not 1 <= band <= ds.count:
                self.close()
                raise DataError(f"{self.path}: has {ds.count} bands, no band {band} (--bands / --alpha-band)")
        self.bands = list(bands)
        tagged = [i + 1 for i, interp in enumerate(ds.colorinterp) if interp == ColorInterp.alpha]
        self.alpha_band: int | None = (tagged[0] if tagged else None) if alpha_band == "auto" else (
            None if alpha_band == "none" else int(alpha_band))
        self.has_alpha = self.alpha_band is not None
        self.native = Georeference(ds.crs or crs, ds.transform, ds.width, ds.height)
        self.grid = self.native
        self._resampled: np.ndarray | None = None

    def _tagged_alpha(self) -> int | None:
        tagged = [i + 1 for i, interp in enumerate(self.dataset.colorinterp) if interp == ColorInterp.alpha]
        return tagged[0] if tagged else None

    def close(self) -> None:
        """Release the file."""
        self.dataset.close()

    def __enter__(self) -> Orthophoto:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width) of the working grid."""
        return self.grid.height, self.grid.width

    def resample_to(self, width: int, height: int) -> None:
        """Make the working grid ``width`` x ``height`` pixels over the same footprint (Lanczos)."""
        if (width, height) == (self.native.width, self.native.height):
            self.grid, self._resampled = self.native, None
            return
        self.grid = self.native.resampled(width, height)
        data = self._read(indexes=self.bands, out_shape=(3, height, width), resampling=Resampling.lanczos)
        self._resampled = np.ascontiguousarray(data.transpose(1, 2, 0))

    def _read(self, **kwargs: Any) -> np.ndarray:
        try:
            data: np.ndarray = self.dataset.read(**kwargs)
            return data
        except Exception as err:  # a truncated or damaged file fails at the block that is missing
            raise DataError(f"{self.path}: cannot be read ({one_line_reason(err)})") from None

    def read_rows(self, rows: np.ndarray) -> np.ndarray:
        """The working grid's rows ``rows`` (any order, repeats allowed) as (len(rows), W, 3) uint8."""
        rows = np.asarray(rows)
        if self._resampled is not None:
            resampled: np.ndarray = self._resampled[rows]
            return resampled
        first, last = int(rows.min()), int(rows.max()) + 1
        strip = self._read(indexes=self.bands, window=Window(0, first, self.native.width, last - first))
        # pixel-interleaved in memory, as every later step (windows, batches, the model) wants it
        pixels: np.ndarray = np.ascontiguousarray(strip.transpose(1, 2, 0))[rows - first]
        return pixels

    def footprint(self, grid: Georeference | None = None) -> np.ndarray:
        """(H, W) bool on ``grid`` (default the native one): True where the image has data.

        GDAL's dataset mask combines nodata values, an alpha band and an internal mask.
        """
        grid = grid or self.native
        tagged = ColorInterp.alpha in self.dataset.colorinterp
        if self.alpha_band is not None and (not tagged or self.alpha_band != self._tagged_alpha()):
            return self._read(indexes=self.alpha_band, out_shape=(grid.height, grid.width),
                              resampling=Resampling.nearest) > 0  # a band chosen as alpha
        if tagged and self.alpha_band is None:  # the tagged alpha band is data: only nodata values count
            nodata = self.dataset.nodata
            if nodata is None:
                return np.ones((grid.height, grid.width), bool)
            pixels = self._read(indexes=self.bands, out_shape=(3, grid.height, grid.width),
                                resampling=Resampling.nearest)
            return np.asarray((pixels != nodata).any(0))
        if all(flags == [MaskFlags.all_valid] for flags in self.dataset.mask_flag_enums):
            return np.ones((grid.height, grid.width), bool)  # no nodata, alpha or mask: nothing to read
        try:
            mask = self.dataset.dataset_mask(out_shape=(grid.height, grid.width), resampling=Resampling.nearest)
        except Exception as err:
            raise DataError(f"{self.path}: cannot be read ({one_line_reason(err)})") from None
        inside: np.ndarray = mask > 0
        return inside


def parse_crs(value: str, key: str) -> CRS:
    """A CRS from any form PROJ reads (EPSG:25833, WKT, a PROJ string); ParamsError naming ``key``."""
    from rasterio.errors import CRSError

    try:
        return CRS.from_user_input(value)
    except CRSError:
        raise ParamsError(f"{key}: {value!r} is not a coordinate reference system PROJ knows "
                          "(e.g. EPSG:25833)") from None


def georeference_of(path: str | Path, crs: CRS | None = None) -> Georeference:
    """Where a raster lies (its world file counts); ``crs`` where the file names none."""
    with Orthophoto(path, crs) as image:
        return image.native


def read_class_map(path: str | Path) -> np.ndarray:
    """A single-band uint8 class map (H, W) as written by ``write_class_geotiff``; DataError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(path) as src:
                if src.count != 1 or src.dtypes[0] != "uint8":
                    raise DataError(f"{path}: not a single-band 8-bit class map ({src.count} bands, {src.dtypes[0]})")
                classes: np.ndarray = src.read(1)
                return classes
    except DataError:
        raise
    except Exception as err:  # GDAL reports a damaged file as several kinds of error
        raise DataError(f"{path}: not a readable class map ({one_line_reason(err)})") from None


def colour_table() -> dict[int, tuple[int, int, int, int]]:
    """The ISPRS colours by class index; nodata transparent."""
    table = {i: (*rgb, 255) for i, rgb in enumerate(CLASS_COLOURS)}
    table[NODATA] = (0, 0, 0, 0)
    return table


def _profile(grid: Georeference, count: int) -> dict[str, Any]:
    return {"driver": "GTiff", "width": grid.width, "height": grid.height, "count": count, "dtype": "uint8",
            "crs": grid.crs, "transform": grid.transform, "nodata": NODATA, **_TILED_DEFLATE}


def _write_geotiff(path: Path, bands: np.ndarray, grid: Georeference, *, cog: bool, colour_map: bool,
                   descriptions: tuple[str, ...], scale: float = 1.0, into: Path | None = None) -> None:
    if into is None:
        with atomic_path(path) as tmp:
            _write_geotiff(path, bands, grid, cog=cog, colour_map=colour_map, descriptions=descriptions,
                           scale=scale, into=tmp)
        return
    target = into.with_name(into.name + ".gtiff") if cog else into

    def write_tiled() -> None:
        with rasterio.open(target, "w", **_profile(grid, len(bands))) as dst:
            dst.write(bands)
            if colour_map:
                dst.write_colormap(1, colour_table())
            dst.descriptions = descriptions
            if scale != 1.0:
                dst.scales = (scale,) * len(bands)

    def copy_to_cog() -> None:
        rasterio.shutil.copy(target, into, driver="COG", compress="DEFLATE", blocksize=512,
                             overview_resampling="nearest" if colour_map else "average")

    try:
        _checked_gdal_write(path, target, write_tiled, lambda said: check_geotiff(target, path, bands, said=said))
        if cog:
            _checked_gdal_write(path, into, copy_to_cog, lambda said: check_geotiff(into, path, bands, said=said))
    finally:
        if cog:
            target.unlink(missing_ok=True)


def _checked_gdal_write(path: Path, tmp: Path, write: Callable[[], None], check: Callable[[str], None]) -> None:
    """Run a GDAL write into ``tmp`` (a temporary of ``path``) with its messages captured, then ``check``
    the result: GDAL's libtiff reports a full disk on standard error and carries on, so the file is
    judged by reading it back, and what GDAL said is quoted in the one line if it is not whole."""
    failure: Exception | None = None
    with captured_stderr() as said:
        try:
            with warnings.catch_warnings(), write_errors_named(path):
                warnings.simplefilter("ignore", NotGeoreferencedWarning)
                write()
        except DataError:
            raise
        except Exception as err:  # rasterio raises RasterioError and GDAL's CPLE_* errors (not a subclass)
            failure = err
    if failure is not None:
        raise write_failure(path, tmp, one_line_reason(failure, limit=400), said.first_line())
    check(said.first_line())
    said.replay()  # the file is whole: what GDAL said were notices


def write_class_geotiff(path: str | Path, class_map: np.ndarray, grid: Georeference, *, cog: bool = False,
                        into: Path | None = None) -> None:
    """A (H, W) uint8 class map as a single-band GeoTIFF on ``grid``: ISPRS colour table,
    nodata 255, tiled and DEFLATE-compressed, or a Cloud-Optimized GeoTIFF with overviews.

    Written atomically, or into ``into``, a temporary of ``path`` that the caller moves.
    """
    _write_geotiff(Path(path), class_map[None], grid, cog=cog, colour_map=True, descriptions=("class",), into=into)


def quantise_probabilities(probabilities: np.ndarray, footprint: np.ndarray | None = None) -> np.ndarray:
    """(H, W, C) probabilities in [0, 1] -> (C, H, W) uint8 steps of 1/254; 255 outside ``footprint``."""
    quantised = np.rint(np.clip(probabilities, 0, 1) * PROBABILITY_SCALE).astype(np.uint8).transpose(2, 0, 1)
    if footprint is not None:
        quantised[:, ~footprint] = NODATA
    return np.ascontiguousarray(quantised)


def write_probability_geotiff(path: str | Path, quantised: np.ndarray, grid: Georeference, *,
                              cog: bool = False, into: Path | None = None) -> None:
    """(C, H, W) quantised probabilities as a C-band GeoTIFF, one band per class (named), with
    GDAL's scale 1/254 so that tools read probabilities back; nodata 255. ``into`` as above."""
    _write_geotiff(Path(path), quantised, grid, cog=cog, colour_map=False, descriptions=tuple(CLASS_NAMES),
                   scale=1 / PROBABILITY_SCALE, into=into)


def write_uncertainty_geotiff(path: str | Path, quantised: np.ndarray, grid: Georeference, *,
                              cog: bool = False, into: Path | None = None) -> None:
    """(1, H, W) quantised uncertainty as a single-band GeoTIFF with GDAL's scale 1/254; nodata 255."""
    _write_geotiff(Path(path), quantised, grid, cog=cog, colour_map=False, descriptions=("uncertainty",),
                   scale=1 / PROBABILITY_SCALE, into=into)


def category_names_xml() -> str:
    """GDAL's auxiliary metadata (``.aux.xml``) naming a class map's values after the classes.

    GDAL keeps category names there, beside the GeoTIFF (the TIFF tags hold the colour
    table): ``gdalinfo`` lists them as categories and QGIS's legend shows the names.
    """
    names = "".join(f"<Category>{name}</Category>" for name in CLASS_NAMES)
    return (f'<PAMDataset><PAMRasterBand band="1"><CategoryNames>{names}</CategoryNames>'
            "</PAMRasterBand></PAMDataset>\n")


def write_class_polygons(path: str | Path, class_map: np.ndarray, grid: Georeference, *,
                         into: Path | None = None) -> tuple[int, bool]:
    """Polygonise a class map into one GeoPackage layer (attributes ``class`` and ``name``) with an
    R*Tree spatial index; nodata makes no polygon. Returns the number of polygons and whether the
    layer is indexed. ``into`` as above.

    The index needs SQLite's R*Tree module. TensorFlow ships an SQLite without it whose symbols
    GDAL binds to once TensorFlow is loaded (a Keras checkpoint predicted with TensorFlow), so
    then the layer is written without an index and the caller says so.
    """
    import fiona
    from rasterio.features import shapes

    path = Path(path)
    if into is None:
        with atomic_path(path) as tmp:
            return write_class_polygons(path, class_map, grid, into=tmp)
    schema = {"geometry": "Polygon", "properties": {"class": "int", "name": "str"}}
    into.unlink(missing_ok=True)  # the GeoPackage driver creates its own file
    records = [{"geometry": geometry, "properties": {"class": int(value), "name": CLASS_NAMES[int(value)]}}
               for geometry, value in shapes(class_map, mask=class_map != NODATA, transform=grid.transform)]
    indexed = "tensorflow" not in sys.modules or _sqlite_has_rtree()

    def write() -> None:
        with fiona.open(into, "w", driver="GPKG", layer=POLYGON_LAYER, schema=schema,
                        crs_wkt=grid.crs.to_wkt() if grid.crs else None,
                        SPATIAL_INDEX="YES" if indexed else "NO") as layer:
            layer.writerecords(records)

    try:
        _checked_gdal_write(path, into, write,
                            lambda said: check_geopackage(into, path, POLYGON_LAYER, len(records), said=said))
    finally:  # what SQLite and GDAL put beside the file while writing (journal, R*Tree bulk load)
        for side_file in into.parent.glob(glob.escape(into.name) + "?*"):
            side_file.unlink(missing_ok=True)
    return len(records), indexed


@functools.cache
def _sqlite_has_rtree() -> bool:
    """Whether the SQLite that GDAL uses in this process can build an R*Tree (see write_class_polygons)."""
    import tempfile

    import fiona

    with tempfile.TemporaryDirectory(prefix="aerialseg-rtree-") as folder:
        schema = {"geometry": "Polygon", "properties": {}}
        try:
            with fiona.open(Path(folder) / "probe.gpkg", "w", driver="GPKG", schema=schema, SPATIAL_INDEX="YES"):
                pass
        except Exception:  # Fiona's DriverError or GDAL's CPLE error: "no such module: rtree"
            return False
    return True
