"""Per-band percentiles of the training scenes' valid pixels: the ``percentiles`` normalisation's low and high.

Each scene is summarised on its own (in its worker) and the summaries are merged, so the
percentiles are those of all training pixels together, not a mean of per-scene ones:

- integer bands (8 and 16 bits) are counted value by value (``np.bincount``): merging adds the
  counts, and the percentiles are exact, the ``inverted_cdf`` ones of NumPy (the smallest value
  whose cumulative count reaches ``ceil(n q / 100)``, at least 1);
- float bands keep a seeded uniform sample of at most ``FLOAT_SAMPLE`` valid pixels per scene,
  merged by concatenation, whose ``inverted_cdf`` percentiles stand for the scenes' (the 1st
  percentile of a 250 000-pixel sample is off by about a twentieth of a percent, in rank).

Pixels outside a scene's footprint (nodata, alpha, an internal mask: GDAL's dataset mask) are left
out, and so are NaN samples. Images are read in strips of rows, never whole.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rasterio.enums import MaskFlags
from rasterio.windows import Window

from aerialseg.core.errors import DataError
from aerialseg.core.geo.geoio import opened_raster
from aerialseg.core.input_spec import PERCENTILES, InputSpec, Normalisation, fixed_input

FLOAT_SAMPLE = 250_000  # valid pixels per float scene kept for its percentiles
_STRIP_PIXELS = 1 << 22  # pixels read at a time


@dataclass
class BandSummary:
    """What a set of scenes says about each band's distribution: value counts (integer bands: (B, 2**bits)
    int64) or a sample (float bands: (n, B)); ``pixels`` counts the valid pixels summarised."""

    counts: np.ndarray | None = None
    sample: np.ndarray | None = None
    pixels: int = 0
    sources: list[str] = field(default_factory=list)

    def merged(self, other: BandSummary) -> BandSummary:
        """The summary of both sets of scenes."""
        if self.pixels == 0:
            return other
        if other.pixels == 0:
            return self
        counts = None if self.counts is None or other.counts is None else self.counts + other.counts
        sample = None if self.sample is None or other.sample is None else np.concatenate([self.sample, other.sample])
        return BandSummary(counts, sample, self.pixels + other.pixels, self.sources + other.sources)

    def percentiles(self, q: float) -> tuple[float, ...]:
        """Each band's q-th percentile (``inverted_cdf``); DataError when no pixel was valid."""
        if self.pixels == 0:
            raise DataError(f"{', '.join(self.sources) or 'the training scenes'}: no valid pixel to compute the "
                            "bands' statistics from (every pixel is nodata or masked)")
        if self.counts is not None:
            cumulative = np.cumsum(self.counts, axis=1)
            rank = max(math.ceil(self.pixels * (q / 100)), 1)  # 1-based, in NumPy's arithmetic
            return tuple(float(np.searchsorted(c, rank, side="left")) for c in cumulative)
        assert self.sample is not None
        return tuple(float(v) for v in np.percentile(self.sample, q, axis=0, method="inverted_cdf"))


def summarise_values(values: np.ndarray, valid: np.ndarray | None, seed: int = 0) -> BandSummary:
    """The summary of (H, W, B) band values where ``valid`` (H, W) is true (None: everywhere)."""
    flat = values.reshape(-1, values.shape[-1])
    if valid is not None:
        flat = flat[valid.reshape(-1)]
    if np.issubdtype(flat.dtype, np.integer):
        size = np.iinfo(flat.dtype).max + 1
        counts = np.stack([np.bincount(flat[:, b], minlength=size) for b in range(flat.shape[1])]).astype(np.int64)
        return BandSummary(counts=counts, pixels=len(flat))
    flat = flat[~np.isnan(flat).any(axis=1)]
    pixels = len(flat)
    if pixels > FLOAT_SAMPLE:
        flat = flat[np.sort(np.random.default_rng(seed).choice(pixels, FLOAT_SAMPLE, replace=False))]
    return BandSummary(sample=np.asarray(flat, np.float64), pixels=pixels)


def summarise_raster(path: Path, bands: tuple[int, ...], seed: int = 0) -> BandSummary:
    """The summary of a raster's ``bands`` (1-based) over its footprint, read in strips of rows."""
    with opened_raster(path, "raster") as src:
        rows = max(1, _STRIP_PIXELS // max(src.width, 1))
        whole = all(flags == [MaskFlags.all_valid] for flags in src.mask_flag_enums)
        total = BandSummary()
        for top in range(0, src.height, rows):
            window = Window(0, top, src.width, min(rows, src.height - top))
            values = src.read(bands, window=window).transpose(1, 2, 0)
            valid = None if whole else src.dataset_mask(window=window) > 0
            total = total.merged(summarise_values(values, valid, seed + top))
    if total.counts is None and total.sample is not None and len(total.sample) > FLOAT_SAMPLE:
        keep = np.random.default_rng(seed).choice(len(total.sample), FLOAT_SAMPLE, replace=False)
        total.sample = total.sample[np.sort(keep)]
    total.sources = [str(path)]
    return total


def band_input(bands: tuple[str, ...], dtype: str, summary: BandSummary, leave_out: str) -> InputSpec:
    """The models' input for ``bands`` of ``dtype``: 8-bit as they are, others normalised by the training
    scenes' percentiles (``summary``; ``input_spec``). A band of one value is a DataError (``leave_out``
    says how to drop it)."""
    if dtype == "uint8":
        return fixed_input(bands)
    low, high = summary.percentiles(PERCENTILES[0]), summary.percentiles(PERCENTILES[1])
    flat = [name for name, lo, hi in zip(bands, low, high, strict=True) if hi <= lo]
    if flat:
        raise DataError(f"{', '.join(summary.sources[:5])}: band(s) {', '.join(flat)} hold one value over the "
                        f"training scenes' pixels (their percentiles {PERCENTILES[0]:g} and {PERCENTILES[1]:g} "
                        f"are equal): nothing to learn from; leave them out ({leave_out})")
    return InputSpec(bands=bands, dtype=dtype, normalisation=Normalisation(method="percentiles", low=low, high=high))
