"""U-Nets on pretrained ``keras.applications`` backbones, as pure builders.

The backbone (without its classification top) becomes a nested model named ``encoder``
whose outputs are its feature maps at strides 2 to 32, tapped by layer name; a U-Net
decoder (transposed convolution, concatenation with the skip, two 3x3 convolutions per
level, as the seed's) brings them back to full resolution. Each backbone's own input
preprocessing is part of the model, so inputs are RGB in [0, 255] as for the seed's
U-Net and a checkpoint is all prediction needs.

Other inputs (near-infrared, a surface model, false colour, 16 bits: ``input_spec``) get a backbone
built for their band count whose stem is adapted **by band name** (``adapt_stem``): red, green and
blue take the pretrained kernels of those colours (whatever their position: Vaihingen's
near-infrared, red, green puts red second), every other band the mean of the three colours'
kernels (``extra_bands: mean``: a new band starts as "brightness", the one thing the pretrained stem
knows that any band shares) or zeros (``zero``: the pretrained response to the colours is kept
exactly, the new band starts silent and is learnt). With ``mean`` every slice is scaled by 3 / bands
so that the stem's first activation keeps its pretrained range (its sum over bands would grow by
bands / 3). The backbone's built-in RGB preprocessing (Keras' ImageNet mean and deviation; BGR minus
the mean for ResNet50) is replaced by one per-band layer (``normalise``) that maps the raw band
values through the card's normalisation onto what the pretrained stem expects of that colour,
the mean of the three colours' for other bands.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aerialseg.core.errors import DataError, one_line_reason
from aerialseg.core.framework import keras
from aerialseg.core.input_spec import RGB_UINT8, InputSpec
from aerialseg.train.model import conv_block

layers = keras.layers

# Keras' ImageNet preprocessing for ResNet50 ("caffe" mode): RGB -> BGR, minus the mean.
_CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)
# the other backbones' (Keras' "torch" mode): RGB in 0..255 minus 255 x mean, over 255 x deviation
_TORCH_RGB_MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)
_TORCH_RGB_STD = (0.229 * 255, 0.224 * 255, 0.225 * 255)
EXTRA_BANDS = ("mean", "zero")  # how a pretrained stem's kernels for bands other than red, green, blue start


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

    def build(self, weights: str | None, bands: int = 3, preprocessing: bool = True) -> keras.Model:
        """The backbone without its top, for inputs of any size and ``bands`` bands, with ``weights``
        (None, imagenet or a file); ``preprocessing`` False leaves Keras' RGB preprocessing out."""
        kwargs = {} if self.caffe_preprocessing else {"include_preprocessing": preprocessing}
        return getattr(keras.applications, self.constructor)(
            include_top=False, weights=weights, input_shape=(None, None, bands), **kwargs)

    def colour_input(self) -> tuple[tuple[float, float, float], tuple[float, float, float], tuple[int, int, int]]:
        """What the pretrained stem expects of red, green and blue in 0..255: each colour's mean and
        deviation, and the stem kernel's input channel that takes it (ResNet50's is BGR)."""
        if self.caffe_preprocessing:
            b, g, r = _CAFFE_BGR_MEAN
            return (r, g, b), (1.0, 1.0, 1.0), (2, 1, 0)
        return _TORCH_RGB_MEAN, _TORCH_RGB_STD, (0, 1, 2)


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


def adapt_stem(kernel: np.ndarray, bands: tuple[str, ...], channel_of: tuple[int, int, int],
               extra_bands: str = "mean") -> np.ndarray:
    """A pretrained stem kernel (kh, kw, 3, filters) for ``bands`` by name (module docstring): red, green
    and blue take the kernel's channels ``channel_of`` gives them, others the mean of the three
    (``mean``, all slices then times 3 / len(bands)) or zeros (``zero``)."""
    colours = dict(zip(("red", "green", "blue"), channel_of, strict=True))
    other = kernel.mean(axis=2) if extra_bands == "mean" else np.zeros(kernel.shape[:2] + kernel.shape[3:])
    slices = [kernel[:, :, colours[b], :] if b in colours else other for b in bands]
    adapted = np.stack(slices, axis=2)
    return adapted * (3.0 / len(bands)) if extra_bands == "mean" else adapted


