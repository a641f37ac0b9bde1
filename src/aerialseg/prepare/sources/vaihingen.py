"""The ISPRS Vaihingen release as a ``release.Release``: which archives and names an area's files have.

Checked against the release's documentation and the readers of torchgeo (``vaihingen.py``) and
mmsegmentation (``tools/dataset_converters/vaihingen.py``), docs/isprs.md cites them:

- ``ISPRS_semantic_labeling_Vaihingen.zip``: the true orthophotos ``top/top_mosaic_09cm_area{N}.tif``
  (8-bit false colour: near-infrared, red, green; 9 cm) and the DSMs
  ``dsm/dsm_09cm_matching_area{N}.tif`` (float32 heights in metres, from image matching);
- ``ISPRS_semantic_labeling_Vaihingen_ground_truth_COMPLETE.zip``: every area's colour labels,
  ``top_mosaic_09cm_area{N}.tif`` at the root (the image's very name: the image is the one in ``top/``);
- ``..._ground_truth_eroded_COMPLETE.zip``: the eroded labels, ``top_mosaic_09cm_area{N}_noBoundary.tif``
  (it also holds one for area 9, which has no image: skipped with a note, as mmsegmentation drops it).

33 areas, numbered 1 to 38 (9, 18, 19, 25 and 36 were never published); scene ids ``area{N}``.
The official split trains on 16 areas (1, 3, 5, 7, 11, 13, 15, 17, 21, 23, 26, 28, 30, 32, 34, 37)
and tests on the other 17; validation is carved from training as DeepNetsForEO (Audebert, Le Saux
and Lefevre, 2017) and many papers since carve it: areas 5, 15, 21, 30.
"""

from __future__ import annotations

import re

from aerialseg.core.config.data_params import VaihingenParams
from aerialseg.core.errors import DataError
from aerialseg.prepare.sources.release import Part, Release

AREAS = tuple(n for n in range(1, 39) if n not in (9, 18, 19, 25, 36))
IMAGES = "ISPRS_semantic_labeling_Vaihingen.zip"
TOP = Part("image", IMAGES, "top_mosaic_09cm_{id}.tif", "top", ("nir", "red", "green"))
DSM = Part("image", IMAGES, "dsm_09cm_matching_{id}.tif", "dsm", ("dsm",))
LABELS = (Part("label", "ISPRS_semantic_labeling_Vaihingen_ground_truth_COMPLETE.zip", "top_mosaic_09cm_{id}.tif"),
          Part("label_noboundary", "ISPRS_semantic_labeling_Vaihingen_ground_truth_eroded_COMPLETE.zip",
               "top_mosaic_09cm_{id}_noBoundary.tif"))


def vaihingen_release(params: VaihingenParams) -> Release:
    """The parts a Vaihingen area is read from with these params (``dsm``)."""
    return Release("Vaihingen", "data.vaihingen", (TOP,) + ((DSM,) if params.dsm else ()) + LABELS)


def check_area_ids(scenes: list[str]) -> None:
    """One line for a scene id that is no published Vaihingen area."""
    for scene in scenes:
        found = re.fullmatch(r"area(\d+)", scene)
        if found is None or int(found.group(1)) not in AREAS:
            raise DataError(f"data.vaihingen: {scene!r} is not a Vaihingen area (area1 .. area38 less area9, "
                            "area18, area19, area25, area36, which were never published)")
