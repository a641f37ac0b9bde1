"""Georeferenced rasters through rasterio (GDAL): where rasters lie, and GIS-ready maps out.

A ``Georeference`` is a raster's CRS, transform and size (orthophotos are read by
``aerialseg.core.geo.orthophoto``). Outputs are
single-band class GeoTIFFs with the ISPRS colour table (or Cloud-Optimized GeoTIFFs),
uint8-quantised probability GeoTIFFs and GeoPackage polygons, written atomically.
"""

from __future__ import annotations

import contextlib
import functools
import glob
import sys
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.shutil
from affine import Affine
from rasterio.crs import CRS
from rasterio.errors import NotGeoreferencedWarning

from aerialseg.core.atomic import atomic_path, write_errors_named
from aerialseg.core.classes import IGNORE_INDEX, ClassTable
from aerialseg.core.errors import DataError, ParamsError, one_line_reason
from aerialseg.core.geo.pixel_size import PixelSize, ground_pixel_size
from aerialseg.core.geo.qgis_style import LAYER_STYLES_SCHEMA, polygons_qml
from aerialseg.core.names import POLYGON_LAYER
from aerialseg.core.native_stderr import captured_stderr
from aerialseg.core.verify import check_geopackage, check_geotiff, write_failure

NODATA = IGNORE_INDEX  # class maps: 0..N-1 are classes, 255 is outside the image (as in the masks)
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

    def pixel_size(self, source: str) -> PixelSize | None:
        """The pixels' size on the ground per axis (see ``aerialseg.core.geo.pixel_size``); None without a
        georeference. DataError naming ``source`` for a CRS whose units say nothing about size."""
        if not self.is_georeferenced:
            return None
        return ground_pixel_size(self.crs, self.transform, self.width, self.height, source=source)

    def resampled(self, width: int, height: int) -> Georeference:
        """The same footprint on a grid of ``width`` x ``height`` pixels."""
        return Georeference(self.crs, self.transform @ Affine.scale(self.width / width, self.height / height),
                            width, height)


def parse_crs(value: str, key: str) -> CRS:
    """A CRS from any form PROJ reads (EPSG:25833, WKT, a PROJ string); ParamsError naming ``key``."""
    from rasterio.errors import CRSError

    try:
        return CRS.from_user_input(value)
    except CRSError:
        raise ParamsError(f"{key}: {value!r} is not a coordinate reference system PROJ knows "
                          "(e.g. EPSG:25833)") from None


@contextlib.contextmanager
def opened_raster(path: Path, what: str) -> Iterator[Any]:
    """A local raster opened for reading; DataError naming it (as ``what``) if it is missing or unreadable."""
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(path) as src:
                yield src
    except DataError:
        raise
    except Exception as err:  # GDAL reports a damaged or foreign file as several kinds of error
        raise DataError(f"{path}: not a readable {what} ({one_line_reason(err)})") from None


def data_bands(src: rasterio.io.DatasetReader) -> tuple[int, ...]:
    """An open raster's bands (1-based) that hold data: all but alpha (the footprint, GDAL's mask)."""
    return tuple(i + 1 for i, interp in enumerate(src.colorinterp) if interp.name != "alpha")


def read_bands(path: str | Path, bands: tuple[int, ...] | None = None) -> np.ndarray:
    """Bands ``bands`` (1-based; None: ``data_bands``) of any raster GDAL reads as (H, W, len(bands)) in its
    own type, read straight into pixel-interleaved order; DataError naming the file when it cannot be read."""
    with opened_raster(Path(path), "raster") as src:
        chosen = data_bands(src) if bands is None else bands
        if max(chosen) > src.count:
            raise DataError(f"{path}: has {src.count} band(s), band {max(chosen)} was asked for")
        types = {src.dtypes[b - 1] for b in chosen}
        if len(types) != 1:
            raise DataError(f"{path}: bands {', '.join(map(str, chosen))} mix types ({', '.join(sorted(types))})")
        image = np.empty((src.height, src.width, len(chosen)), types.pop())
        src.read(chosen, out=image.transpose(2, 0, 1))
    return image


def georeference_of(path: str | Path, crs: CRS | None = None) -> Georeference:
    """Where a raster lies (its world file counts); ``crs`` where the file names none."""
    with opened_raster(Path(path), "raster") as src:
        return Georeference(src.crs or crs, src.transform, src.width, src.height)


