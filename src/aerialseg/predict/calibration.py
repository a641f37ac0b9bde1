"""The windows that calibrate an int8 model: a seeded sample of training tiles, or of images.

Static quantisation fixes every activation's int8 range once, from what the model computes on
sample inputs, so the sample has to look like what the model will see: tiles of the scenes it
was trained on (the tile stage's store, ``data/tiles``), or, for a model trained elsewhere,
windows cut at seeded positions from a few of the user's own images. Validation and test tiles
are never used: calibrating on them would let the test scenes tune the model that is scored on
them. The same seed picks the same windows, so an export is reproducible.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from aerialseg.core.errors import DataError, one_line_reason
from aerialseg.core.geo.orthophoto import Orthophoto
from aerialseg.core.input_spec import RGB_UINT8, InputSpec
from aerialseg.core.io import read_npy
from aerialseg.core.names import TILE_INDEX_FILE, TILE_MANIFEST_FILE, shard_files

CALIBRATION_SPLIT = "train"


def is_tile_store(path: Path) -> bool:
    """Whether ``path`` is a folder written by the tile stage."""
    return (Path(path) / TILE_MANIFEST_FILE).is_file() and (Path(path) / TILE_INDEX_FILE).is_file()


def tile_store_windows(folder: Path, count: int, seed: int, window: int | None) -> np.ndarray:
    """Up to ``count`` training tiles picked by ``seed``, as (N, side, side, bands) float32 band values.

    With a fixed ``window`` (a model of fixed input size) each tile is cropped to it at a
    seeded offset; a tile smaller than the window is one error line.
    """
    index_path = Path(folder) / TILE_INDEX_FILE
    try:
        index = pd.read_csv(index_path, dtype={"scene": str})
        rows = index.loc[index["split"] == CALIBRATION_SPLIT, ["shard", "row"]].to_numpy()
    except (OSError, KeyError, ValueError, pd.errors.ParserError) as err:
        raise DataError(f"{index_path}: not a tile index ({err})".replace("\n", " ")) from None
    if not len(rows):
        raise DataError(f"{folder}: no {CALIBRATION_SPLIT} tiles to calibrate with")
    rng = np.random.default_rng(seed)
    picked = rows[np.sort(rng.choice(len(rows), size=min(count, len(rows)), replace=False))]
    tiles: list[np.ndarray] = []
    for shard in np.unique(picked[:, 0]):
        images = read_npy(shard_files(folder, CALIBRATION_SPLIT, int(shard))[0], mmap=True)
        tiles.extend(np.asarray(images[int(row)]) for row in picked[picked[:, 0] == shard, 1])
    batch = np.stack(tiles)
    if window is not None:
        batch = _crop(batch, window, rng, str(folder))
    return batch.astype(np.float32)


def image_windows(paths: Sequence[Path], count: int, seed: int, window: int,
                  inputs: InputSpec = RGB_UINT8) -> np.ndarray:
    """``count`` windows of ``window`` px at seeded positions of the images (spread over them in
    turn), as (N, window, window, bands) float32 band values; read by windows, never whole. Each image
    is opened as prediction opens it (``Orthophoto``: the model's band count and type, ``inputs``), so
    a model is calibrated only on what it may predict."""
    from rasterio.errors import RasterioError
    from rasterio.windows import Window

    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        path = Path(paths[i % len(paths)])
        with Orthophoto(path, band_names=inputs.bands, dtype=inputs.dtype) as image:
            source = image.dataset
            if source.width < window or source.height < window:
                raise DataError(f"{path}: calibration needs at least {window}x{window} px, it has "
                                f"{source.width}x{source.height} px")
            x, y = (int(rng.integers(0, side - window + 1)) for side in (source.width, source.height))
            try:
                pixels = source.read(image.bands, window=Window(x, y, window, window))
            except RasterioError as err:
                raise DataError(f"{path}: not a readable image ({one_line_reason(err)})") from None
        out.append(np.moveaxis(pixels, 0, -1))
    return np.stack(out).astype(np.float32)


def calibration_windows(sources: Sequence[Path], count: int, seed: int, window: int, *,
                        fixed_window: bool, inputs: InputSpec | None = None) -> np.ndarray:
    """The calibration sample from a tile store (one folder) or from images (any number of files)."""
    if len(sources) == 1 and Path(sources[0]).is_dir():
        if not is_tile_store(sources[0]):
            raise DataError(f"{sources[0]}: not a tile store (no {TILE_MANIFEST_FILE} and {TILE_INDEX_FILE}); "
                            "give data/tiles or image files")
        return tile_store_windows(sources[0], count, seed, window if fixed_window else None)
    missing = [path for path in sources if not Path(path).is_file()]
    if missing:
        raise DataError(f"{missing[0]}: calibration image not found")
    return image_windows(sources, count, seed, window, inputs or RGB_UINT8)


def _crop(batch: np.ndarray, window: int, rng: np.random.Generator, source: str) -> np.ndarray:
    side = batch.shape[1]
    if side < window:
        raise DataError(f"{source}: its {side} px tiles are smaller than the model's fixed {window} px window; "
                        "calibrate with image files instead")
    offsets = rng.integers(0, side - window + 1, size=(len(batch), 2))
    return np.stack([tile[y:y + window, x:x + window] for tile, (y, x) in zip(batch, offsets, strict=True)])
