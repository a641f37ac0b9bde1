"""Property: any mutation of a valid params.yaml loads or raises ParamsError naming a key; nothing else.

Mutations are what users do by hand: a value of the wrong type or out of range, a removed
key, an unknown or misspelt key, a section replaced by a scalar. The same holds for the
YAML text itself, mutated before parsing.
"""

from __future__ import annotations

import copy

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aerialseg.core.config.params import Params, load_params, parse_params
from aerialseg.core.errors import ParamsError

from conftest import ROOT

BASE = yaml.safe_load((ROOT / "params.yaml").read_text())


def _paths(node, prefix=()):
    """Every key path of the mapping, sections included."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield prefix + (key,)
            yield from _paths(value, prefix + (key,))


PATHS = sorted(_paths(BASE), key=str)
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-2**70, max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
    st.sampled_from(["2_10", "2_13", "auto", "none", "d4", "exponential", "synthetic", "1e9", "0"]),
)
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                      max_leaves=8)


@st.composite
def mutated(draw):
    raw = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(PATHS))
        parent = raw
        for key in path[:-1]:
            parent = parent.get(key) if isinstance(parent, dict) else None
        if not isinstance(parent, dict) or path[-1] not in parent:
            continue
        action = draw(st.sampled_from(["set", "delete", "add", "misspell"]))
        if action == "set":
            parent[path[-1]] = draw(VALUES)
        elif action == "delete":
            del parent[path[-1]]
        elif action == "add":
            parent[draw(st.text(min_size=1, max_size=10))] = draw(VALUES)
        else:
            key = str(path[-1])
            cut = draw(st.integers(0, len(key) - 1))
            parent[key[:cut] + key[cut + 1:] or "x"] = parent.pop(path[-1])
    return raw


def _loads_or_names_a_key(action) -> None:
    try:
        assert isinstance(action(), Params)
    except ParamsError as err:
        message = str(err)
        assert message and "\n" not in message
        assert ": " in message  # "<key or file>: <what is wrong>"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_params_load_or_raise_params_error(raw):
    _loads_or_names_a_key(lambda: parse_params(raw))


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_mutated_yaml_text_loads_or_raises_params_error(tmp_path_factory, data):
    text = (ROOT / "params.yaml").read_text()
    start = data.draw(st.integers(0, len(text) - 1))
    length = data.draw(st.integers(0, 20))
    insert = data.draw(st.text(alphabet=": -[]{}\"'\n#0123456789abc_.", max_size=10))
    path = tmp_path_factory.mktemp("yaml") / "params.yaml"
    path.write_text(text[:start] + insert + text[start + length:])
    _loads_or_names_a_key(lambda: load_params(path))


def test_the_unmutated_params_load():
    assert isinstance(parse_params(copy.deepcopy(BASE)), Params)