def read_area(path: Path, crs: CRS | None) -> list[dict[str, Any]]:
    """The polygons of a vector file (GeoPackage, GeoJSON, Shapefile...) as GeoJSON-like geometries in
    ``crs`` (reprojected by GDAL); ParamsError naming ``--aoi`` for a missing, unreadable or polygon-free file."""
    import fiona
    from fiona.transform import transform_geom

    if not path.is_file():
        raise ParamsError(f"--aoi: {path}: file not found")
    try:
        with fiona.open(path) as layer:
            source = layer.crs_wkt or None
            geometries = [dict(feature.geometry) for feature in layer if feature.geometry is not None]
    except Exception as err:  # Fiona reports foreign and damaged files in several ways
        raise ParamsError(f"--aoi: {path}: not a readable vector file ({one_line_reason(err)})") from None
    polygons = [g for g in geometries if g["type"] in ("Polygon", "MultiPolygon")]
    if not polygons:
        raise ParamsError(f"--aoi: {path}: holds no polygons")
    if source and crs is not None:
        polygons = [dict(transform_geom(source, crs.to_wkt(), g)) for g in polygons]
    return polygons


def read_class_map(path: str | Path) -> np.ndarray:
    """A single-band uint8 class map (H, W) as written by ``write_class_geotiff``; DataError naming the file."""
    path = Path(path)
    with opened_raster(path, "class map") as src:
        if src.count != 1 or src.dtypes[0] != "uint8":
            raise DataError(f"{path}: not a single-band 8-bit class map ({src.count} bands, {src.dtypes[0]})")
        classes: np.ndarray = src.read(1)
        return classes


def colour_table(classes: ClassTable) -> dict[int, tuple[int, int, int, int]]:
    """The table's colours by class index; nodata transparent."""
    table = {i: (*rgb, 255) for i, rgb in enumerate(classes.colours)}
    table[NODATA] = (0, 0, 0, 0)
    return table


def _profile(grid: Georeference, count: int) -> dict[str, Any]:
    return {"driver": "GTiff", "width": grid.width, "height": grid.height, "count": count, "dtype": "uint8",
            "crs": grid.crs, "transform": grid.transform, "nodata": NODATA, **_TILED_DEFLATE}


def _write_geotiff(path: Path, bands: np.ndarray, grid: Georeference, *, cog: bool,
                   colour_map: ClassTable | None, descriptions: tuple[str, ...], scale: float = 1.0,
                   into: Path | None = None) -> None:
    if into is None:
        with atomic_path(path) as tmp:
            _write_geotiff(path, bands, grid, cog=cog, colour_map=colour_map, descriptions=descriptions,
                           scale=scale, into=tmp)
        return
    target = into.with_name(into.name + ".gtiff") if cog else into

    def write_tiled() -> None:
        with rasterio.open(target, "w", **_profile(grid, len(bands))) as dst:
            dst.write(bands)
            if colour_map is not None:
                dst.write_colormap(1, colour_table(colour_map))
            dst.descriptions = descriptions
            if scale != 1.0:
                dst.scales = (scale,) * len(bands)

    def copy_to_cog() -> None:
        rasterio.shutil.copy(target, into, driver="COG", compress="DEFLATE", blocksize=512,
                             overview_resampling="nearest" if colour_map is not None else "average")

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


def write_class_geotiff(path: str | Path, class_map: np.ndarray, grid: Georeference, classes: ClassTable, *,
                        cog: bool = False, into: Path | None = None) -> None:
    """A (H, W) uint8 class map as a single-band GeoTIFF on ``grid``: the class table's colours,
    nodata 255, tiled and DEFLATE-compressed, or a Cloud-Optimized GeoTIFF with overviews.

    Written atomically, or into ``into``, a temporary of ``path`` that the caller moves.
    """
    _write_geotiff(Path(path), class_map[None], grid, cog=cog, colour_map=classes, descriptions=("class",),
                   into=into)


def quantise_probabilities(probabilities: np.ndarray, footprint: np.ndarray | None = None) -> np.ndarray:
    """(H, W, C) probabilities in [0, 1] -> (C, H, W) uint8 steps of 1/254; 255 outside ``footprint``."""
    quantised = np.rint(np.clip(probabilities, 0, 1) * PROBABILITY_SCALE).astype(np.uint8).transpose(2, 0, 1)
    if footprint is not None:
        quantised[:, ~footprint] = NODATA
    return np.ascontiguousarray(quantised)


