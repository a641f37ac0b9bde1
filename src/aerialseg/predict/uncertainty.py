"""Per-pixel uncertainty of a blended prediction: where a user should look, or label, next.

The uncertainty of a pixel is the normalised Shannon entropy of its blended class
probabilities, ``u = −Σ_c p_c ln p_c / ln C`` for ``C`` classes: 0 where one class has all
the probability, 1 where all classes tie. The blended probabilities already average the
overlapping windows and the test-time augmentations, so ``u`` is high where they disagree
as well as where the model hesitates. Stored as uint8 steps of 1/254 (GDAL scale), 255 for
nodata, like the probability GeoTIFF.
"""

from __future__ import annotations

import numpy as np

from aerialseg.core.geo.geoio import NODATA, PROBABILITY_SCALE


def normalised_entropy(probabilities: np.ndarray) -> np.ndarray:
    """(H, W, C) probabilities -> (H, W) float32 normalised entropy in [0, 1]."""
    p = np.clip(probabilities.astype(np.float32), 0.0, 1.0)
    p /= np.maximum(p.sum(-1, keepdims=True), np.float32(1e-12))
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(p), np.float32(0))
    return np.clip(-terms.sum(-1) / np.float32(np.log(p.shape[-1])), 0.0, 1.0).astype(np.float32)


def quantised_uncertainty(probabilities: np.ndarray, footprint: np.ndarray) -> tuple[np.ndarray, float | None]:
    """(1, H, W) uint8 uncertainty (steps of 1/254, 255 outside ``footprint``) and its mean over the footprint."""
    u = normalised_entropy(probabilities)
    mean = float(u[footprint].mean()) if footprint.any() else None
    quantised = np.rint(u * PROBABILITY_SCALE).astype(np.uint8)
    quantised[~footprint] = NODATA
    return quantised[None], mean
