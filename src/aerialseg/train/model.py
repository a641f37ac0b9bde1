"""The seed's U-Net: the standard encoder/decoder with extra levels, as a pure builder."""

from __future__ import annotations

from aerialseg.core.framework import keras
from aerialseg.core.input_spec import RGB_UINT8, InputSpec

layers = keras.layers


def normalised(inputs, spec: InputSpec):
    """The input's band values mapped onto 0 .. 1 (``input_spec``): 8-bit bands divided by 255 (the
    seed's rescaling), others by the card's normalisation, ``(x - low) / (high - low)`` per band."""
    if spec.identity:
        return layers.Rescaling(1.0 / 255.0, name="rescale")(inputs)
    low, span = spec.unit_scale()
    return layers.Normalization(mean=low.tolist(), variance=(span**2).tolist(), name="normalise")(inputs)


def conv_block(x, filters: int, name: str, batch_norm: bool):
    """Two 3x3 convolutions, each followed by ReLU (the seed's encoder/decoder block).

    With ``batch_norm`` a BatchNormalization sits between each convolution and its ReLU.
    """
    for i in (1, 2):
        x = layers.Conv2D(
            filters, 3, padding="same", use_bias=not batch_norm,
            kernel_initializer="he_normal", name=f"{name}_conv{i}",
        )(x)
        if batch_norm:
            x = layers.BatchNormalization(name=f"{name}_bn{i}")(x)
        x = layers.Activation("relu", name=f"{name}_relu{i}")(x)
    return x


def build_unet(
    num_classes: int = 6,
    depth: int = 6,
    base_filters: int = 8,
    input_size: int | None = None,
    max_filters: int | None = None,
    batch_norm: bool = False,
    inputs_spec: InputSpec = RGB_UINT8,
) -> keras.Model:
    """Return an uncompiled U-Net mapping the bands of ``inputs_spec`` (8-bit RGB in 0 .. 255 by
    default) to per-pixel class probabilities.

    ``depth`` counts the 2x2 max-pool down-samplings: 4 is Ronneberger's U-Net, 6 the
    seed's (two extra contraction and expansion levels), so inputs must have sides
    divisible by ``2**depth``. Filters double at every level from ``base_filters``.
    Rescaling to [0, 1] (``normalised``) is part of the model so that a saved checkpoint is
    all a user needs to predict; the head is a float32 softmax so mixed precision cannot degrade it.
    ``max_filters`` caps the width of the deep levels (as nnU-Net does), which is where a
    CPU spends most of a training step; None keeps the seed's plain doubling.
    ``batch_norm`` adds batch normalisation to every block (not in the seed; it makes
    training from scratch converge in far fewer steps).
    ``input_size`` None accepts any size (fully convolutional).
    """
    def width(level: int) -> int:
        filters = base_filters * 2**level
        return filters if max_filters is None else min(filters, max_filters)

    inputs = keras.Input((input_size, input_size, len(inputs_spec.bands)), name="image")
    x = normalised(inputs, inputs_spec)
    skips = []
    for level in range(depth):
        x = conv_block(x, width(level), name=f"enc{level}", batch_norm=batch_norm)
        skips.append(x)
        x = layers.MaxPooling2D(2, name=f"enc{level}_pool")(x)
    x = conv_block(x, width(depth), name="bridge", batch_norm=batch_norm)
    for level in reversed(range(depth)):
        filters = width(level)
        x = layers.Conv2DTranspose(filters, 2, strides=2, padding="same", name=f"dec{level}_up")(x)
        x = layers.Concatenate(name=f"dec{level}_skip")([x, skips[level]])
        x = conv_block(x, filters, name=f"dec{level}", batch_norm=batch_norm)
    logits = layers.Conv2D(num_classes, 1, name="logits")(x)
    outputs = layers.Activation("softmax", dtype="float32", name="probabilities")(logits)
    return keras.Model(inputs, outputs, name=f"unet_d{depth}_f{base_filters}")
