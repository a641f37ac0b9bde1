"""The model card: the one typed record of what predicting with a trained model needs.

``train`` writes it beside the checkpoints (``model_card.json``, built by ``model_card`` from
the params); ``predict_smooth``, ``export`` and ``aerialseg predict``/``export`` read it only
through ``read_card``, which checks every field with the declarations of the params it comes
from, so a hand-edited card is refused in one line naming its file and key, like
``params.yaml``. An export adds what it did (``ExportInfo``: layout, precision, int8
calibration) and carries the card as ONNX metadata (``aerialseg``) or a SavedModel asset.

A card (schema 2) records the classes in output order with their display colours, the input
(named bands, data type, how each band is normalised), the ground sample distance the model
learned (other resolutions are resampled to it), the prediction window, overlap and test-time
augmentation (options override them), what input sides must be divisible by, the
architecture, and a digest of the training run. ``null`` means "not recorded" (an unknown
ground sample distance); every setting key must be written. Cards of schema 1 (aerialseg
before the typed card: flat ``class_names``/``class_colours``, the export's keys at the top)
and unversioned ones are read for what they hold, and ``Card.upgraded_from`` says so.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aerialseg.core.classes import ClassTable, numbered_classes
from aerialseg.core.config.declarations import (
    Choice,
    Custom,
    Integer,
    Nested,
    OrNull,
    Section,
    String,
    declared,
    param,
    parse_section,
    shown,
)
from aerialseg.core.config.params import ExportParams, ModelParams, Params, PredictParams, ResizeParams
from aerialseg.core.errors import DataError, ParamsError
from aerialseg.core.input_spec import RGB_UINT8, InputSpec
from aerialseg.core.io import read_json
from aerialseg.core.names import MODEL_CARD

SCHEMA_VERSION = 2
PRODUCER = "aerialseg"
LAYOUTS = ("nhwc255", "nchw01")  # (N, H, W, bands) in [0, 255] | (N, bands, H, W) in [0, 1] (QGIS Deepness)
PRECISIONS = ("float32", "int8")


def _card_classes(section: Section, name: str) -> ClassTable:
    entries = section.get(name)
    if not isinstance(entries, list) or not entries:
        raise ParamsError(f"{section.key(name)}: expected a list of {{name, colour}}, one per model output, "
                          f"got {shown(entries)}")
    names, colours = [], []
    for i, entry in enumerate(entries):
        where = f"{section.key(name)}[{i}]"
        if not isinstance(entry, dict) or set(entry) != {"name", "colour"}:
            raise ParamsError(f"{where}: expected {{name, colour}}, got {shown(entry)}")
        label, colour = entry["name"], entry["colour"]
        if not isinstance(label, str) or not label or label in names:
            raise ParamsError(f"{where}.name: expected a name no other class has, got {shown(label)}")
        if not (isinstance(colour, list) and len(colour) == 3
                and all(type(v) is int and 0 <= v <= 255 for v in colour)):
            raise ParamsError(f"{where}.colour: expected [red, green, blue] of integers 0..255, got {shown(colour)}")
        names.append(label)
        colours.append((colour[0], colour[1], colour[2]))
    return ClassTable(tuple(names), tuple(colours))


@dataclass(frozen=True, kw_only=True)
class Architecture:
    """The network the checkpoints hold (the ``model`` params that shape it)."""

    encoder: str = param(declared(ModelParams, "encoder"))
    depth: int = param(declared(ModelParams, "depth"))
    base_filters: int = param(declared(ModelParams, "base_filters"))
    max_filters: int | None = param(declared(ModelParams, "max_filters"))
    batch_norm: bool = param(declared(ModelParams, "batch_norm"))


@dataclass(frozen=True, kw_only=True)
class Quantization:
    """What int8 quantisation did, so that a user can tell an int8 file from its fp32 source."""

    tool: str = param(String())
    format: str = param(String())
    weights: str = param(String())
    activations: str = param(String())
    calibration_method: str = param(declared(ExportParams, "calibration_method"))
    calibration_windows: int = param(Integer(1, 10_000_000))
    calibration_source: str = param(String())
    # the SHA-256 of the fp32 ONNX file quantised, so that --backend auto runs an int8 file only in place of
    # its own source (None: quantised before aerialseg recorded it)
    source_sha256: str | None = param(OrNull(String(), omissible=True), default=None)


@dataclass(frozen=True, kw_only=True)
class ExportInfo:
    """What an export did: the Keras model's name, the file's layout and precision (int8: how)."""

    model_name: str = param(String())
    layout: str = param(Choice(LAYOUTS))
    precision: str = param(Choice(PRECISIONS))
    input_layout: str = param(String())
    output_layout: str = param(String())
    quantization: Quantization | None = param(OrNull(Nested(Quantization), omissible=True), default=None)
    # the SHA-256 of the checkpoint exported, so that --backend auto can run the export in its place
    checkpoint_sha256: str | None = param(OrNull(String(), omissible=True), default=None)


@dataclass(frozen=True, kw_only=True)
class Card:
    """A model card (module docstring); ``upgraded_from`` is the schema of an earlier card it was read from."""

    schema_version: int = param(Integer(SCHEMA_VERSION, SCHEMA_VERSION))
    producer: str | None = param(OrNull(String(), omissible=True), default=None)
    classes: ClassTable | None = param(OrNull(Custom(_card_classes)))
    input: InputSpec = param(Nested(InputSpec))
    ground_sample_distance_m: float | None = param(OrNull(declared(ResizeParams, "gsd")))
    window: int | None = param(OrNull(declared(PredictParams, "window")))
    subdivisions: int | None = param(OrNull(declared(PredictParams, "subdivisions")))
    tta: str | None = param(OrNull(declared(PredictParams, "tta")))
    input_multiple: int | None = param(OrNull(Integer(1, 8192)))
    architecture: Architecture | None = param(OrNull(Nested(Architecture), omissible=True), default=None)
    training_run: str | None = param(OrNull(String(), omissible=True), default=None)
    export: ExportInfo | None = param(OrNull(Nested(ExportInfo), omissible=True), default=None)
    upgraded_from: int | None = None


@dataclass(frozen=True, kw_only=True)
class DataFacts:
    """What a model learns from: the classes, the input and the ground sample distance of its tiles.
    The tile stage writes them into the tile manifest (``data``) from the params; train reads them
    from there into the card, so that the card says what the tiles were, not what params say now."""

    classes: ClassTable = param(Custom(_card_classes))
    input: InputSpec = param(Nested(InputSpec))
    ground_sample_distance_m: float = param(declared(ResizeParams, "gsd"))


def data_facts(params: Params, inputs: InputSpec) -> DataFacts:
    """The facts of tiles cut with these params from scenes of ``inputs`` (``input_spec.read_input``)."""
    return DataFacts(classes=params.classes.displayed(), input=inputs, ground_sample_distance_m=params.resize.gsd)


def facts_json(facts: DataFacts) -> dict[str, Any]:
    """The facts as the JSON object ``read_facts`` reads back."""
    result: dict[str, Any] = _plain(facts)
    return result


def read_facts(raw: Any, source: str) -> DataFacts:
    """The checked facts a JSON value holds; a one-line DataError naming ``source`` and the key otherwise."""
    try:
        return parse_section(DataFacts, Section(raw, "data."))
    except ParamsError as err:
        raise DataError(f"{source}: {err}") from None


def build_card(classes: ClassTable | None, *, gsd: float | None, window: int | None, subdivisions: int | None,
               tta: str | None, input_multiple: int | None, architecture: Architecture | None = None,
               training_run: str | None = None, inputs: InputSpec = RGB_UINT8) -> Card:
    """The one builder of cards: what a model predicts and how (``model_card`` fills it from params)."""
    return Card(schema_version=SCHEMA_VERSION, producer=PRODUCER, classes=classes, input=inputs,
                ground_sample_distance_m=gsd, window=window, subdivisions=subdivisions, tta=tta,
                input_multiple=input_multiple, architecture=architecture, training_run=training_run)


def model_card(params: Params, facts: DataFacts, run: dict[str, Any] | None = None) -> Card:
    """The card of a run with these params on tiles of these facts; ``run`` is the training state's run
    record (its digest is kept)."""
    m = params.model
    digest = None if run is None else hashlib.sha256(json.dumps(run, sort_keys=True).encode()).hexdigest()[:16]
    return build_card(facts.classes, gsd=facts.ground_sample_distance_m, window=params.predict.window,
                      subdivisions=params.predict.subdivisions, tta=params.predict.tta,
                      input_multiple=m.input_multiple()[0],
                      architecture=Architecture(encoder=m.encoder, depth=m.depth, base_filters=m.base_filters,
                                                max_filters=m.max_filters, batch_norm=m.batch_norm),
                      training_run=digest, inputs=facts.input)


def card_json(card: Card) -> dict[str, Any]:
    """The card as the JSON object ``read_card`` reads back (a card read from schema 1 is written as 2)."""
    result: dict[str, Any] = _plain(card)
    return result


def _plain(value: Any) -> Any:
    """A card or a part of it as JSON values: classes as [{name, colour}], records as objects of their fields."""
    if isinstance(value, ClassTable):
        return [{"name": n, "colour": list(c)} for n, c in zip(value.names, value.colours, strict=True)]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value) if "param" in f.metadata}
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def read_card(raw: Any, source: str) -> Card:
    """The card a JSON value holds, every field checked; a one-line DataError naming ``source`` and the
    key otherwise (cards are edited by hand and copied between machines: they are user input)."""
    if not isinstance(raw, dict):
        raise DataError(f"{source}: the model card is not a JSON object")
    version = raw.get("schema_version", 0)
    if isinstance(version, bool) or not isinstance(version, int) or not 0 <= version <= SCHEMA_VERSION:
        raise DataError(f"{source}: model card schema_version {version!r} is not one this aerialseg reads "
                        f"(0 .. {SCHEMA_VERSION}); upgrade aerialseg")
    try:
        if version < SCHEMA_VERSION:
            return dataclasses.replace(parse_section(Card, Section(_from_schema_1(raw))), upgraded_from=version)
        return parse_section(Card, Section(raw))
    except ParamsError as err:
        raise DataError(f"{source}: {err}") from None


def _from_schema_1(raw: dict[str, Any]) -> dict[str, Any]:
    """A schema 1 (or unversioned) card in schema 2's form: its settings where they were, classes from
    ``class_names``/``class_colours``, ``model`` as the architecture, the export's keys in ``export``;
    what it does not record is null. Its values are checked by the schema 2 declarations after."""
    names, colours = raw.get("class_names"), raw.get("class_colours")
    classes = None
    if names is not None:
        if not (isinstance(names, list) and isinstance(colours, list) and len(names) == len(colours)):
            raise ParamsError("class_names and class_colours: expected one [red, green, blue] colour per name")
        classes = [{"name": n, "colour": c} for n, c in zip(names, colours, strict=True)]
    card: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION, "producer": raw.get("producer"), "classes": classes,
        "input": _plain(RGB_UINT8),  # schema 1 knew only 8-bit RGB
        **{key: raw.get(key) for key in ("ground_sample_distance_m", "window", "subdivisions", "tta",
                                         "input_multiple", "training_run")},
    }
    if isinstance(raw.get("model"), dict):
        card["architecture"] = {key: raw["model"].get(key) for key in ("encoder", "depth", "base_filters",
                                                                      "max_filters", "batch_norm")}
    if raw.get("layout") is not None:
        card["export"] = {"model_name": raw.get("model_name") or "unknown", "layout": raw["layout"],
                          "precision": raw.get("precision") or "float32",
                          "input_layout": raw.get("input_layout") or "unknown",
                          "output_layout": raw.get("output_layout") or "unknown"}
    return card


def upgrade_note(card: Card | None, source: str) -> str | None:
    """What to tell a user once about a card of an earlier schema (None for a current one)."""
    if card is None or card.upgraded_from is None:
        return None
    return (f"{source}: a schema {card.upgraded_from} model card from an earlier aerialseg, read for what it records"
            f" ({len(card.classes) if card.classes else 'unnamed'} classes, 8-bit RGB input); an export writes it "
            f"as schema {SCHEMA_VERSION}")


def read_card_file(path: Path) -> Card:
    """The checked card in a ``model_card.json``; DataError naming it if it is missing or wrong."""
    return read_card(read_json(path), str(path))


def card_beside(checkpoint: Path) -> Card | None:
    """The checked card ``train`` wrote beside a checkpoint (None if there is none)."""
    path = Path(checkpoint).parent / MODEL_CARD
    return read_card_file(path) if path.is_file() else None


def card_beside_with_note(checkpoint: Path) -> tuple[Card | None, str | None]:
    """The card beside a checkpoint (``card_beside``) and what to tell a user once about it: that it is of
    an earlier schema, or that there is none (its classes are then numbered, its settings the options')."""
    card = card_beside(checkpoint)
    if card is None:
        return None, (f"{checkpoint}: no model card beside it: its classes are numbered and its settings are the "
                      "options' or the defaults'")
    return card, upgrade_note(card, str(Path(checkpoint).parent / MODEL_CARD))


def card_classes(card: Card | None, count: int, source: str) -> tuple[ClassTable, str | None]:
    """The class table a card records for a model of ``count`` outputs, and a note when there is none to
    read (the classes are then numbered, ``numbered_classes``). A card whose classes do not match the
    model's outputs is a DataError naming ``source``."""
    if card is None or card.classes is None:
        return numbered_classes(count), f"no model card names its {count} classes: called class_0 .. class_{count - 1}"
    if len(card.classes) != count:
        raise DataError(f"{source}: the model predicts {count} classes, its card names {len(card.classes)}")
    return card.classes, None
