"""Turn images into class maps with a checkpoint, plain and smooth-blended; what keys their cache."""

from __future__ import annotations

import hashlib

import numpy as np

from aerialseg.core.fingerprint import code_digest
from aerialseg.core.framework import keras
from aerialseg.predict.blending import predict_plain, predict_smooth


def prediction_code_digest() -> str:
    """What the predicting code does (docstrings and comments aside): a cache of predictions keys on it."""
    return code_digest([__name__])


def predict_class_maps(model: keras.Model, image: np.ndarray, *, window: int, subdivisions: int,
                       tta: str, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(plain, smooth) uint8 class maps of an RGB image: the seed's with/without comparison."""
    num_classes = int(model.output_shape[-1])
    plain = predict_plain(image, model, window=window, num_classes=num_classes, batch_size=batch_size)
    smooth = predict_smooth(image, model, window=window, num_classes=num_classes,
                            subdivisions=subdivisions, tta=tta, batch_size=batch_size)
    return plain.argmax(-1).astype(np.uint8), smooth.argmax(-1).astype(np.uint8)


def weights_fingerprint(model: keras.Model) -> str:
    """A digest of a model's architecture and weights (not of the file, whose bytes hold a date)."""
    digest = hashlib.sha256(model.to_json().encode())
    for weights in model.get_weights():
        digest.update(np.ascontiguousarray(weights).tobytes())
    return digest.hexdigest()
