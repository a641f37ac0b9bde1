"""Smooth-blended tiled prediction of images of any size, streamed by rows of windows.

The semantics are those of Vooban's "smoothly blend image patches": reflect padding of
``window * (1 - 1/subdivisions)``, windows every ``window / subdivisions`` pixels weighted
by a squared-spline window, averaged over the 8 rotations and mirrors of the image (D4).
Two things differ on purpose: the sum is divided by the accumulated window weight, so
probabilities sum to one everywhere and borders are not attenuated; and the image is
never transformed as a whole. Transforming the image and tiling it with a grid anchored
at its corner is the same as tiling the original with a grid anchored at the matching
corner and transforming each window, so each window is read, transformed, predicted,
transformed back and added to an accumulator band that only spans the rows still
receiving windows. Finished rows leave as soon as no later window can touch them, so
memory does not grow with the image's height.

Plain tiled prediction (no overlap, no test-time augmentation) is the same code path
with ``subdivisions=1`` and ``tta="none"``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from aerialseg.core.protocols import BatchModel

PredictFn = Callable[[np.ndarray], np.ndarray]
RowReader = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Transform:
    """A D4 element as ``transpose(flip(window))``: flips of rows/columns, then transpose."""

    flip_rows: bool
    flip_cols: bool
    transpose: bool

    def forward(self, patch: np.ndarray) -> np.ndarray:
        """Map a window (..., H, W, C) of the image to what the model sees."""
        if self.flip_rows:
            patch = patch[..., ::-1, :, :]
        if self.flip_cols:
            patch = patch[..., :, ::-1, :]
        if self.transpose:
            patch = np.swapaxes(patch, -3, -2)
        return patch

    def inverse(self, patch: np.ndarray) -> np.ndarray:
        """Map the model's output for a transformed window back to image orientation."""
        if self.transpose:
            patch = np.swapaxes(patch, -3, -2)
        if self.flip_cols:
            patch = patch[..., :, ::-1, :]
        if self.flip_rows:
            patch = patch[..., ::-1, :, :]
        return patch


def transforms(tta: str) -> list[Transform]:
    """The test-time augmentations: all 8 of D4, the 4 flips (incl. identity), or identity."""
    if tta == "d4":
        return [Transform(r, c, t) for t in (False, True) for r in (False, True) for c in (False, True)]
    if tta == "flips":
        return [Transform(r, c, False) for r in (False, True) for c in (False, True)]
    if tta == "none":
        return [Transform(False, False, False)]
    raise ValueError(f"tta must be one of d4, flips, none; got {tta!r}")


def spline_window_1d(window: int, power: int = 2) -> np.ndarray:
    """The squared-spline window (float64, mean 1) that makes overlapping windows blend.

    Built on the discrete triangular window: ``(2t)^p / 2`` in the outer quarters and
    ``1 - (2(1 - t))^p / 2`` in the middle.
    """
    k = np.arange(window)
    distance = np.minimum(k, window - 1 - k).astype(np.float64)
    triangle = (2 * distance + 1) / window if window % 2 == 0 else 2 * (distance + 1) / (window + 1)
    quarter = window // 4
    outer = (k < quarter) | (k >= window - quarter) if quarter else np.ones(window, bool)
    values = np.where(outer, (2 * triangle) ** power / 2, 1 - (2 * (1 - triangle)) ** power / 2)
    return values / values.mean()


@dataclass(frozen=True)
class Geometry:
    """Where the windows go on one axis of the padded image."""

    length: int
    pad_before: int
    pad_after: int
    window: int
    step: int

    @property
    def padded(self) -> int:
        return self.length + self.pad_before + self.pad_after

    def origins(self, from_end: bool) -> np.ndarray:
        """Window starts of a grid anchored at the start of the axis, or at its end."""
        starts = np.arange(0, self.padded - self.window + 1, self.step)
        return self.padded - self.window - starts[::-1] if from_end else starts

    def source_index(self) -> np.ndarray:
        """For each padded position, the original pixel it shows (reflect padding)."""
        return np.pad(np.arange(self.length), (self.pad_before, self.pad_after), mode="reflect")


