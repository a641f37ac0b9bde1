"""The two duck types every prediction path passes around, named: a model that predicts batches,
and an image read by rows.

A Keras model and ``OnnxSegmenter`` are both a ``BatchModel``; a GDAL raster
(``orthophoto.Orthophoto``) and a ``.npy`` array (``mapping.ArrayImage``) are both a
``RowImage``. Types only: nothing here runs.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from aerialseg.core.geo.geoio import Georeference


class BatchModel(Protocol):
    """Maps a float32 batch (N, h, w, bands) of 0..255 pixels to class probabilities (N, h, w, classes)."""

    @property
    def output_shape(self) -> tuple[Any, ...]: ...

    def predict_on_batch(self, batch: np.ndarray) -> Any: ...


class RowImage(Protocol):
    """An image seen on a working grid (its own, or resampled to the model's resolution), read by rows."""

    native: Georeference
    grid: Georeference

    @property
    def shape(self) -> tuple[int, int]: ...

    def resample_to(self, width: int, height: int) -> None: ...

    def read_rows(self, rows: np.ndarray) -> np.ndarray: ...

    def footprint(self, grid: Georeference | None = None) -> np.ndarray: ...

    def close(self) -> None: ...
