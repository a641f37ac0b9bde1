"""Load checkpoints and turn images into class maps, plain and smooth-blended."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from aerialseg.core.errors import DataError, one_line_reason
from aerialseg.core.fingerprint import code_digest
from aerialseg.core.framework import keras
from aerialseg.core.params import ENCODER_STRIDE
from aerialseg.predict.blending import predict_plain, predict_smooth


def prediction_code_digest() -> str:
    """What the predicting code does (docstrings and comments aside): a cache of predictions keys on it."""
    return code_digest([__name__])


def load_model(path: str | Path) -> keras.Model:
    """Load a checkpoint for inference; DataError naming the file if it cannot be read.

    The training loss and metrics are not needed (nor rebuilt) to predict.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: checkpoint not found")
    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as err:  # a damaged archive makes zipfile, h5py or Keras raise nearly anything
        reason = one_line_reason(err)
        raise DataError(f"{path}: not a readable Keras checkpoint ({reason})") from None


def input_multiple(model: keras.Model) -> tuple[int, str]:
    """What the model's input sides must be divisible by, and how to name it in a message.

    A U-Net on a pretrained encoder (a nested model named ``encoder``) down-samples 32
    times; the seed's U-Net 2**depth times, one max-pooling per level.
    """
    if any(layer.name == "encoder" for layer in model.layers):
        return ENCODER_STRIDE, "the encoder's output stride"
    return 2 ** sum(isinstance(layer, keras.layers.MaxPooling2D) for layer in model.layers), "2**depth"


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
