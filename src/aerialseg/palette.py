"""The six ISPRS Potsdam classes, their official colours, and RGB <-> index conversion."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

IGNORE_INDEX = 255
"""Class index for pixels that no loss or metric may count (eroded boundaries)."""

BOUNDARY_RGB = (0, 0, 0)
"""Colour of the eroded boundary in the official ``*_label_noBoundary.tif`` files."""

CLASS_NAMES: tuple[str, ...] = (
    "impervious",
    "building",
    "low_vegetation",
    "tree",
    "car",
    "clutter",
)
CLASS_COLOURS: tuple[tuple[int, int, int], ...] = (
    (255, 255, 255),
    (0, 0, 255),
    (0, 255, 255),
    (0, 255, 0),
    (255, 255, 0),
    (255, 0, 0),
)
NUM_CLASSES = len(CLASS_NAMES)


class OffPaletteError(ValueError):
    """A mask holds colours that are neither a class colour nor (if allowed) the boundary."""


@dataclass(frozen=True)
class OffPaletteColour:
    """One colour found in a mask that the palette does not know, and how often."""

    rgb: tuple[int, int, int]
    count: int


def _pack(rgb: np.ndarray) -> np.ndarray:
    """Pack the last axis (R, G, B) of a uint8 array into one int32 per pixel."""
    rgb = rgb.astype(np.int32, copy=False)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


_PACKED_CLASSES = _pack(np.array(CLASS_COLOURS, dtype=np.uint8))
_PACKED_BOUNDARY = int(_pack(np.array(BOUNDARY_RGB, dtype=np.uint8)))


def colour_lookup(allow_boundary: bool) -> dict[int, int]:
    """Packed colour -> class index; the boundary colour maps to IGNORE_INDEX if allowed."""
    table = {int(p): i for i, p in enumerate(_PACKED_CLASSES)}
    if allow_boundary:
        table[_PACKED_BOUNDARY] = IGNORE_INDEX
    return table


def find_off_palette(rgb: np.ndarray, allow_boundary: bool) -> list[OffPaletteColour]:
    """List the colours of ``rgb`` that are not class colours, most frequent first.

    Used to report exactly what is wrong with a mask instead of silently mapping unknown
    colours to some class (the bug of several public converters).
    """
    packed = _pack(rgb)
    values, counts = np.unique(packed, return_counts=True)
    known = set(colour_lookup(allow_boundary))
    bad = [(int(v), int(c)) for v, c in zip(values, counts) if int(v) not in known]
    bad.sort(key=lambda vc: -vc[1])
    return [OffPaletteColour(((v >> 16) & 255, (v >> 8) & 255, v & 255), c) for v, c in bad]


def rgb_to_index(rgb: np.ndarray, *, allow_boundary: bool = False) -> np.ndarray:
    """Encode an official-colour mask (H, W, 3) uint8 RGB as class indices (H, W) uint8.

    Black becomes IGNORE_INDEX when ``allow_boundary`` (the eroded-boundary labels);
    any other unknown colour raises OffPaletteError naming the colours and pixel counts.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"mask must be uint8 (H, W, 3), got {rgb.dtype} {rgb.shape}")
    packed = _pack(rgb)
    lookup = colour_lookup(allow_boundary)
    keys = np.array(sorted(lookup), dtype=np.int32)
    codes = np.array([lookup[k] for k in keys], dtype=np.uint8)
    pos = np.searchsorted(keys, packed)
    pos_clipped = np.minimum(pos, len(keys) - 1)
    known = keys[pos_clipped] == packed
    if not known.all():
        bad = find_off_palette(rgb, allow_boundary)
        listed = ", ".join(f"rgb{c.rgb} x{c.count}" for c in bad[:5])
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        raise OffPaletteError(
            f"{int((~known).sum())} pixels have colours outside the ISPRS palette: {listed}{more}"
        )
    return codes[pos_clipped]


def index_to_rgb(index: np.ndarray) -> np.ndarray:
    """Decode class indices (H, W) to official colours (H, W, 3) uint8; ignore -> black."""
    table = np.zeros((256, 3), dtype=np.uint8)
    table[:NUM_CLASSES] = np.array(CLASS_COLOURS, dtype=np.uint8)
    table[IGNORE_INDEX] = BOUNDARY_RGB
    return table[index]
