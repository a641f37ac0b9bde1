"""Cut scenes into training tiles and store them as a few sharded arrays.

Thousands of small files hash slowly under DVC, so tiles of one split live in a handful of
``.npy`` shards (images ``(N, P, P, 3)`` uint8, masks ``(N, P, P)`` uint8) plus an index
table saying which scene and position each row came from and which classes it holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from concurrent.futures import ThreadPoolExecutor
from typing import Iterable, Iterator, Sequence

import numpy as np
import pandas as pd

from aerialseg.datasets.layout import MaskFiles, SceneFiles
from aerialseg.io import (DataError, atomic_path, open_rgb, read_index_mask, read_json, read_npy, write_json,
                          write_npy)
from aerialseg.palette import CLASS_NAMES, class_counts

INDEX_FILE = "index.csv"
MANIFEST_FILE = "manifest.json"


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


def load_scene(images: Path, masks: Path, scene_id: str) -> tuple[np.ndarray, np.ndarray]:
    """A resized scene's RGB image and full-label class mask, read into memory."""
    image = np.array(open_rgb(SceneFiles(images, scene_id).image))
    return image, read_index_mask(MaskFiles(masks, scene_id).full)


def scene_tiles(scene_ids: Sequence[str], images: Path, masks: Path, patch: int, stride: int) -> Iterator[Tile]:
    """The tiles of several scenes in order, reading each next scene while this one is cut.

    Decoding a mask and paging in an image take as long as cutting and storing a scene's
    tiles; a reader thread overlaps the two (both release the GIL). At most two scenes
    are in memory.
    """
    if not scene_ids:
        return
    with ThreadPoolExecutor(max_workers=1) as reader:
        loading = reader.submit(load_scene, images, masks, scene_ids[0])
        for scene_id, following in zip(scene_ids, [*scene_ids[1:], None]):
            image, mask = loading.result()
            if following is not None:
                loading = reader.submit(load_scene, images, masks, following)
            yield from cut_tiles(scene_id, image, mask, patch, stride)


def write_split(folder: Path, split: str, tiles: Iterable[Tile], patch: int, shard_size: int) -> pd.DataFrame:
    """Write the tiles of one split as shards under ``folder/split``; return their index rows."""
    rows: list[dict] = []
    images = np.empty((shard_size, patch, patch, 3), np.uint8)
    masks = np.empty((shard_size, patch, patch), np.uint8)
    shard, filled = 0, 0

    def flush() -> None:
        nonlocal shard, filled
        if filled:
            write_npy(folder / split / f"images_{shard:03d}.npy", images[:filled])
            write_npy(folder / split / f"masks_{shard:03d}.npy", masks[:filled])
            shard, filled = shard + 1, 0

    for tile in tiles:
        images[filled], masks[filled] = tile.image, tile.mask
        counts = class_counts(tile.mask)
        row = {"split": split, "shard": shard, "row": filled, "scene": tile.scene, "y": tile.y, "x": tile.x}
        row.update({name: int(c) for name, c in zip(CLASS_NAMES, counts)})
        row["ignore"] = int(counts[-1])
        rows.append(row)
        filled += 1
        if filled == shard_size:
            flush()
    flush()
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class TileStore:
    """Read access to a tile folder written by the tile stage."""

    folder: Path

    @property
    def index(self) -> pd.DataFrame:
        """One row per tile: split, shard, row, scene, y, x and per-class pixel counts."""
        path = self.folder / INDEX_FILE
        if not path.is_file():
            raise DataError(f"{path}: file not found; run the tile stage first")
        return pd.read_csv(path, dtype={"scene": str})

    @property
    def manifest(self) -> dict:
        """Patch size, stride and tile counts the store was written with."""
        return read_json(self.folder / MANIFEST_FILE)

    def shards(self, split: str) -> list[tuple[np.ndarray, np.ndarray]]:
        """Memory-mapped (images, masks) pairs of a split, in shard order."""
        pairs = []
        count = int(self.manifest["tiles"].get(split, 0))
        shard = 0
        while sum(len(m) for _, m in pairs) < count:
            images = read_npy(self.folder / split / f"images_{shard:03d}.npy", mmap=True)
            masks = read_npy(self.folder / split / f"masks_{shard:03d}.npy", mmap=True)
            if len(images) != len(masks):
                raise DataError(f"{self.folder / split}: shard {shard} has {len(images)} images "
                                f"but {len(masks)} masks")
            pairs.append((images, masks))
            shard += 1
        return pairs

    def count(self, split: str) -> int:
        """Number of tiles in a split."""
        return int(self.manifest["tiles"].get(split, 0))


def write_manifest(folder: Path, index: pd.DataFrame, patch: int, stride: int) -> None:
    """Write the index table and the manifest that readers check before trusting shards."""
    with atomic_path(folder / INDEX_FILE) as tmp:
        index.to_csv(tmp, index=False)
    tiles = index.groupby("split").size().to_dict() if len(index) else {}
    pixels = index.groupby("split")[list(CLASS_NAMES) + ["ignore"]].sum() if len(index) else None
    write_json(folder / MANIFEST_FILE, {
        "patch_size": patch,
        "stride": stride,
        "tiles": {k: int(v) for k, v in tiles.items()},
        "class_pixels": {} if pixels is None else {
            split: {k: int(v) for k, v in row.items()} for split, row in pixels.iterrows()
        },
    })
