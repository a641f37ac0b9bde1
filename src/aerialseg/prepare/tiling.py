"""Where tiles go: window positions over a scene and the tiles cut there (pure, no I/O)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from aerialseg.core.errors import DataError


def window_origins(length: int, window: int, stride: int) -> list[int]:
    """Start offsets of windows of ``window`` px every ``stride`` px covering ``length`` px.

    The last window is moved back to end exactly at the border, so no pixel is left out
    and no window needs padding. A scene shorter than the window has no windows.
    """
    if length < window:
        return []
    origins = list(range(0, length - window + 1, stride))
    if origins[-1] != length - window:
        origins.append(length - window)
    return origins


@dataclass(frozen=True)
class Tile:
    """One tile cut from a scene, with where it came from."""

    scene: str
    y: int
    x: int
    image: np.ndarray
    mask: np.ndarray


def cut_tiles(scene: str, image: np.ndarray, mask: np.ndarray, patch: int, stride: int) -> Iterator[Tile]:
    """Yield the tiles of one scene in row-major order (views, not copies)."""
    if image.shape[:2] != mask.shape:
        raise DataError(f"scene {scene}: image {image.shape[:2]} and mask {mask.shape} differ in size")
    h, w = mask.shape
    if h < patch or w < patch:
        raise DataError(f"scene {scene}: {h}x{w} px is smaller than tile.patch_size {patch}")
    for y in window_origins(h, patch, stride):
        for x in window_origins(w, patch, stride):
            yield Tile(scene, y, x, image[y:y + patch, x:x + patch], mask[y:y + patch, x:x + patch])
