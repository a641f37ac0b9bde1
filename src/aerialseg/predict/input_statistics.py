"""An input's bands against the training scenes': a warning where an image is not what the model learnt from.

A model normalised by the training scenes' percentiles (``input_spec``) reads any values, and
a 16-bit image of another sensor, another processing level or another scaling (reflectance in
0 .. 1 against digital numbers in 0 .. 10000, a 12-bit image stretched to 16 bits) gives a map
that looks like a map and is wrong. So each band's median over the image's footprint (read from
an overview, a few hundred pixels a side) is compared with the training scenes' 1st .. 99th
percentiles: a median outside them means most of the image lies where the model saw almost
nothing, and the user is told, band by band. 8-bit models (``fixed``) read 0 .. 255 as they are;
their inputs are not judged.
"""

from __future__ import annotations

import numpy as np

from aerialseg.core.input_spec import PERCENTILES, InputSpec


def statistics_notes(values: np.ndarray, valid: np.ndarray, spec: InputSpec) -> list[str]:
    """Warnings for bands of ``values`` (h, w, bands; ``valid`` (h, w) the footprint) whose median lies
    outside the training scenes' percentiles that ``spec`` records (none for ``fixed`` inputs)."""
    if spec.normalisation.method != "percentiles" or not valid.any():
        return []
    pixels = values[valid].astype(np.float64)
    pixels = pixels[~np.isnan(pixels).any(axis=1)]
    if not len(pixels):
        return []
    medians = np.median(pixels, axis=0)
    notes = []
    for name, median, low, high in zip(spec.bands, medians, spec.normalisation.low, spec.normalisation.high,
                                       strict=True):
        if not low <= median <= high:
            notes.append(f"warning: band {name}'s median {median:g} lies outside the training scenes' percentiles "
                         f"{PERCENTILES[0]:g} .. {PERCENTILES[1]:g} ({low:g} .. {high:g}): is it the same sensor, "
                         "processing and scaling? The map may be wrong")
    return notes
