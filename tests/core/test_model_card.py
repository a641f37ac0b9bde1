"""The typed model card: one builder, a JSON form read back exactly, every field checked, schema 1 still read."""

from __future__ import annotations

import copy
import dataclasses
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aerialseg.core.config.params import load_params
from aerialseg.core.errors import DataError
from aerialseg.core.input_spec import RGB_UINT8
from aerialseg.core.model_card import (
    SCHEMA_VERSION,
    Architecture,
    card_json,
    data_facts,
    facts_json,
    model_card,
    read_card,
    read_facts,
    upgrade_note,
)

# a card as aerialseg wrote it before the typed card (schema 1, the default run's on 221bccf), byte for byte
SCHEMA_1 = json.loads("""{
  "class_colours": [[255, 255, 255], [0, 0, 255], [0, 255, 255], [0, 255, 0], [255, 255, 0], [255, 0, 0]],
  "class_names": ["impervious", "building", "low_vegetation", "tree", "car", "clutter"],
  "ground_sample_distance_m": 0.4,
  "input": {"bands": ["red", "green", "blue"], "dtype": "uint8",
            "normalisation": "none outside the model: each backbone's own preprocessing is inside it",
            "range": [0, 255]},
  "input_multiple": 64,
  "model": {"base_filters": 8, "batch_norm": false, "depth": 6, "encoder": "none", "max_filters": 32},
  "producer": "aerialseg", "schema_version": 1, "subdivisions": 2, "training_run": "83676a2202c3dfd3",
  "tta": "d4", "window": 128
}""")


@pytest.fixture(scope="module")
def params():
    return load_params("params.yaml")


def test_the_card_of_the_params_reads_back_as_itself(params):
    card = model_card(params, data_facts(params, RGB_UINT8), {"epochs": 3})
    written = json.loads(json.dumps(card_json(card)))  # through JSON text, as the file holds it
    assert read_card(written, "card.json") == card
    assert written["schema_version"] == SCHEMA_VERSION == 2
    assert [c["name"] for c in written["classes"]] == list(params.classes.names)
    assert [tuple(c["colour"]) for c in written["classes"]] == list(params.classes.colours)
    assert written["input"] == {"bands": ["red", "green", "blue"], "dtype": "uint8",
                                "normalisation": {"method": "fixed", "low": [0, 0, 0], "high": [255, 255, 255]}}
    assert (written["ground_sample_distance_m"], written["window"], written["subdivisions"], written["tta"]) == (
        params.resize.gsd, params.predict.window, params.predict.subdivisions, params.predict.tta)
    assert written["architecture"]["depth"] == params.model.depth and written["export"] is None
    other_run = model_card(params, data_facts(params, RGB_UINT8), {"epochs": 4})
    assert other_run.training_run != card.training_run  # the run's digest


def test_a_schema_1_card_is_read_for_what_it_holds_and_says_so(params):
    card = read_card(copy.deepcopy(SCHEMA_1), "old.json")
    assert card.upgraded_from == 1 and card.classes is not None
    assert card.classes.names == params.classes.names and card.classes.colours == params.classes.colours
    assert (card.ground_sample_distance_m, card.window, card.subdivisions, card.tta, card.input_multiple) == (
        0.4, 128, 2, "d4", 64)
    assert card.architecture == Architecture(encoder="none", depth=6, base_filters=8, max_filters=32,
                                             batch_norm=False)
    assert card.input == RGB_UINT8 and card.training_run == "83676a2202c3dfd3"
    note = upgrade_note(card, "old.json")
    assert note is not None and note.startswith("old.json: a schema 1 model card") and "6 classes" in note
    again = read_card(card_json(card), "new.json")  # written as the current schema, it is current
    assert again.upgraded_from is None and again == dataclasses.replace(card, upgraded_from=None)
    assert upgrade_note(again, "new.json") is None


def test_an_unversioned_partial_card_and_a_schema_1_export_are_read(params):
    bare = read_card({"ground_sample_distance_m": 0.05}, "bare.json")
    assert bare.upgraded_from == 0 and bare.classes is None and bare.window is None
    assert bare.ground_sample_distance_m == 0.05 and bare.export is None
    exported = read_card({**SCHEMA_1, "layout": "nchw01", "precision": "int8", "model_name": "unet"}, "m.onnx")
    assert exported.export is not None and (exported.export.layout, exported.export.precision) == ("nchw01", "int8")
    with pytest.raises(DataError, match=r"^m\.onnx: export\.layout: unknown value 'nhwc'"):
        read_card({**SCHEMA_1, "layout": "nhwc"}, "m.onnx")
    with pytest.raises(DataError, match=r"^old\.json: class_names and class_colours: expected one"):
        read_card({**SCHEMA_1, "class_colours": [[0, 0, 0]]}, "old.json")


