"""The bands of a folder's images: one kind for every image, the bands a model reads, and its input.

``check_images`` reads every image's header before any pixel: all images must hold the same number
of data bands (an alpha band is the image's footprint, not data) of one sample type, and at least
the bands ``data.folder.bands`` names. The models' input follows from them and the training scenes'
band statistics (``band_statistics.band_input``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aerialseg.core.config.data_params import FolderParams
from aerialseg.core.errors import DataError, listed
from aerialseg.core.geo.geoio import data_bands, opened_raster
from aerialseg.core.input_spec import DTYPES


@dataclass(frozen=True)
class ImageFacts:
    """What the folder's images share: their band count and sample type; ``notes`` for the user (bands
    of the files that no model reads)."""

    count: int
    dtype: str
    notes: tuple[str, ...] = ()


def check_images(images: list[Path], own: FolderParams) -> ImageFacts:
    """Read every image's header (no pixel): all must have the same band count and sample type, one of
    ``DTYPES``, and at least the bands ``data.folder.bands`` names; one line naming the files otherwise.
    Bands of the files no name is given to are left out, and said so."""
    kinds: dict[tuple[int, str], list[str]] = {}
    unused: set[int] = set()
    for path in images:
        with opened_raster(path, "raster") as image:
            bands = data_bands(image)
            types = {image.dtypes[b - 1] for b in bands}
            dtype = types.pop() if len(types) == 1 else "mixed (" + "/".join(sorted(types)) + ")"
            kinds.setdefault((len(bands), dtype), []).append(str(path))
            unused |= set(bands) - set(own.file_bands)
    if len(kinds) > 1:
        listed = "; ".join(f"{count} band(s) of {dtype}: {listed(paths)}" for (count, dtype), paths in kinds.items())
        raise DataError(f"{own.path}: the images differ in band count or type ({listed}); a model reads one kind "
                        "(alpha bands aside)")
    (count, dtype), paths = next(iter(kinds.items()))
    if dtype not in DTYPES:
        raise DataError(f"{paths[0]}: bands of {dtype}; aerialseg reads {', '.join(DTYPES)} (gdal_translate -ot "
                        "converts)")
    if len(own.bands) > count:
        raise DataError(f"{paths[0]}: has {count} band(s), data.folder.bands names {len(own.bands)} "
                        f"({', '.join(str(b) for b in own.bands)})")
    notes: tuple[str, ...] = ()
    if unused:
        notes = (f"band(s) {', '.join(map(str, sorted(unused)))} of the images are left out (data.folder.bands names "
                 f"{', '.join(str(b) for b in own.bands)}); name them there to train on them",)
    return ImageFacts(count, dtype, notes)
