"""U-Nets on pretrained ``keras.applications`` backbones, as pure builders.

The backbone (without its classification top) becomes a nested model named ``encoder``
whose outputs are its feature maps at strides 2 to 32, tapped by layer name; a U-Net
decoder (transposed convolution, concatenation with the skip, two 3x3 convolutions per
level, as the seed's) brings them back to full resolution. Each backbone's own input
preprocessing is part of the model, so inputs are RGB in [0, 255] as for the seed's
U-Net and a checkpoint is all prediction needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aerialseg.core.errors import DataError, one_line_reason
from aerialseg.core.framework import keras
from aerialseg.train.model import conv_block

layers = keras.layers

# Keras' ImageNet preprocessing for ResNet50 ("caffe" mode): RGB -> BGR, minus the mean.
_CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)


@dataclass(frozen=True)
class Encoder:
    """A backbone: its ``keras.applications`` constructor and the layers tapped as skips.

    ``skips`` maps an output stride (2..32) to the last layer at that stride (None: the
    backbone's output, where Keras numbers the layer's name); a backbone whose stem
    down-samples 4 times at once has no stride-2 skip.
    """

    constructor: str
    skips: dict[int, str | None]
    caffe_preprocessing: bool = False  # True: the backbone takes BGR minus the ImageNet mean

    def build(self, weights: str | None) -> keras.Model:
        """The backbone without its top, for inputs of any size, with ``weights`` (None, imagenet or a file)."""
        kwargs = {} if self.caffe_preprocessing else {"include_preprocessing": True}
        return getattr(keras.applications, self.constructor)(
            include_top=False, weights=weights, input_shape=(None, None, 3), **kwargs)


ENCODERS = {
    "resnet50": Encoder("ResNet50", {2: "conv1_relu", 4: "conv2_block3_out", 8: "conv3_block4_out",
                                     16: "conv4_block6_out", 32: "conv5_block3_out"}, caffe_preprocessing=True),
    "efficientnetv2b0": Encoder("EfficientNetV2B0", {2: "block1a_project_activation", 4: "block2b_add",
                                                     8: "block4a_expand_activation", 16: "block6a_expand_activation",
                                                     32: "top_activation"}),
    "convnext_tiny": Encoder("ConvNeXtTiny", {4: "convnext_tiny_stage_0_block_2_identity",
                                              8: "convnext_tiny_stage_1_block_2_identity",
                                              16: "convnext_tiny_stage_2_block_8_identity",
                                              32: None}),
}


def resolve_weights(encoder: str, weights: str) -> str | None:
    """What ``keras.applications`` takes for ``model.encoder_weights``: None, "imagenet" or an existing file.

    A missing file is a DataError naming the key, so that the stage stops with one line.
    """
    if weights == "none":
        return None
    if weights == "imagenet":
        return weights
    if not Path(weights).is_file():
        raise DataError(f"model.encoder_weights: {weights}: file not found (the {encoder} backbone's weights "
                        "without top, as keras.applications saves or downloads them)")
    return weights


def load_backbone(encoder: str, weights: str) -> keras.Model:
    """Build the backbone and load its weights; one-line DataError when they cannot be had.

    ``imagenet`` downloads through Keras into ``$KERAS_HOME/models`` (``~/.keras/models``)
    and reads the file from there afterwards; an offline machine takes the same file by path.
    """
    spec = ENCODERS[encoder]
    source = resolve_weights(encoder, weights)
    try:
        return spec.build(source)
    except Exception as err:  # urllib, h5py and Keras raise many kinds for an unreachable or wrong file
        reason = one_line_reason(err, 300)
        if source == "imagenet":
            raise DataError(f"model.encoder_weights: cannot get the ImageNet weights of {encoder} ({reason}); on a "
                            f"machine without network, copy the file into $KERAS_HOME/models or under weights/ and "
                            f"set model.encoder_weights to its path") from None
        raise DataError(f"model.encoder_weights: {weights}: not weights of the {encoder} backbone ({reason})") from None


def _caffe_preprocessing(inputs):
    """RGB [0, 255] -> BGR minus the ImageNet mean, as a frozen 1x1 convolution (exact, portable)."""
    convert = layers.Conv2D(3, 1, name="bgr_minus_mean", trainable=False)
    x = convert(inputs)
    reverse = np.eye(3, dtype="float32")[::-1].reshape(1, 1, 3, 3)
    convert.set_weights([reverse, -np.asarray(_CAFFE_BGR_MEAN, "float32")])
    return x


def build_encoder_unet(encoder: str, weights: str = "none", num_classes: int = 6, base_filters: int = 16,
                       max_filters: int | None = 256, batch_norm: bool = True,
                       input_size: int | None = None) -> keras.Model:
    """Return an uncompiled U-Net on a ``keras.applications`` backbone: RGB [0, 255] in, probabilities out.

    ``weights`` is ``none`` (random), ``imagenet`` or a weights file of the backbone. The
    decoder level at stride s has ``base_filters * s`` filters, capped at ``max_filters``;
    inputs need sides divisible by 32. The backbone is the nested model ``encoder`` so that
    training can freeze it as a whole.
    """
    spec = ENCODERS[encoder]
    backbone = load_backbone(encoder, weights)
    taps = [backbone.output if spec.skips[s] is None else backbone.get_layer(spec.skips[s]).output
            for s in sorted(spec.skips)]
    features = keras.Model(backbone.inputs, taps, name="encoder")

    inputs = keras.Input((input_size, input_size, 3), name="image")
    x = _caffe_preprocessing(inputs) if spec.caffe_preprocessing else inputs
    skips = dict(zip(sorted(spec.skips), features(x), strict=True))
    x = skips[32]
    for stride in (16, 8, 4, 2, 1):
        filters = base_filters * stride if max_filters is None else min(base_filters * stride, max_filters)
        x = layers.Conv2DTranspose(filters, 2, strides=2, padding="same", name=f"dec{stride}_up")(x)
        if stride in skips:
            x = layers.Concatenate(name=f"dec{stride}_skip")([x, skips[stride]])
        x = conv_block(x, filters, name=f"dec{stride}", batch_norm=batch_norm)
    logits = layers.Conv2D(num_classes, 1, name="logits")(x)
    outputs = layers.Activation("softmax", dtype="float32", name="probabilities")(logits)
    return keras.Model(inputs, outputs, name=f"unet_{encoder}")
