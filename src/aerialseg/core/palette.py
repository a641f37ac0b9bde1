"""The six ISPRS Potsdam classes, their official colours, and RGB <-> index conversion."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
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


_PACKED_CLASSES = _pack(np.array([CLASS_COLOURS], dtype=np.uint8))[0]
_PACKED_BOUNDARY = int(_pack(np.array([[BOUNDARY_RGB]], dtype=np.uint8))[0, 0])


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


_UNKNOWN = 254  # marks colours outside the palette in the lookup table (never a class index)
_TABLES: dict[bool, np.ndarray] = {}


def _colour_table(allow_boundary: bool) -> np.ndarray:
    """A 2**24-entry table from packed colour to class index (16 MB, built once per process)."""
    if allow_boundary not in _TABLES:
        table = np.full(1 << 24, _UNKNOWN, np.uint8)
        table[_PACKED_CLASSES] = np.arange(NUM_CLASSES, dtype=np.uint8)
        if allow_boundary:
            table[_PACKED_BOUNDARY] = IGNORE_INDEX
        _TABLES[allow_boundary] = table
    return _TABLES[allow_boundary]


def encode_label(rgb: np.ndarray, *, allow_boundary: bool, tolerance: int) -> LabelEncoding:
    """Encode a colour label to class indices, repairing what can be repaired and counting it.

    A colour within ``tolerance`` (largest per-channel difference) of a class colour, or of
    black where boundaries are allowed, is snapped to it: compression and resampling
    leave such near-palette colours in some releases. Colours farther from every class
    become IGNORE_INDEX, so they never count as any class (unlike converters that map
    unknown colours silently to class 0); the caller decides whether their share is
    acceptable.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"mask must be uint8 (H, W, 3), got {rgb.dtype} {rgb.shape}")
    packed = _pack(rgb)
    mask = _colour_table(allow_boundary)[packed]
    known = mask != _UNKNOWN
    if known.all():
        return LabelEncoding(mask, 0, 0, [])
    values, inverse, counts = np.unique(packed[~known], return_inverse=True, return_counts=True)
    references = np.array(list(CLASS_COLOURS) + ([BOUNDARY_RGB] if allow_boundary else []), np.int32)
    reference_codes = np.array(list(range(NUM_CLASSES)) + ([IGNORE_INDEX] if allow_boundary else []), np.uint8)
    colours = _unpack(values).astype(np.int32)
    distance = np.abs(colours[:, None, :] - references[None, :, :]).max(axis=2)
    nearest = distance.argmin(axis=1)
    close = distance[np.arange(len(values)), nearest] <= tolerance
    mask[~known] = np.where(close, reference_codes[nearest], IGNORE_INDEX)[inverse]
    far = [OffPaletteColour((int(colours[i, 0]), int(colours[i, 1]), int(colours[i, 2])), int(counts[i]))
           for i in np.flatnonzero(~close)]
    far.sort(key=lambda colour: -colour.count)
    return LabelEncoding(mask, int(counts[close].sum()), int(counts[~close].sum()), far)


def class_counts(mask: np.ndarray) -> np.ndarray:
    """Pixels of each class (NUM_CLASSES,) followed by ignored pixels, int64.

    Encoded masks hold nothing else. One vectorised comparison per value: several times
    faster than a 256-bin histogram on label maps, whose long runs of one class make each
    bin increment wait for the previous one.
    """
    return np.array([np.count_nonzero(mask == value) for value in (*range(NUM_CLASSES), IGNORE_INDEX)], np.int64)


def index_to_rgb(index: np.ndarray) -> np.ndarray:
    """Decode class indices (H, W) to official colours (H, W, 3) uint8; ignore -> black."""
    table = np.zeros((256, 3), dtype=np.uint8)
    table[:NUM_CLASSES] = np.array(CLASS_COLOURS, dtype=np.uint8)
    table[IGNORE_INDEX] = BOUNDARY_RGB
    rgb: np.ndarray = table[index]
    return rgb
