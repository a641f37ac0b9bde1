"""The ``classes`` section of ``params.yaml``, read into a ``ClassTable`` (``core/classes.py``).

::

    classes:
      table:                       # the model's outputs, in this order
        building: {colour: [0, 0, 255]}                    # display colour: maps, reports, legends
        road: {colour: [255, 255, 255], values: [3]}       # its value(s) in index labels (default: position)
        water: {colour: [0, 0, 200], label_colours: [[0, 0, 255]]}  # its colour(s) in colour labels
        other: {colour: [255, 0, 0], headline: false}      # left out of the headline means
      ignore:                      # label values and colours that no loss or metric counts
        values: [0]
        colours: [[0, 0, 0]]

Every problem is a ``ParamsError`` naming the dotted key.
"""

from __future__ import annotations

import re
from typing import Any

from aerialseg.core.classes import MAX_CLASSES, RGB, ClassTable
from aerialseg.core.config.declarations import Boolean, Section, shown
from aerialseg.core.errors import ParamsError

# a class name becomes metric keys, band descriptions and vector attributes
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")


def _rgb(key: str, value: Any) -> RGB:
    if (not isinstance(value, list) or len(value) != 3
            or not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in value)):
        raise ParamsError(f"{key}: expected [red, green, blue], integers 0..255, got {shown(value)}")
    return int(value[0]), int(value[1]), int(value[2])


def _colours(section: Section, name: str) -> tuple[RGB, ...]:
    value = section.get(name)
    if not isinstance(value, list):
        raise ParamsError(f"{section.key(name)}: expected a list of [red, green, blue], got {shown(value)}")
    return tuple(_rgb(f"{section.key(name)}[{i}]", v) for i, v in enumerate(value))


def _values(section: Section, name: str) -> tuple[int, ...]:
    value = section.get(name)
    if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 65535
                                              for v in value):
        raise ParamsError(f"{section.key(name)}: expected a list of label values 0..65535, got {shown(value)}")
    return tuple(value)


def _unique(kind: str, owners: list[tuple[str, Any]]) -> None:
    """Refuse a label value or colour that two entries claim (``owners``: (key, value) pairs)."""
    seen: dict[Any, str] = {}
    for key, value in owners:
        if value in seen:
            raise ParamsError(f"{key}: {kind} {shown(value)} is also in {seen[value]}; a label {kind} means one class")
        seen[value] = key


def read_class_table(section: Section, name: str) -> ClassTable:
    """The ``classes`` section as a ``ClassTable`` (a ``Custom`` reader for ``core/config/params.py``)."""
    classes = section.section(name)
    table = classes.section("table")
    names = [str(n) for n in table.raw]
    if not 2 <= len(names) <= MAX_CLASSES:
        raise ParamsError(f"{table.key('')[:-1]}: give 2 to {MAX_CLASSES} classes, got {len(names)}")
    colours, values, label_colours, headline = [], [], [], []
    for position, class_name in enumerate(names):
        if not _NAME.fullmatch(class_name):
            named = class_name if re.fullmatch(r"[\w.-]+", class_name) else shown(class_name)
            raise ParamsError(f"{table.key(named)}: a class name is letters, digits and _, starting with a "
                              "letter (it names metric keys and map attributes)")
        entry = table.section(class_name)
        colours.append(_rgb(entry.key("colour"), entry.get("colour")))
        values.append(_values(entry, "values") if "values" in entry.raw else (position,))
        label_colours.append(_colours(entry, "label_colours") if "label_colours" in entry.raw else (colours[-1],))
        headline.append(bool(Boolean().read(entry, "headline")) if "headline" in entry.raw else True)
        entry.close()
    table.close()
    ignore = classes.section("ignore")
    ignore_values, ignore_colours = _values(ignore, "values"), _colours(ignore, "colours")
    ignore.close()
    classes.close()
    _unique("value", [(table.key(n) + ".values", v) for n, vs in zip(names, values, strict=True) for v in vs]
            + [(ignore.key("values"), v) for v in ignore_values])
    _unique("colour", [(table.key(n) + ".label_colours", c) for n, cs in zip(names, label_colours, strict=True)
                       for c in cs] + [(ignore.key("colours"), c) for c in ignore_colours])
    if not any(headline):
        raise ParamsError(f"{table.key('')[:-1]}: every class has headline: false; the headline means need one")
    return ClassTable(tuple(names), tuple(colours), tuple(values), tuple(label_colours), tuple(headline),
                      ignore_values, ignore_colours)
