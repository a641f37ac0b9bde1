"""Check a written raster or vector before it is published: whole, readable, holding what was written.

GDAL's GeoTIFF writer (libtiff) reports a full disk or a file-size limit on standard error
and carries on: the dataset closes without an exception and leaves a file with truncated or
missing blocks, which GDAL may even read back as empty (sparse) blocks. So every GeoTIFF and
GeoPackage this package writes is reopened from its temporary and checked (its size and type,
every block present and equal to what was meant to be in it; a GeoPackage's SQLite integrity
and feature count) before the rename that publishes it. ``problem_with`` applies the same
checks, without knowing the contents, to an existing output, so that a batch resumed after a
crash redoes a broken file instead of trusting it.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import warnings
from pathlib import Path

import numpy as np
import rasterio
from rasterio.errors import NotGeoreferencedWarning

from aerialseg.core.atomic import final_name
from aerialseg.core.errors import DataError, one_line_reason
from aerialseg.core.io import decode_image, read_npy
from aerialseg.core.names import POLYGON_LAYER

GEOTIFF_SUFFIXES = (".tif", ".tiff")


def _check_geotiff_blocks(path: Path, expected: np.ndarray | None) -> None:
    """Raise ValueError unless every block of ``path`` is present and readable (and equal to
    ``expected``, a (bands, H, W) array, when given)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path) as src:
            if expected is not None:
                found = (src.count, src.height, src.width)
                if found != expected.shape or src.dtypes[0] != expected.dtype.name:
                    raise ValueError(f"holds {found} {src.dtypes[0]}, not {expected.shape} {expected.dtype.name}")
            for (row, col), window in src.block_windows(1):
                if not src.block_size(1, row, col):
                    raise ValueError(f"block ({row}, {col}) is missing")
                block = src.read(window=window)
                if expected is not None:
                    rows, cols = window.toslices()
                    if not np.array_equal(block, expected[:, rows, cols]):
                        raise ValueError(f"block ({row}, {col}) differs from what was written")
            for factor in src.overviews(1):
                src.read(1, out_shape=(max(1, src.height // factor), max(1, src.width // factor)))


# What a writer says when the disk, a quota or a file-size limit stopped it: strerror texts, and
# SQLite's SQLITE_FULL ("database or disk is full", also its message for a file-size limit)
_STOPPED_BY = {**{os.strerror(code): os.strerror(code)
                  for code in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EIO)},
               "database or disk is full": os.strerror(errno.ENOSPC)}


def write_failure(path: Path, tmp: Path, found: str, said: str = "") -> DataError:
    """The one-line error of a write of ``path`` (through its temporary ``tmp``) that did not complete.

    ``found`` is what failed (an exception's text, a check's finding); ``said`` what the writer
    printed (a captured GDAL message). The line leads with the cause when the writer named a
    full disk or a limit, and never shows the temporary's name.
    """
    path = final_name(path)

    def public(text: str) -> str:
        return text.replace(str(tmp), str(path)).replace(tmp.name, path.name)

    told = f"{found} {said}".lower()
    cause = next((cause for text, cause in _STOPPED_BY.items() if text.lower() in told), None)
    detail = "; ".join(public(part) for part in (found, said) if part)
    if cause:
        return DataError(f"{path}: {cause} (not written whole: {detail})")
    return DataError(f"{path}: not written whole ({detail})")


def check_geotiff(tmp: Path, path: Path, expected: np.ndarray, said: str = "") -> None:
    """DataError naming ``path`` unless its temporary ``tmp`` holds ``expected`` (bands, H, W) whole.

    ``said`` is what the writer printed (a captured GDAL message), quoted when the check fails.
    """
    try:
        _check_geotiff_blocks(tmp, expected)
    except Exception as err:  # a damaged file makes GDAL raise several kinds of error
        raise write_failure(path, tmp, one_line_reason(err), said) from None


def check_geopackage(tmp: Path, path: Path, layer: str, count: int, said: str = "") -> None:
    """DataError naming ``path`` unless the GeoPackage ``tmp`` passes SQLite's integrity check and
    its ``layer`` holds ``count`` features."""
    try:
        _check_geopackage(tmp, layer, count)
    except Exception as err:  # sqlite3 and Fiona report damage as several kinds of error
        raise write_failure(path, tmp, one_line_reason(err), said) from None


def _check_geopackage(path: Path, layer: str, count: int | None) -> None:
    import fiona

    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        verdict = db.execute("PRAGMA integrity_check").fetchone()[0]
    if verdict != "ok":
        raise ValueError(f"SQLite integrity check: {verdict}")
    with fiona.open(path, layer=layer) as features:
        found = sum(1 for _ in features)
    if count is not None and found != count:
        raise ValueError(f"layer {layer} holds {found} features, not {count}")


def problem_with(path: Path) -> str | None:
    """Why an existing output is not a whole file of its kind (None: it is whole).

    GeoTIFFs are read block by block, GeoPackages checked by SQLite and read, PNGs decoded,
    ``.npy`` files mapped to their full size; other files must be non-empty.
    """
    suffix = path.suffix.lower()
    try:
        if path.stat().st_size == 0:
            return "it is empty"
        if suffix in GEOTIFF_SUFFIXES:
            _check_geotiff_blocks(path, None)
        elif suffix == ".gpkg":
            _check_geopackage(path, POLYGON_LAYER, None)
        elif suffix == ".png":
            decode_image(path)
        elif suffix == ".npy":
            array = read_npy(path, mmap=True)
            if array.size:
                array.reshape(-1)[-1]  # the map reaches the end of the file
    except DataError as err:
        return str(err).removeprefix(f"{path}: ")
    except Exception as err:  # GDAL, SQLite and NumPy report damage as several kinds of error
        return one_line_reason(err)
    return None
