"""Read the tile store written by ``tile_writer``: memory-mapped shards, index and manifest."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from aerialseg.core.errors import DataError
from aerialseg.core.io import read_json, read_npy
from aerialseg.core.model_card import DataFacts, read_facts
from aerialseg.core.names import TILE_INDEX_FILE, TILE_MANIFEST_FILE, shard_files


@dataclass(frozen=True)
class TileStore:
    """Read access to a tile folder written by the tile stage."""

    folder: Path

    @property
    def index(self) -> pd.DataFrame:
        """One row per tile: split, shard, row, scene, y, x and per-class pixel counts."""
        path = Path(self.folder) / TILE_INDEX_FILE
        if not path.is_file():
            raise DataError(f"{path}: file not found; run the tile stage first")
        return pd.read_csv(path, dtype={"scene": str})

    @property
    def manifest(self) -> dict:
        """Patch size, stride and tile counts the store was written with."""
        return read_json(Path(self.folder) / TILE_MANIFEST_FILE)

    @property
    def facts(self) -> DataFacts:
        """What the tiles are (classes, input, ground sample distance), as the tile stage recorded them."""
        path = Path(self.folder) / TILE_MANIFEST_FILE
        manifest = read_json(path)
        if "data" not in manifest:
            raise DataError(f"{path}: records no classes, input or ground sample distance (an earlier tile stage's); "
                            "run the tile stage again")
        return read_facts(manifest["data"], str(path))

    def shards(self, split: str) -> list[tuple[np.ndarray, np.ndarray]]:
        """Memory-mapped (images, masks) pairs of a split, in shard order."""
        pairs: list[tuple[np.ndarray, np.ndarray]] = []
        count = self.count(split)
        shard = 0
        while sum(len(m) for _, m in pairs) < count:
            image_file, mask_file = shard_files(self.folder, split, shard)
            images, masks = read_npy(image_file, mmap=True), read_npy(mask_file, mmap=True)
            if len(images) != len(masks):
                raise DataError(f"{Path(self.folder) / split}: shard {shard} has {len(images)} images "
                                f"but {len(masks)} masks")
            pairs.append((images, masks))
            shard += 1
        return pairs

    def count(self, split: str) -> int:
        """Number of tiles in a split."""
        return int(self.manifest["tiles"].get(split, 0))

    def digest(self) -> str:
        """A digest of every file of the store (index, manifest, shards): what training saw.

        Pixels matter as much as positions: a changed resize gives the same index but other
        tiles, and a training state must not be resumed on them.
        """
        digest = hashlib.sha256()
        folder = Path(self.folder)
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            digest.update(str(path.relative_to(folder)).encode() + b"\0")
            with open(path, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 22), b""):
                    digest.update(block)
        return digest.hexdigest()[:16]
