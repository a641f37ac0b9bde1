"""Shared fixtures: the repository root, the real Potsdam crop, a default params mapping."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import settings

from aerialseg.errors import OffPaletteError
from aerialseg.palette import encode_label

# CI replays the same fuzzed examples every run (a red CI names a reproducible case);
# elsewhere every run explores new ones.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture
def raw_params() -> dict:
    """A fresh deep copy of the repository's params.yaml."""
    return copy.deepcopy(yaml.safe_load((ROOT / "params.yaml").read_text()))


@pytest.fixture
def real_crop_paths() -> tuple[Path, Path]:
    """(RGB, eroded-boundary label) of the real 512-px Potsdam crop."""
    return FIXTURES / "top_potsdam_2_10_crop512_RGB.png", FIXTURES / "top_potsdam_2_10_crop512_label_noBoundary.png"


def strict_index(rgb: np.ndarray, allow_boundary: bool = False) -> np.ndarray:
    """Class indices of a label that must hold palette colours only (black too, if allowed)."""
    encoding = encode_label(rgb, allow_boundary=allow_boundary, tolerance=0)
    if encoding.off_palette:
        listed = ", ".join(f"rgb{c.rgb} x{c.count}" for c in encoding.off_colours)
        raise OffPaletteError(f"{encoding.off_palette} pixels have colours outside the ISPRS palette: {listed}")
    return encoding.mask
