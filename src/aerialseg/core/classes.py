"""The class table: what a model predicts, how label files spell each class, how maps show it.

A ``ClassTable`` is data, read once from ``params.yaml`` (section ``classes``, see
``core/config/class_params.py``) and carried from there into encoding, losses, metrics, reports, the
model card and, through the card, into every map ``aerialseg predict`` writes. Inside the pipeline
a class is its position ``0 .. N-1`` in the table and ``IGNORE_INDEX`` marks the pixels no loss or
metric counts. Label files may spell a class otherwise: ``values`` are the numbers an index label
uses for it, ``label_colours`` the colours a colour label uses (by default its position and its
display colour). Values and colours of the ignore entry (the eroded boundaries' black, a "no data"
0) become ``IGNORE_INDEX``. No module holds a class list of its own.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass
from typing import Any

IGNORE_INDEX = 255
"""Class index of pixels that no loss or metric may count (eroded boundaries, undeclared colours)."""

MAX_CLASSES = 250  # class indices stay clear of the encoder's marker (254) and IGNORE_INDEX in uint8 masks

RGB = tuple[int, int, int]


@dataclass(frozen=True)
class ClassTable:
    """Classes in model-output order: names, display colours, how label files spell them, and which
    count in the headline means; plus the label values and colours that mean "ignore"."""

    names: tuple[str, ...]
    colours: tuple[RGB, ...]
    values: tuple[tuple[int, ...], ...] = ()  # per class: its values in index labels (default: its position)
    label_colours: tuple[tuple[RGB, ...], ...] = ()  # per class: its colours in colour labels (default: colour)
    headline: tuple[bool, ...] = ()  # per class: whether the headline means count it (default: all)
    ignore_values: tuple[int, ...] = ()
    ignore_colours: tuple[RGB, ...] = ()

    def __post_init__(self) -> None:
        count = len(self.names)
        if not self.values:
            object.__setattr__(self, "values", tuple((i,) for i in range(count)))
        if not self.label_colours:
            object.__setattr__(self, "label_colours", tuple((c,) for c in self.colours))
        if not self.headline:
            object.__setattr__(self, "headline", (True,) * count)
        if not (len(self.colours) == len(self.values) == len(self.label_colours) == len(self.headline) == count):
            raise ValueError("a class table needs one colour, value list, colour list and headline flag per class")

    def __len__(self) -> int:
        return len(self.names)

    @property
    def headline_classes(self) -> tuple[int, ...]:
        """Positions of the classes the headline means average over."""
        return tuple(i for i, counted in enumerate(self.headline) if counted)

    def legend(self) -> dict[str, Any]:
        """Names and display colours as JSON lists: what every output shows (a prediction cache keys on it)."""
        return {"class_names": list(self.names), "class_colours": [list(c) for c in self.colours]}

    def displayed(self) -> ClassTable:
        """The table without how label files spell the classes: what a model card records."""
        return ClassTable(self.names, self.colours)


def numbered_classes(count: int) -> ClassTable:
    """``count`` classes named ``class_0`` .. in distinct colours (hues a golden angle apart): the
    table of a model whose card names none."""
    colours = []
    for i in range(count):
        r, g, b = colorsys.hsv_to_rgb((i * 0.618033988749895) % 1.0, 0.75, 0.95)
        colours.append((round(r * 255), round(g * 255), round(b * 255)))
    return ClassTable(tuple(f"class_{i}" for i in range(count)), tuple(colours))
