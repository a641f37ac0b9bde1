"""Write the tile store: each split's tiles as a few ``.npy`` shards, an index and a manifest.

Thousands of small files hash slowly under DVC, so tiles of one split live in a handful of
shards (images ``(N, P, P, bands)`` in the scenes' type, masks ``(N, P, P)`` uint8) plus an index table saying
which scene and position each row came from and which classes it holds. The reader is
``tile_reader``; training imports only that side.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from aerialseg.core.atomic import atomic_path
from aerialseg.core.errors import DataError
from aerialseg.core.io import open_image, read_index_mask, write_json, write_npy
from aerialseg.core.names import TILE_INDEX_FILE, TILE_MANIFEST_FILE, MaskFiles, SceneFiles, shard_files
from aerialseg.core.palette import class_counts
from aerialseg.prepare.tiling import Tile, cut_tiles


def load_scene(images: Path, masks: Path, scene_id: str) -> tuple[np.ndarray, np.ndarray]:
    """A resized scene's image (H, W, bands) and full-label class mask, read into memory."""
    image = np.array(open_image(SceneFiles(images, scene_id).image))
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
        for scene_id, following in zip(scene_ids, [*scene_ids[1:], None], strict=True):
            image, mask = loading.result()
            if following is not None:
                loading = reader.submit(load_scene, images, masks, following)
            yield from cut_tiles(scene_id, image, mask, patch, stride)


def write_split(folder: Path, split: str, tiles: Iterable[Tile], patch: int, shard_size: int, *,
                class_names: Sequence[str]) -> pd.DataFrame:
    """Write the tiles of one split as shards under ``folder/split``; return their index rows, which
    count each tile's pixels per class (by the class table's ``class_names``) and ignored."""
    rows: list[dict] = []
    images: np.ndarray | None = None  # shaped and typed by the first tile's image
    masks = np.empty((shard_size, patch, patch), np.uint8)
    shard, filled = 0, 0

    def flush() -> None:
        nonlocal shard, filled
        if filled and images is not None:
            image_file, mask_file = shard_files(folder, split, shard)
            write_npy(image_file, images[:filled])
            write_npy(mask_file, masks[:filled])
            shard, filled = shard + 1, 0

    for tile in tiles:
        if images is None:
            images = np.empty((shard_size, *tile.image.shape), tile.image.dtype)
        elif tile.image.shape[2:] != images.shape[3:] or tile.image.dtype != images.dtype:
            raise DataError(f"scene {tile.scene}: {tile.image.shape[2]} band(s) of {tile.image.dtype}, but the "
                            f"split's first scene has {images.shape[3]} of {images.dtype}")
        images[filled], masks[filled] = tile.image, tile.mask
        counts = class_counts(tile.mask, len(class_names))
        row = {"split": split, "shard": shard, "row": filled, "scene": tile.scene, "y": tile.y, "x": tile.x}
        row.update({name: int(c) for name, c in zip(class_names, counts[: len(class_names)], strict=True)})
        row["ignore"] = int(counts[-1])
        rows.append(row)
        filled += 1
        if filled == shard_size:
            flush()
    flush()
    return pd.DataFrame(rows)


def write_manifest(folder: Path, index: pd.DataFrame, patch: int, stride: int, *, class_names: Sequence[str],
                   data: dict[str, Any]) -> None:
    """Write the index table and the manifest that readers check before trusting shards; ``data`` is
    what the tiles are (classes, input, ground sample distance), carried on into the model card."""
    with atomic_path(folder / TILE_INDEX_FILE) as tmp:
        index.to_csv(tmp, index=False)
    tiles = index.groupby("split").size().to_dict() if len(index) else {}
    pixels = index.groupby("split")[list(class_names) + ["ignore"]].sum() if len(index) else None
    write_json(folder / TILE_MANIFEST_FILE, {
        "patch_size": patch,
        "stride": stride,
        "data": data,
        "tiles": {k: int(v) for k, v in tiles.items()},
        "class_pixels": {} if pixels is None else {
            split: {k: int(v) for k, v in row.items()} for split, row in pixels.iterrows()
        },
    })
