"""Shared fixtures: the repository root, the real Potsdam crop, a default params mapping."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest
import yaml

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

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
