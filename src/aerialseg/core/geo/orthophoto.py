"""An orthophoto read the way prediction needs it: by rows, on a working grid, with its footprint.

Any GDAL raster: a local file, or an ``http(s)://`` URL (a cloud-optimised GeoTIFF read through
GDAL's HTTP range reads, never downloaded whole). ``restrict_to`` narrows it to an area (bounds
in any CRS): only that window is ever read, and it becomes the image's native grid, so every
output covers the area's extent. The footprint combines nodata values, an alpha band (the one
tagged alpha, one chosen, or none) and an internal mask.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.enums import ColorInterp, MaskFlags, Resampling
from rasterio.errors import NotGeoreferencedWarning
from rasterio.windows import Window

from aerialseg.core.errors import DataError, one_line_reason
from aerialseg.core.geo.geoio import Georeference

REMOTE_PREFIXES = ("http://", "https://")
# opening a remote file: no listing of its "folder", no probing for sidecar files
_REMOTE_OPEN = {"GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
                "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif,.tiff,.vrt,.jp2,.png,.jpg"}


def is_remote(path: str | Path) -> bool:
    """Whether ``path`` is an HTTP(S) URL."""
    return str(path).lower().startswith(REMOTE_PREFIXES)


class Orthophoto:
    """An orthophoto read by rows, on its own grid or resampled (Lanczos) to another: the bands a
    model reads, in its order and sample type.

    On its own grid nothing is decoded whole: ``read_rows`` reads the strip it is asked for
    (GDAL's block cache keeps the tiles that overlapping strips share). Resampled, the
    image is read once at the working size, which is what the model sees.
    """

    def __init__(self, path: str | Path, crs: CRS | None = None, *, bands: tuple[int, ...] | None = None,
                 alpha_band: int | str = "auto", band_names: tuple[str, ...] = ("red", "green", "blue"),
                 dtype: str = "uint8") -> None:
        """``band_names`` and ``dtype``: the bands the model reads, by name, and their sample type (its
        card's input); ``bands``: the file's bands (1-based) that are those, in order (None: the first
        ones). ``alpha_band``: ``auto`` (the band GDAL says is alpha, if any), ``none`` (no band marks
        the footprint; a NIR band tagged as alpha is data), or a band number whose zeros are outside the
        footprint."""
        self.path: str | Path = str(path) if is_remote(path) else Path(path)
        if not is_remote(path) and not Path(path).is_file():
            raise DataError(f"{self.path}: file not found")
        try:
            with warnings.catch_warnings(), rasterio.Env(**(_REMOTE_OPEN if is_remote(path) else {})):
                warnings.simplefilter("ignore", NotGeoreferencedWarning)
                self.dataset = rasterio.open(self.path)
        except Exception as err:  # GDAL reports a damaged or foreign file as several kinds of error
            raise DataError(f"{self.path}: not a readable raster ({one_line_reason(err)})") from None
        ds = self.dataset
        wanted = f"{len(band_names)} ({', '.join(band_names)})"
        if ColorInterp.palette in ds.colorinterp:
            self.close()
            raise DataError(f"{self.path}: a palette raster (its values index colours); the model reads {wanted} "
                            "bands of values (gdal_translate -expand rgb)")
        if bands is None:
            if ds.count < len(band_names):
                self.close()
                raise DataError(f"{self.path}: has {ds.count} band(s), the model reads {wanted}; an image of "
                                "those bands, or --bands to pick them")
            bands = tuple(range(1, len(band_names) + 1))
        if len(bands) != len(band_names):
            self.close()
            raise DataError(f"{self.path}: --bands picks {len(bands)} band(s), the model reads {wanted}")
        for band in (*bands, *([alpha_band] if isinstance(alpha_band, int) else [])):
            if not 1 <= band <= ds.count:
                self.close()
                raise DataError(f"{self.path}: has {ds.count} bands, no band {band} (--bands / --alpha-band)")
        types = sorted({ds.dtypes[b - 1] for b in bands})
        if types != [dtype]:
            self.close()
            found, names = "/".join(types), ", ".join(band_names)
            raise DataError(f"{self.path}: bands of {found}, the model was trained on {dtype} bands ({names}); "
                            f"give it {dtype} bands of the same scaling (gdal_translate -ot)")
        self.bands = list(bands)
        tagged = [i + 1 for i, interp in enumerate(ds.colorinterp) if interp == ColorInterp.alpha]
        self.tagged_alpha: int | None = tagged[0] if tagged else None  # the band GDAL says is alpha
        self.alpha_band: int | None = self.tagged_alpha if alpha_band == "auto" else (
            None if alpha_band == "none" else int(alpha_band))
        self.has_alpha = self.alpha_band is not None
        self.unread = tuple(b for b in range(1, ds.count + 1) if b not in self.bands and b != self.alpha_band)
        self.area = Window(0, 0, ds.width, ds.height)  # what is read of the file (restrict_to narrows it)
        self.native = Georeference(ds.crs or crs, ds.transform, ds.width, ds.height)
        self.grid = self.native
        self._resampled: np.ndarray | None = None

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
        data = self._read(indexes=self.bands, out_shape=(len(self.bands), height, width),
                          resampling=Resampling.lanczos)
        self._resampled = np.ascontiguousarray(data.transpose(1, 2, 0))

    def restrict_to(self, bounds: tuple[float, float, float, float], bounds_crs: CRS | None, option: str, *,
                    align: int = 1) -> None:
        """Read only the pixels within ``bounds`` (minx, miny, maxx, maxy in ``bounds_crs``, default the
        image's): the window around them, its edges moved out to multiples of ``align`` pixels, becomes
        the native grid. DataError naming ``option`` and the image when the area misses it: in a
        batch that image fails and the others go on.

        Aligned to the blending's step, an area's windows are windows of the whole image: its map
        equals the whole image's map away from the area's border, and adjacent areas join seamlessly.
        """
        from rasterio.warp import transform_bounds
        from rasterio.windows import from_bounds

        crs = self.native.crs
        if bounds_crs is not None and crs is not None and bounds_crs != crs:
            bounds = transform_bounds(bounds_crs, crs, *bounds, densify_pts=21)
        ds = self.dataset
        wanted = from_bounds(*bounds, transform=ds.transform)
        try:
            area = wanted.round_offsets(op="floor").round_lengths(op="ceil").intersection(
                Window(0, 0, ds.width, ds.height))
        except Exception:  # rasterio raises WindowError when the windows do not overlap
            area = None
        if area is None or area.width < 1 or area.height < 1:
            raise DataError(f"{option}: the area does not overlap {self.path}")
        col0, row0 = int(area.col_off) // align * align, int(area.row_off) // align * align
        col1 = min(-(-int(area.col_off + area.width) // align) * align, ds.width)
        row1 = min(-(-int(area.row_off + area.height) // align) * align, ds.height)
        self.area = Window(col0, row0, col1 - col0, row1 - row0)
        self.native = Georeference(self.native.crs, ds.window_transform(self.area), self.area.width,
                                   self.area.height)
        self.grid, self._resampled = self.native, None

    def _read(self, **kwargs: Any) -> np.ndarray:
        kwargs.setdefault("window", self.area)
        try:
            data: np.ndarray = self.dataset.read(**kwargs)
            return data
        except Exception as err:  # a truncated or damaged file fails at the block that is missing
            raise DataError(f"{self.path}: cannot be read ({one_line_reason(err)})") from None

    def read_rows(self, rows: np.ndarray) -> np.ndarray:
        """The working grid's rows ``rows`` (any order, repeats allowed) as (len(rows), W, bands), in the
        bands' type."""
        rows = np.asarray(rows)
        if self._resampled is not None:
            resampled: np.ndarray = self._resampled[rows]
            return resampled
        first, last = int(rows.min()), int(rows.max()) + 1
        area = self.area
        strip = self._read(indexes=self.bands,
                           window=Window(area.col_off, area.row_off + first, self.native.width, last - first))
        # pixel-interleaved in memory, as every later step (windows, batches, the model) wants it
        pixels: np.ndarray = np.ascontiguousarray(strip.transpose(1, 2, 0))[rows - first]
        return pixels

    def overview(self, side: int = 256) -> tuple[np.ndarray, np.ndarray]:
        """The bands read at most ``side`` px on a side (nearest: values as they are, GDAL's overviews
        where the file has them), (h, w, bands), and where that grid is inside the footprint."""
        native = self.native
        scale = min(1.0, side / max(native.width, native.height))
        grid = native.resampled(max(1, round(native.width * scale)), max(1, round(native.height * scale)))
        values = self._read(indexes=self.bands, out_shape=(len(self.bands), grid.height, grid.width),
                            resampling=Resampling.nearest)
        return values.transpose(1, 2, 0), self.footprint(grid)

    def footprint(self, grid: Georeference | None = None) -> np.ndarray:
        """(H, W) bool on ``grid`` (default the native one): True where the image has data.

        GDAL's dataset mask combines nodata values, an alpha band and an internal mask.
        """
        grid = grid or self.native
        if self.alpha_band is not None and self.alpha_band != self.tagged_alpha:
            return self._read(indexes=self.alpha_band, out_shape=(grid.height, grid.width),
                              resampling=Resampling.nearest) > 0  # a band chosen as alpha
        if self.tagged_alpha is not None and self.alpha_band is None:  # tagged alpha is data: nodata values only
            nodata = self.dataset.nodata
            if nodata is None:
                return np.ones((grid.height, grid.width), bool)
            pixels = self._read(indexes=self.bands, out_shape=(len(self.bands), grid.height, grid.width),
                                resampling=Resampling.nearest)
            return np.asarray((pixels != nodata).any(0))
        if all(flags == [MaskFlags.all_valid] for flags in self.dataset.mask_flag_enums):
            return np.ones((grid.height, grid.width), bool)  # no nodata, alpha or mask: nothing to read
        try:
            mask = self.dataset.dataset_mask(window=self.area, out_shape=(grid.height, grid.width),
                                             resampling=Resampling.nearest)
        except Exception as err:
            raise DataError(f"{self.path}: cannot be read ({one_line_reason(err)})") from None
        inside: np.ndarray = mask > 0
        return inside
