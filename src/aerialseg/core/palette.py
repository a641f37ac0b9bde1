"""Colour labels <-> class indices through the class table (``core/classes.py``)."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from aerialseg.core.classes import IGNORE_INDEX, RGB, ClassTable

IGNORE_RGB = (0, 0, 0)
"""How previews (reports, PNG maps) show ignored pixels."""


@dataclass(frozen=True)
class OffPaletteColour:
    """One colour found in a mask that the palette does not know, and how often."""

    rgb: tuple[int, int, int]
    count: int


def _pack(rgb: np.ndarray) -> np.ndarray:
    """One uint32 per pixel holding its (R, G, B): R + G * 2**8 + B * 2**16.

    Padding to RGBA and reading each pixel's four bytes as one little-endian integer is a
    single vectorised copy, several times faster than shifting three strided channels.
    """
    if rgb.size == 0:
        return np.zeros(rgb.shape[:-1], np.uint32)
    rgba = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2RGBA)
    packed = rgba.view("<u4")[..., 0]
    packed &= 0xFFFFFF
    return packed


def _unpack(packed: np.ndarray) -> np.ndarray:
    """(N,) packed colours back to (N, 3) R, G, B."""
    return np.stack([packed & 255, (packed >> 8) & 255, (packed >> 16) & 255], axis=1)


@dataclass(frozen=True)
class LabelEncoding:
    """A label encoded to class indices, with what had to be repaired to get there."""

    mask: np.ndarray
    snapped: int  # pixels whose near-palette colour was snapped to the nearest class colour
    off_palette: int  # pixels too far from every class colour, set to IGNORE_INDEX
    off_colours: list[OffPaletteColour]  # those colours, most frequent first

    @property
    def off_palette_share(self) -> float:
        """Fraction of the label's pixels that are off-palette."""
        return self.off_palette / max(self.mask.size, 1)


_UNKNOWN = 254  # marks colours outside the table in the lookup table (never a class index)
_TABLES: dict[tuple[tuple[tuple[RGB, ...], ...], tuple[RGB, ...]], np.ndarray] = {}


def _references(classes: ClassTable) -> tuple[list[RGB], list[int]]:
    """Every colour a colour label may use, and the index each one encodes to (ignore colours: IGNORE_INDEX)."""
    colours = [c for cs in classes.label_colours for c in cs] + list(classes.ignore_colours)
    codes = [i for i, cs in enumerate(classes.label_colours) for _ in cs] + [IGNORE_INDEX] * len(classes.ignore_colours)
    return colours, codes


def _colour_table(classes: ClassTable) -> np.ndarray:
    """A 2**24-entry table from packed colour to class index (16 MB, built once per process and table)."""
    key = (classes.label_colours, classes.ignore_colours)
    if key not in _TABLES:
        table = np.full(1 << 24, _UNKNOWN, np.uint8)
        colours, codes = _references(classes)
        table[_pack(np.array([colours], dtype=np.uint8))[0]] = np.array(codes, np.uint8)
        _TABLES[key] = table
    return _TABLES[key]


def encode_label(rgb: np.ndarray, classes: ClassTable, *, tolerance: int) -> LabelEncoding:
    """Encode a colour label to class indices through the table's label colours, repairing what
    can be repaired and counting it.

    A colour within ``tolerance`` (largest per-channel difference) of a class's or the ignore
    entry's colour is snapped to it: compression and resampling leave such near-palette colours
    in some releases. Colours farther from every one become IGNORE_INDEX, so they never count as
    any class (unlike converters that map unknown colours silently to class 0); the caller
    decides whether their share is acceptable.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"mask must be uint8 (H, W, 3), got {rgb.dtype} {rgb.shape}")
    packed = _pack(rgb)
    mask = _colour_table(classes)[packed]
    known = mask != _UNKNOWN
    if known.all():
        return LabelEncoding(mask, 0, 0, [])
    values, inverse, counts = np.unique(packed[~known], return_inverse=True, return_counts=True)
    reference_colours, reference_codes = _references(classes)
    references = np.array(reference_colours, np.int32)
    codes = np.array(reference_codes, np.uint8)
    colours = _unpack(values).astype(np.int32)
    distance = np.abs(colours[:, None, :] - references[None, :, :]).max(axis=2)
    nearest = distance.argmin(axis=1)
    close = distance[np.arange(len(values)), nearest] <= tolerance
    mask[~known] = np.where(close, codes[nearest], IGNORE_INDEX)[inverse]
    far = [OffPaletteColour((int(colours[i, 0]), int(colours[i, 1]), int(colours[i, 2])), int(counts[i]))
           for i in np.flatnonzero(~close)]
    far.sort(key=lambda colour: -colour.count)
    return LabelEncoding(mask, int(counts[close].sum()), int(counts[~close].sum()), far)


def class_counts(mask: np.ndarray, num_classes: int) -> np.ndarray:
    """Pixels of each class (num_classes,) followed by ignored pixels, int64.

    Encoded masks hold nothing else. One vectorised comparison per value: several times
    faster than a 256-bin histogram on label maps, whose long runs of one class make each
    bin increment wait for the previous one.
    """
    return np.array([np.count_nonzero(mask == value) for value in (*range(num_classes), IGNORE_INDEX)], np.int64)


def index_to_rgb(index: np.ndarray, colours: tuple[RGB, ...], ignore: RGB = IGNORE_RGB) -> np.ndarray:
    """Decode class indices (H, W) to ``colours`` (H, W, 3) uint8; ignore -> ``ignore`` (black)."""
    table = np.zeros((256, 3), dtype=np.uint8)
    table[: len(colours)] = np.array(colours, dtype=np.uint8)
    table[IGNORE_INDEX] = ignore
    rgb: np.ndarray = table[index]
    return rgb


def encode_index_label(label: np.ndarray, classes: ClassTable) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Encode an index label (H, W) uint8/uint16 to class indices through the table's values (and
    its ignore values -> IGNORE_INDEX); also every value it does not declare, with its pixel count,
    most frequent first (those pixels become IGNORE_INDEX: the caller refuses the label)."""
    lookup = np.full(1 << (8 * label.dtype.itemsize), _UNKNOWN, np.uint8)
    for index, declared in enumerate(classes.values):
        lookup[[v for v in declared if v < lookup.size]] = index
    lookup[[v for v in classes.ignore_values if v < lookup.size]] = IGNORE_INDEX
    mask = lookup[label]
    unknown = mask == _UNKNOWN
    if not unknown.any():
        return mask, []
    values, counts = np.unique(label[unknown], return_counts=True)
    mask[unknown] = IGNORE_INDEX
    order = np.argsort(-counts, kind="stable")
    return mask, [(int(values[i]), int(counts[i])) for i in order]
