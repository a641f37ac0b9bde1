"""Load a Keras checkpoint for inference, and what its input sides must be divisible by.

Apart from ``inference`` so that what only loads a model (export, the backends) does not run,
and so does not depend on, the blending code.
"""

from __future__ import annotations

from pathlib import Path

from aerialseg.core.config.params import ENCODER_STRIDE
from aerialseg.core.errors import DataError, one_line_reason
from aerialseg.core.framework import keras


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
