"""The real ISPRS Potsdam release: find the official tiles and bring them into the pipeline."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from aerialseg.datasets.layout import SceneFiles
from aerialseg.io import DataError


def _index_by_name(root: Path) -> dict[str, Path]:
    """Every file below ``root`` by its name (the official names are unique)."""
    found: dict[str, Path] = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            found.setdefault(name, Path(dirpath) / name)
    return found


def collect_tiles(source: Path, destination: Path, tile_ids: list[str]) -> list[str]:
    """Copy (or hard-link) the official files of ``tile_ids`` from an extracted release.

    ``source`` may hold the release's folders (2_Ortho_RGB, 5_Labels_all,
    5_Labels_all_noBoundary) or the files themselves. Raises DataError naming the
    first tile whose image or label is missing.
    """
    if not source.is_dir():
        raise DataError(f"{source}: data.potsdam.path is not a folder; put the extracted ISPRS "
                        "Potsdam archives there (see README)")
    available = _index_by_name(source)
    copied = []
    for tile_id in tile_ids:
        wanted = SceneFiles(destination, tile_id)
        for target in wanted.required() + [wanted.world]:
            origin = available.get(target.name)
            if origin is None:
                if target == wanted.world:
                    continue
                raise DataError(f"{source}: tile {tile_id} has no {target.name}")
            try:
                os.link(origin, target)
            except OSError:
                shutil.copyfile(origin, target)
        copied.append(tile_id)
    return copied
