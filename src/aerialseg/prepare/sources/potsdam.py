"""The ISPRS Potsdam release as a ``release.Release``: which archives and names a scene's files have.

Checked against the release's documentation and the readers of torchgeo (``potsdam.py``) and
mmsegmentation (``tools/dataset_converters/potsdam.py``), docs/isprs.md cites them:

- orthophotos, 6000 x 6000 px at 5 cm, 8 bits, each with a ``.tfw``: ``2_Ortho_RGB.zip``
  (``2_Ortho_RGB/top_potsdam_{id}_RGB.tif``: red, green, blue), ``3_Ortho_IRRG.zip``
  (``..._IRRG.tif``: near-infrared, red, green) and ``4_Ortho_RGBIR.zip`` (``..._RGBIR.tif``:
  red, green, blue, near-infrared);
- the normalised DSM, ``1_DSM_normalisation.zip``: ``dsm_potsdam_{row:02}_{col:02}_normalized_lastools.jpg``
  (8-bit heights above ground; its row and column are zero-padded, the orthophotos' are not;
  the release's ``..._ownapproach`` files are not read: some are empty);
- labels, colours at the archive's root: ``5_Labels_all.zip`` (``top_potsdam_{id}_label.tif``)
  and ``5_Labels_all_noBoundary.zip`` (``..._label_noBoundary.tif``, boundaries eroded, black).

Scene ids are the tile ids, ``row_column`` (``2_10``).
"""

from __future__ import annotations

import re

from aerialseg.core.config.data_params import PotsdamParams
from aerialseg.core.errors import DataError
from aerialseg.prepare.sources.release import Part, Release

ORTHOPHOTOS = {  # data.potsdam.bands: the archive, the name's suffix and its bands
    "RGB": ("2_Ortho_RGB.zip", "RGB", ("red", "green", "blue")),
    "IRRG": ("3_Ortho_IRRG.zip", "IRRG", ("nir", "red", "green")),
    "RGBIR": ("4_Ortho_RGBIR.zip", "RGBIR", ("red", "green", "blue", "nir")),
}
NDSM = Part("image", "1_DSM_normalisation.zip", "dsm_potsdam_{row2}_{col2}_normalized_lastools.jpg", bands=("ndsm",))
LABELS = (Part("label", "5_Labels_all.zip", "top_potsdam_{id}_label.tif"),
          Part("label_noboundary", "5_Labels_all_noBoundary.zip", "top_potsdam_{id}_label_noBoundary.tif"))
_TILE_ID = re.compile(r"^\d+_\d+$")


def potsdam_release(params: PotsdamParams) -> Release:
    """The parts a Potsdam scene is read from with these params (``bands``, ``ndsm``)."""
    archive, suffix, bands = ORTHOPHOTOS[params.bands]
    orthophoto = (Part("image", archive, f"top_potsdam_{{id}}_{suffix}.tif", bands=bands),
                  Part("world", archive, f"top_potsdam_{{id}}_{suffix}.tfw"))
    return Release("Potsdam", "data.potsdam", orthophoto + ((NDSM,) if params.ndsm else ()) + LABELS)


def check_tile_ids(scenes: list[str]) -> None:
    """One line for a scene id that is no Potsdam tile id."""
    for scene in scenes:
        if not _TILE_ID.match(scene):
            raise DataError(f"data.potsdam: {scene!r} is not a Potsdam tile id (row_column, like 2_10)")
