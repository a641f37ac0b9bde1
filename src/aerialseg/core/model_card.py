"""The model card: the one record of what predicting with a trained model needs, in one schema.

``train`` writes it beside the checkpoints (``model_card.json``); ``aerialseg predict``,
``predict_smooth`` and ``aerialseg export`` read it; an exported ONNX model carries it as its
``aerialseg`` metadata entry and a SavedModel as ``assets.extra/aerialseg.json``, with the
export's layout added. It records the ground sample distance the model learned (so that other
resolutions are resampled to it), the classes and their colours, the bands and their
normalisation, the prediction window, overlap and test-time augmentation, what input sides
must be divisible by, the architecture, and a digest of the training run. The CLI's options
default to it and override it. Cards of earlier versions (no ``schema_version``) are read
for what they hold.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from aerialseg.core.classes import ClassTable, numbered_classes
from aerialseg.core.declarations import Integer, Kind, Section, declared
from aerialseg.core.errors import DataError, ParamsError
from aerialseg.core.io import read_json
from aerialseg.core.names import MODEL_CARD
from aerialseg.core.params import Params, PredictParams, ResizeParams

SCHEMA_VERSION = 1
INPUT = {"bands": ["red", "green", "blue"], "dtype": "uint8", "range": [0, 255],
         "normalisation": "none outside the model: each backbone's own preprocessing is inside it"}


def model_card(params: Params, run: dict[str, Any] | None = None) -> dict[str, Any]:
    """The card of a run with these params; ``run`` is the training state's run record (its digest is kept)."""
    card: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION, "producer": "aerialseg",
        "ground_sample_distance_m": params.resize.gsd,
        **params.classes.card_entries(),
        "input": INPUT,
        "window": params.predict.window, "subdivisions": params.predict.subdivisions, "tta": params.predict.tta,
        "input_multiple": params.model.input_multiple()[0],
        "model": {"encoder": params.model.encoder, "depth": params.model.depth,
                  "base_filters": params.model.base_filters, "max_filters": params.model.max_filters,
                  "batch_norm": params.model.batch_norm},
    }
    if run is not None:
        card["training_run"] = hashlib.sha256(json.dumps(run, sort_keys=True).encode()).hexdigest()[:16]
    return card


# what a card's settings must be: the same declarations as the params they come from (cards are edited
# by hand and copied between machines: they are user input); null means "not recorded"
_CHECKED: dict[str, Kind] = {
    "ground_sample_distance_m": declared(ResizeParams, "gsd"),
    "window": declared(PredictParams, "window"),
    "subdivisions": declared(PredictParams, "subdivisions"),
    "tta": declared(PredictParams, "tta"),
    "input_multiple": Integer(1, 8192),
}


def checked_card(card: Any, source: str) -> dict[str, Any]:
    """``card`` if it is a card this version reads and its settings are what they must be
    (``_CHECKED``; classes: ``card_classes``); a one-line DataError naming ``source`` and the key otherwise."""
    if not isinstance(card, dict):
        raise DataError(f"{source}: the model card is not a JSON object")
    version = card.get("schema_version", 0)
    if isinstance(version, bool) or not isinstance(version, int) or version > SCHEMA_VERSION:
        raise DataError(f"{source}: model card schema_version {version!r} is newer than this aerialseg reads "
                        f"({SCHEMA_VERSION}); upgrade aerialseg")
    if card.get("class_names") is not None:
        _check_classes(card["class_names"], card.get("class_colours"), source)
    fields = Section(card)
    for key, kind in _CHECKED.items():
        if card.get(key) is not None:
            try:
                kind.read(fields, key)
            except ParamsError as err:
                raise DataError(f"{source}: {err}") from None
    return card


def card_beside(checkpoint: Path) -> dict[str, Any] | None:
    """The card ``train`` wrote beside a checkpoint (None if there is none)."""
    path = Path(checkpoint).parent / MODEL_CARD
    return checked_card(read_json(path), str(path)) if path.is_file() else None


def card_value(card: dict[str, Any] | None, key: str) -> Any:
    """A setting recorded in ``card`` (None when the card or the setting is missing)."""
    return None if card is None else card.get(key)


def card_classes(card: dict[str, Any] | None, count: int, source: str) -> tuple[ClassTable, str | None]:
    """The class table a checked card (``checked_card``) records for a model of ``count`` outputs, and
    a note when there is none to read (the classes are then numbered, ``numbered_classes``). A card
    whose classes do not match the model's outputs is a DataError naming ``source``."""
    names, colours = card_value(card, "class_names"), card_value(card, "class_colours")
    if not names:
        return numbered_classes(count), f"no model card names its {count} classes: called class_0 .. class_{count - 1}"
    table = ClassTable.from_card(names, colours)
    if len(table) != count:
        raise DataError(f"{source}: the model predicts {count} classes, its card names {len(table)}")
    return table, None


def _check_classes(names: Any, colours: Any, source: str) -> None:
    if (not isinstance(names, list) or not all(isinstance(n, str) and n for n in names)
            or not isinstance(colours, list) or len(colours) != len(names)
            or not all(isinstance(c, list) and len(c) == 3 and all(type(v) is int and 0 <= v <= 255 for v in c)
                       for c in colours)):
        raise DataError(f"{source}: class_names must be a list of names and class_colours one [red, green, blue] "
                        "(integers 0..255) per name")