def band_normalisation(spec: InputSpec, encoder: str) -> tuple[list[float], list[float]]:
    """The mean and variance of a ``normalise`` layer mapping raw band values through the card's
    normalisation (0 .. 255) onto what the backbone's stem expects of each band by name."""
    means, stds, _ = ENCODERS[encoder].colour_input()
    by_colour = dict(zip(("red", "green", "blue"), zip(means, stds, strict=True), strict=True))
    other = (float(np.mean(means)), float(np.mean(stds)))
    low, span = spec.unit_scale()
    mean, variance = [], []
    for band, lo, sp in zip(spec.bands, low, span, strict=True):
        m, sd = by_colour.get(band, other)
        mean.append(float(lo + sp * m / 255.0))
        variance.append(float((sp * sd / 255.0) ** 2))
    return mean, variance


def adapted_backbone(encoder: str, weights: str, spec: InputSpec, extra_bands: str = "mean") -> keras.Model:
    """The backbone for ``spec``'s bands without Keras' RGB preprocessing, its weights the pretrained
    ones (``load_backbone``) with the stem adapted by band name (``adapt_stem``); random weights for
    ``weights: none``."""
    encoder_spec = ENCODERS[encoder]
    target = encoder_spec.build(None, len(spec.bands), preprocessing=False)
    if resolve_weights(encoder, weights) is None:
        return target
    pretrained = load_backbone(encoder, weights)
    channel_of = encoder_spec.colour_input()[2]
    weighted = [layer for layer in target.layers if layer.weights]
    for layer in weighted:  # the first is the stem (Keras' preprocessing left out): one kernel channel per band
        values = pretrained.get_layer(layer.name).get_weights()
        if layer is weighted[0]:
            values = [adapt_stem(v, spec.bands, channel_of, extra_bands) if v.ndim == 4 else v for v in values]
        layer.set_weights(values)
    return target


def _caffe_preprocessing(inputs):
    """RGB [0, 255] -> BGR minus the ImageNet mean, as a frozen 1x1 convolution (exact, portable)."""
    convert = layers.Conv2D(3, 1, name="bgr_minus_mean", trainable=False)
    x = convert(inputs)
    reverse = np.eye(3, dtype="float32")[::-1].reshape(1, 1, 3, 3)
    convert.set_weights([reverse, -np.asarray(_CAFFE_BGR_MEAN, "float32")])
    return x


def build_encoder_unet(encoder: str, weights: str = "none", num_classes: int = 6, base_filters: int = 16,
                       max_filters: int | None = 256, batch_norm: bool = True,
                       input_size: int | None = None, inputs_spec: InputSpec = RGB_UINT8,
                       extra_bands: str = "mean") -> keras.Model:
    """Return an uncompiled U-Net on a ``keras.applications`` backbone: RGB [0, 255] in (or the bands of
    ``inputs_spec``, the stem adapted by name: module docstring), probabilities out.

    ``weights`` is ``none`` (random), ``imagenet`` or a weights file of the backbone. The
    decoder level at stride s has ``base_filters * s`` filters, capped at ``max_filters``;
    inputs need sides divisible by 32. The backbone is the nested model ``encoder`` so that
    training can freeze it as a whole.
    """
    spec = ENCODERS[encoder]
    rgb = inputs_spec == RGB_UINT8
    backbone = load_backbone(encoder, weights) if rgb else adapted_backbone(encoder, weights, inputs_spec,
                                                                             extra_bands)
    taps = [backbone.output if spec.skips[s] is None else backbone.get_layer(spec.skips[s]).output
            for s in sorted(spec.skips)]
    features = keras.Model(backbone.inputs, taps, name="encoder")

    inputs = keras.Input((input_size, input_size, len(inputs_spec.bands)), name="image")
    if rgb:
        x = _caffe_preprocessing(inputs) if spec.caffe_preprocessing else inputs
    else:
        mean, variance = band_normalisation(inputs_spec, encoder)
        x = layers.Normalization(mean=mean, variance=variance, name="normalise")(inputs)
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
