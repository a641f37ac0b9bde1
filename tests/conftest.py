"""Shared fixtures: the repository root, the real Potsdam crop, a default params mapping."""

from __future__ import annotations

import copy
import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import settings

from aerialseg.core.config.params import load_params
from aerialseg.core.errors import OffPaletteError
from aerialseg.core.input_spec import RGB_UINT8
from aerialseg.core.model_card import data_facts, facts_json
from aerialseg.core.palette import encode_label

# CI replays the same fuzzed examples every run (a red CI names a reproducible case);
# elsewhere every run explores new ones.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
CLASSES = load_params(ROOT / "params.yaml").classes
"""The default class table (params.yaml's), for tests that need "the classes" without a params file."""
TILE_FACTS = facts_json(data_facts(load_params(ROOT / "params.yaml"), RGB_UINT8))
"""What a tile manifest records of tiles cut with the default params (its ``data``)."""


@pytest.fixture(autouse=True, scope="session")
def user_cache(tmp_path_factory) -> Path:
    """A cache folder of the test session's own (``--backend auto``'s speed measurements), never the user's."""
    folder = tmp_path_factory.mktemp("user_cache")
    os.environ["AERIALSEG_CACHE_DIR"] = str(folder)
    return folder


@pytest.fixture
def raw_params() -> dict:
    """A fresh deep copy of the repository's params.yaml."""
    return copy.deepcopy(yaml.safe_load((ROOT / "params.yaml").read_text()))


@pytest.fixture
def real_crop_paths() -> tuple[Path, Path]:
    """(RGB, eroded-boundary label) of the real 512-px Potsdam crop."""
    return FIXTURES / "top_potsdam_2_10_crop512_RGB.png", FIXTURES / "top_potsdam_2_10_crop512_label_noBoundary.png"


def save_tiny_checkpoint(path: Path, *, depth: int = 2, base_filters: int = 2, num_classes: int = 6,
                         batch_norm: bool | None = None, encoder: str = "none", seed: int = 0, card: bool = True):
    """Build a tiny untrained U-Net (or one on a pretrained-encoder architecture, random weights) with
    a fixed seed and save it as a Keras checkpoint at ``path``; return the model. ``batch_norm``
    None keeps the builder's default (off for the seed's U-Net, on for an encoder's decoder). With
    ``card``, a model card naming the default table's classes is written beside it, as train does."""
    from aerialseg.core.framework import keras
    from aerialseg.train.encoders import build_encoder_unet
    from aerialseg.train.model import build_unet

    keras.utils.set_random_seed(seed)
    norm = {} if batch_norm is None else {"batch_norm": batch_norm}
    if encoder == "none":
        model = build_unet(num_classes, depth, base_filters, **norm)
    else:
        model = build_encoder_unet(encoder, "none", num_classes, base_filters=base_filters, max_filters=16, **norm)
    model.save(path)
    if card:
        from aerialseg.core.io import write_json
        from aerialseg.core.model_card import build_card, card_json
        from aerialseg.core.names import MODEL_CARD

        recorded = build_card(CLASSES.displayed(), gsd=None, window=None, subdivisions=None, tta=None,
                              input_multiple=None)  # names the classes, records no settings
        write_json(Path(path).parent / MODEL_CARD, card_json(recorded))
    return model


@pytest.fixture(scope="session")
def tiny_checkpoint():
    """The tiny-checkpoint factory (``save_tiny_checkpoint``), for tests and fixtures of any scope."""
    return save_tiny_checkpoint


def strict_index(rgb: np.ndarray, allow_boundary: bool = False) -> np.ndarray:
    """Class indices of a label that must hold palette colours only (black too, if allowed)."""
    table = CLASSES if allow_boundary else dataclasses.replace(CLASSES, ignore_colours=())
    encoding = encode_label(rgb, table, tolerance=0)
    if encoding.off_palette:
        listed = ", ".join(f"rgb{c.rgb} x{c.count}" for c in encoding.off_colours)
        raise OffPaletteError(f"{encoding.off_palette} pixels have colours outside the class table: {listed}")
    return encoding.mask
