"""A model's input: its bands by name, in order, their data type, and how each band is normalised.

``download`` resolves it once from the data (the source names the bands; the files give the type;
the training scenes give the statistics) and writes it beside the scenes (``INPUT_FILE``); resize
carries it, the tile manifest records it, train copies it into the model card, and every predictor
reads it from there. So a band's name, an image's type and a normalisation live in one record.

Normalisation maps each band linearly from ``low .. high`` onto the 0 .. 255 the models were built
for (their first layer divides by 255, or a pretrained backbone's ImageNet mapping follows):

- ``fixed``: 8-bit bands keep 0 .. 255 as they are (so nothing changes for 8-bit imagery);
- ``percentiles``: any other type takes ``low`` and ``high`` as the 1st and 99th percentiles
  (``PERCENTILES``) of each band over the training scenes' valid pixels (nodata, alpha and masks
  left out). Percentiles rather than mean and standard deviation: they are what a GIS stretches a
  band by for display (QGIS's cumulative cut), they ignore the few extreme pixels (saturated
  roofs, nodata residue, a tower in a surface model) that would set a mean and a deviation, and
  they keep the models' 0 .. 255 input contract, so the jitter's fractions, the pretrained stems'
  ranges and int8 calibration mean what they mean for 8-bit imagery. Values beyond them are kept,
  not clipped.

Where the normalisation is not the identity it is the model's first layer (``train``), so a
checkpoint, an ONNX export and every predictor apply it identically from the raw band values; the
record declares it for readers and for the predict-time check of an input's statistics.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from aerialseg.core.config.declarations import Choice, Custom, Nested, Section, param, parse_section, shown
from aerialseg.core.errors import DataError, ParamsError
from aerialseg.core.io import read_json, write_json
from aerialseg.core.names import INPUT_FILE

DTYPES = ("uint8", "uint16", "float32")  # the sample types a model reads
NORMALISATIONS = ("fixed", "percentiles")
PERCENTILES = (1.0, 99.0)  # low and high of the ``percentiles`` normalisation
RGB = ("red", "green", "blue")


def _numbers(section: Section, name: str) -> tuple[float, ...]:
    values = section.get(name)
    if (not isinstance(values, list) or not values
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v == v for v in values)):
        raise ParamsError(f"{section.key(name)}: expected a list of numbers, one per band, got {shown(values)}")
    return tuple(float(v) for v in values)


def _band_names(section: Section, name: str) -> tuple[str, ...]:
    values = section.get(name)
    if (not isinstance(values, list) or not values or not all(isinstance(v, str) and v for v in values)
            or len(set(values)) != len(values)):
        raise ParamsError(f"{section.key(name)}: expected a list of distinct band names, got {shown(values)}")
    return tuple(values)


@dataclass(frozen=True, kw_only=True)
class Normalisation:
    """How band values become the model's input: each band's ``low`` .. ``high`` maps linearly onto
    0 .. 255 (module docstring: ``fixed`` for 8 bits, ``percentiles`` for the rest)."""

    method: str = param(Choice(NORMALISATIONS))
    low: tuple[float, ...] = param(Custom(_numbers))
    high: tuple[float, ...] = param(Custom(_numbers))


@dataclass(frozen=True, kw_only=True)
class InputSpec:
    """The model's input: its bands by name, in order, their data type and normalisation."""

    bands: tuple[str, ...] = param(Custom(_band_names))
    dtype: str = param(Choice(DTYPES))
    normalisation: Normalisation = param(Nested(Normalisation))

    def check(self, section: Section) -> None:
        count = len(self.bands)
        if len(self.normalisation.low) != count or len(self.normalisation.high) != count:
            raise ParamsError(f"{section.key('normalisation')}: low and high need one number per band ({count})")
        if any(h <= lo for lo, h in zip(self.normalisation.low, self.normalisation.high, strict=True)):
            raise ParamsError(f"{section.key('normalisation')}: each band's high must exceed its low")

    @property
    def identity(self) -> bool:
        """True when the model takes the band values as they are (8-bit, 0 .. 255 onto itself)."""
        n = self.normalisation
        return all(lo == 0.0 for lo in n.low) and all(h == 255.0 for h in n.high)

    def unit_scale(self) -> tuple[np.ndarray, np.ndarray]:
        """Per band, ``low`` and ``high - low`` as float64 arrays: ``(x - low) / span`` is 0 .. 1."""
        low = np.asarray(self.normalisation.low, np.float64)
        return low, np.asarray(self.normalisation.high, np.float64) - low

    def describe(self) -> str:
        """The input in a few words, for messages: ``4 bands (red, green, blue, nir) of uint16``."""
        return f"{len(self.bands)} band(s) ({', '.join(self.bands)}) of {self.dtype}"


def fixed_input(bands: tuple[str, ...]) -> InputSpec:
    """8-bit bands taken as they are."""
    count = len(bands)
    return InputSpec(bands=bands, dtype="uint8",
                     normalisation=Normalisation(method="fixed", low=(0.0,) * count, high=(255.0,) * count))


RGB_UINT8 = fixed_input(RGB)
"""8-bit red, green, blue as they are: the synthetic scenes', Potsdam's RGB release's, a photo's."""


def input_json(spec: InputSpec) -> dict[str, Any]:
    """The record as the JSON object ``read_input_json`` reads back."""
    n = spec.normalisation
    return {"bands": list(spec.bands), "dtype": spec.dtype,
            "normalisation": {"method": n.method, "low": list(n.low), "high": list(n.high)}}


def read_input_json(raw: Any, source: str) -> InputSpec:
    """The checked record a JSON value holds; one-line DataError naming ``source`` and the key otherwise."""
    if not isinstance(raw, dict):
        raise DataError(f"{source}: expected a JSON object (bands, dtype, normalisation), got {shown(raw)}")
    try:
        return parse_section(InputSpec, Section(raw))
    except ParamsError as err:
        raise DataError(f"{source}: {err}") from None


def write_input(folder: str | Path, spec: InputSpec) -> None:
    """Write the record beside a stage's scenes."""
    write_json(Path(folder) / INPUT_FILE, input_json(spec))


def read_input(folder: str | Path) -> InputSpec:
    """The record beside a stage's scenes; one line when it is missing (a folder from before bands were
    recorded: rerun download) or wrong."""
    path = Path(folder) / INPUT_FILE
    if not path.is_file():
        raise DataError(f"{path}: not found: the scenes' bands are recorded by download; rerun it (dvc repro)")
    return read_input_json(read_json(path), str(path))