def axis_geometry(length: int, window: int, subdivisions: int) -> Geometry:
    """Padding and step on one axis, as the reference defines them.

    With one subdivision there is no overlap: the end is padded up to a whole number of
    windows. An axis so short that no window fits is padded at the end until one does.
    """
    if subdivisions < 1:
        raise ValueError(f"subdivisions must be >= 1, got {subdivisions}")
    step = window // subdivisions
    if step < 1:
        raise ValueError(f"window {window} is too small for {subdivisions} subdivisions")
    pad = int(round(window * (1 - 1 / subdivisions)))
    pad_after = pad
    if subdivisions == 1:
        pad_after = -length % window
    if length + pad + pad_after < window:
        pad_after = window - length - pad
    return Geometry(length, pad, pad_after, window, step)


def as_predict_fn(model_or_fn: BatchModel | PredictFn) -> PredictFn:
    """Accept a Keras model or any callable mapping (N, w, w, C) to (N, w, w, classes)."""
    if hasattr(model_or_fn, "predict_on_batch"):  # a Keras model is callable too, but returns tensors
        model = model_or_fn
        return lambda batch: np.asarray(model.predict_on_batch(batch))
    if not callable(model_or_fn):
        raise TypeError("predict_fn must be a Keras model or a callable")
    return model_or_fn


def _windows_by_row(rows_geo: Geometry, cols_geo: Geometry, tta: str) -> dict[int, list[tuple[Transform, np.ndarray]]]:
    """Every window as (variant, column origins) grouped by its row origin, in padded coordinates."""
    by_row: dict[int, list[tuple[Transform, np.ndarray]]] = {}
    for variant in transforms(tta):
        # a transpose swaps which padded axis the transformed image's rows run along, but
        # the grid anchor on each padded axis depends only on whether that axis is flipped
        row_origins = rows_geo.origins(from_end=variant.flip_rows)
        col_origins = cols_geo.origins(from_end=variant.flip_cols)
        for r in row_origins:
            by_row.setdefault(int(r), []).append((variant, col_origins))
    return dict(sorted(by_row.items()))


class _Band:
    """The weighted sums of the padded rows that windows may still reach, ``window`` rows tall."""

    def __init__(self, rows_geo: Geometry, cols_geo: Geometry, num_classes: int) -> None:
        window = rows_geo.window
        self.top = 0
        self.sums = np.zeros((window, cols_geo.padded, num_classes), np.float32)
        self.weights = np.zeros((window, cols_geo.padded, 1), np.float32)
        self.out_top, self.out_bottom = rows_geo.pad_before, rows_geo.pad_before + rows_geo.length
        self.out_cols = slice(cols_geo.pad_before, cols_geo.pad_before + cols_geo.length)

    def add(self, column: int, probabilities: np.ndarray, weights: np.ndarray) -> None:
        """Add one window's weighted probabilities at ``column`` of the band's top row."""
        width = probabilities.shape[1]
        self.sums[:, column:column + width] += probabilities * weights
        self.weights[:, column:column + width] += weights

    def release(self, upto: int) -> Iterator[tuple[int, np.ndarray]]:
        """Emit the finished padded rows [top, upto) cropped to the image, then drop them."""
        lo, hi = max(self.top, self.out_top), min(upto, self.out_bottom)
        if hi > lo:
            part = self.sums[lo - self.top: hi - self.top, self.out_cols]
            weight = self.weights[lo - self.top: hi - self.top, self.out_cols]
            yield lo - self.out_top, part / np.maximum(weight, np.float32(1e-12))
        shift = upto - self.top
        if shift >= len(self.sums):
            self.sums.fill(0)
            self.weights.fill(0)
        elif shift > 0:
            for array in (self.sums, self.weights):
                array[:-shift] = array[shift:]
                array[-shift:] = 0
        self.top = upto