@pytest.mark.parametrize("path, value, said", [
    (("window",), 7, "window: must be >= 8, got 7"),
    (("input", "bands"), ["red", "red", "blue"], "input.bands: expected a list of distinct band names"),
    (("input", "dtype"), "int16", "input.dtype: unknown value 'int16'"),
    (("input", "normalisation", "low"), [0, 0], "input.normalisation: low and high need one number per band (3)"),
    (("input", "normalisation", "high"), "255", "input.normalisation.high: expected a list of numbers"),
    (("architecture", "depth"), 0, "architecture.depth: must be >= 1, got 0"),
    (("architecture", "encoder"), "vgg", "architecture.encoder: unknown value 'vgg'"),
    (("classes",), [], "classes: expected a list of {name, colour}"),
    (("classes",), [{"name": "a", "colour": [0, 0, 0], "id": 1}], "classes[0]: expected {name, colour}"),
    (("export",), {"layout": "nhwc255"}, "export.model_name: missing"),
    (("producer",), "", "producer: expected a non-empty string"),
])
def test_every_field_is_checked_by_its_declaration(params, path, value, said):
    raw = card_json(model_card(params, data_facts(params, RGB_UINT8)))
    target = raw
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(DataError) as err:
        read_card(raw, "model_card.json")
    assert str(err.value).startswith("model_card.json: ") and said in str(err.value) and "\n" not in str(err.value)


def test_settings_may_be_unrecorded_but_not_left_out(params):
    raw = card_json(model_card(params, data_facts(params, RGB_UINT8)))
    for key in ("ground_sample_distance_m", "window", "classes"):
        assert getattr(read_card({**raw, key: None}, "c.json"), key) is None  # null: not recorded
    for key in ("training_run", "architecture", "export", "producer"):  # provenance may be left out
        assert getattr(read_card({k: v for k, v in raw.items() if k != key}, "c.json"), key) is None
    for key in ("ground_sample_distance_m", "window", "subdivisions", "tta", "input_multiple", "classes", "input"):
        with pytest.raises(DataError, match=f"^c.json: {key}: missing$"):
            read_card({k: v for k, v in raw.items() if k != key}, "c.json")


JSON = st.recursive(st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                 max_size=4), max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_any_edit_of_a_card_is_read_or_refused_in_one_line(params, data):
    """Whatever a hand edit puts anywhere in a card (either schema), reading it gives a card or a one-line
    DataError naming the file: never another exception."""
    card = card_json(model_card(params, data_facts(params, RGB_UINT8)))
    raw = copy.deepcopy(data.draw(st.sampled_from([card, SCHEMA_1])))
    target = raw
    while isinstance(target, dict) and target and data.draw(st.booleans()):
        key = data.draw(st.sampled_from(sorted(target)))
        if not isinstance(target[key], dict):
            break
        target = target[key]
    if isinstance(target, dict) and target:
        target[data.draw(st.sampled_from(sorted(target)) | st.text(max_size=6))] = data.draw(JSON)
    try:
        read_card(raw, "model_card.json")
    except DataError as err:
        assert str(err).startswith("model_card.json: ") and "\n" not in str(err)


def test_the_tiles_facts_travel_into_the_card(params):
    """params -> tile manifest -> card: the card says what the tiles were, whatever params say now."""
    facts = data_facts(params, RGB_UINT8)
    written = json.loads(json.dumps(facts_json(facts)))
    assert read_facts(written, "manifest.json") == facts
    other = read_facts({**written, "ground_sample_distance_m": 0.1,
                        "classes": written["classes"][:5]}, "manifest.json")
    card = model_card(params, other)
    assert card.ground_sample_distance_m == 0.1 != params.resize.gsd
    assert card.classes is not None and len(card.classes) == 5 and card.input == facts.input
    with pytest.raises(DataError, match=r"^manifest\.json: data\.ground_sample_distance_m: missing$"):
        read_facts({k: v for k, v in written.items() if k != "ground_sample_distance_m"}, "manifest.json")