def write_probability_geotiff(path: str | Path, quantised: np.ndarray, grid: Georeference, names: tuple[str, ...], *,
                              cog: bool = False, into: Path | None = None) -> None:
    """(C, H, W) quantised probabilities as a C-band GeoTIFF, one band per class (named after
    ``names``), with GDAL's scale 1/254 so that tools read probabilities back; nodata 255. ``into``
    as above."""
    _write_geotiff(Path(path), quantised, grid, cog=cog, colour_map=None, descriptions=tuple(names),
                   scale=1 / PROBABILITY_SCALE, into=into)


def write_uncertainty_geotiff(path: str | Path, quantised: np.ndarray, grid: Georeference, *,
                              cog: bool = False, into: Path | None = None) -> None:
    """(1, H, W) quantised uncertainty as a single-band GeoTIFF with GDAL's scale 1/254; nodata 255."""
    _write_geotiff(Path(path), quantised, grid, cog=cog, colour_map=None, descriptions=("uncertainty",),
                   scale=1 / PROBABILITY_SCALE, into=into)


def crs_xml(crs: CRS) -> str:
    """GDAL's auxiliary metadata (``.aux.xml``) giving a raster its CRS: a plain TIFF placed by a world
    file is then read in that CRS by GDAL, QGIS and every stage."""
    from xml.sax.saxutils import escape

    return f"<PAMDataset><SRS>{escape(crs.to_wkt())}</SRS></PAMDataset>\n"


def category_names_xml(names: tuple[str, ...]) -> str:
    """GDAL's auxiliary metadata (``.aux.xml``) naming a class map's values after the classes.

    GDAL keeps category names there, beside the GeoTIFF (the TIFF tags hold the colour
    table): ``gdalinfo`` lists them as categories and QGIS's legend shows the names.
    """
    listed = "".join(f"<Category>{name}</Category>" for name in names)
    return (f'<PAMDataset><PAMRasterBand band="1"><CategoryNames>{listed}</CategoryNames>'
            "</PAMRasterBand></PAMDataset>\n")


def write_class_polygons(path: str | Path, class_map: np.ndarray, grid: Georeference, classes: ClassTable, *,
                         into: Path | None = None) -> tuple[int, bool]:
    """Polygonise a class map into one GeoPackage layer (attributes ``class`` and ``name``) with an
    R*Tree spatial index and, as its default QGIS style (the ``layer_styles`` table), the classes'
    colours and names; nodata makes no polygon. Returns the number of polygons and whether the
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
            return write_class_polygons(path, class_map, grid, classes, into=tmp)
    schema = {"geometry": "Polygon", "properties": {"class": "int", "name": "str"}}
    into.unlink(missing_ok=True)  # the GeoPackage driver creates its own file
    names = classes.names
    records = [{"geometry": geometry, "properties": {"class": int(value), "name": names[int(value)]}}
               for geometry, value in shapes(class_map, mask=class_map != NODATA, transform=grid.transform)]
    indexed = "tensorflow" not in sys.modules or _sqlite_has_rtree()

    def write() -> None:
        with fiona.open(into, "w", driver="GPKG", layer=POLYGON_LAYER, schema=schema,
                        crs_wkt=grid.crs.to_wkt() if grid.crs else None,
                        SPATIAL_INDEX="YES" if indexed else "NO") as layer:
            layer.writerecords(records)
        # GDAL builds the polygons' R*Tree as this table is added to the file: asked for without one, as
        # for the polygons, when SQLite cannot (it was asked for by default, and failed with TensorFlow loaded)
        with fiona.open(into, "w", driver="GPKG", layer="layer_styles", schema=LAYER_STYLES_SCHEMA, FID="id",
                        SPATIAL_INDEX="YES" if indexed else "NO") as table:
            table.write({"geometry": None, "properties": {
                "f_table_catalog": "", "f_table_schema": "", "f_table_name": POLYGON_LAYER, "f_geometry_column": "geom",
                "styleName": POLYGON_LAYER, "styleQML": polygons_qml(classes), "styleSLD": "", "useAsDefault": True,
                "description": "aerialseg: the classes' colours and names", "owner": "", "ui": "",
                "update_time": "2000-01-01T00:00:00"}})  # a fixed time: the same map, the same file

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