def blend_rows(
    read_rows: RowReader,
    shape: tuple[int, int],
    predict_fn: BatchModel | PredictFn,
    *,
    window: int,
    num_classes: int,
    subdivisions: int = 2,
    tta: str = "d4",
    batch_size: int = 16,
    on_batch: Callable[[int], None] | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(first_row, probabilities)`` bands of the blended prediction, top to bottom.

    ``read_rows(rows)`` returns the image rows with those indices, (len(rows), W, C), so
    the image can be a memory map or a windowed reader. Each band is float32
    (n, W, num_classes) and final: it can be written out and forgotten. ``on_batch`` is
    called with the number of windows after every model call (for progress bars).
    """
    rows_geo = axis_geometry(shape[0], window, subdivisions)
    cols_geo = axis_geometry(shape[1], window, subdivisions)
    col_source, row_source = cols_geo.source_index(), rows_geo.source_index()
    weights_1d = spline_window_1d(window).astype(np.float32) if subdivisions > 1 else np.ones(window, np.float32)
    win2d = np.multiply.outer(weights_1d, weights_1d)[:, :, None]
    predict = as_predict_fn(predict_fn)
    band = _Band(rows_geo, cols_geo, num_classes)
    expected = (window, window, num_classes)

    for start, row_windows in _windows_by_row(rows_geo, cols_geo, tta).items():
        yield from band.release(start)
        # np.take keeps the strip C-contiguous ([:, cols] would not), so windows batch without copies
        strip = np.take(read_rows(row_source[start:start + window]), col_source, axis=1).astype(np.float32)
        jobs = [(variant, int(c)) for variant, cols in row_windows for c in cols]
        for first in range(0, len(jobs), batch_size):
            chunk = jobs[first:first + batch_size]
            batch = np.stack([variant.forward(strip[:, c:c + window]) for variant, c in chunk])
            out = np.asarray(predict(batch), dtype=np.float32)
            if out.shape != (len(chunk), *expected):
                raise ValueError(f"predict_fn returned shape {out.shape}, expected {(len(chunk), *expected)}")
            for (variant, c), probs in zip(chunk, out, strict=True):
                band.add(c, variant.inverse(probs), win2d)
            if on_batch is not None:
                on_batch(len(chunk))
    yield from band.release(rows_geo.padded)


def count_windows(shape: tuple[int, int], *, window: int, subdivisions: int, tta: str) -> int:
    """How many model windows a blended prediction of an image this size runs."""
    rows_geo = axis_geometry(shape[0], window, subdivisions)
    cols_geo = axis_geometry(shape[1], window, subdivisions)
    return sum(len(rows_geo.origins(v.flip_rows)) * len(cols_geo.origins(v.flip_cols)) for v in transforms(tta))


def predict_smooth(
    image: np.ndarray,
    predict_fn: BatchModel | PredictFn,
    *,
    window: int,
    num_classes: int,
    subdivisions: int = 2,
    tta: str = "d4",
    batch_size: int = 16,
    on_batch: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Smooth-blended class probabilities (H, W, num_classes) float32 of a whole image.

    ``predict_fn`` maps a float32 batch (N, window, window, C) to probabilities
    (N, window, window, num_classes); a Keras model can be passed directly.
    """
    image = np.asarray(image)
    if image.ndim != 3:
        raise ValueError(f"image must be (H, W, C), got shape {image.shape}")
    out = np.empty(image.shape[:2] + (num_classes,), np.float32)
    for top, rows in blend_rows(lambda idx: image[idx], image.shape[:2], predict_fn, window=window,
                                num_classes=num_classes, subdivisions=subdivisions, tta=tta,
                                batch_size=batch_size, on_batch=on_batch):
        out[top:top + len(rows)] = rows
    return out


def predict_plain(image: np.ndarray, predict_fn: BatchModel | PredictFn, *, window: int, num_classes: int,
                  batch_size: int = 16) -> np.ndarray:
    """Plain tiled prediction: side-by-side windows, no overlap, no test-time augmentation."""
    return predict_smooth(image, predict_fn, window=window, num_classes=num_classes,
                          subdivisions=1, tta="none", batch_size=batch_size)
