"""Models of any bands: the card's normalisation in the graph, pretrained stems adapted by band name, jitter by band."""

from __future__ import annotations

import numpy as np
import pytest

from aerialseg.core.config.params import JitterParams
from aerialseg.core.framework import keras, tf
from aerialseg.core.input_spec import InputSpec, Normalisation
from aerialseg.train.encoders import ENCODERS, build_encoder_unet
from aerialseg.train.input_pipeline import augment
from aerialseg.train.model import build_unet

NIR = InputSpec(bands=("red", "green", "blue", "nir"), dtype="uint16",
                normalisation=Normalisation(method="percentiles", low=(100.0, 120.0, 90.0, 300.0),
                                            high=(2100.0, 1900.0, 1700.0, 4300.0)))
FALSE_COLOUR = InputSpec(bands=("nir", "red", "green"), dtype="uint16",
                         normalisation=Normalisation(method="percentiles", low=(300.0, 100.0, 120.0),
                                                     high=(4300.0, 2100.0, 1900.0)))


def test_the_plain_unet_takes_raw_bands_and_normalises_them_in_its_first_layer():
    model = build_unet(6, depth=2, base_filters=4, inputs_spec=NIR)
    assert model.input_shape == (None, None, None, 4)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 5000, (2, 16, 16, 4)).astype(np.float32)
    first = keras.Model(model.inputs, model.get_layer("normalise").output)
    low, span = NIR.unit_scale()
    np.testing.assert_allclose(first.predict(x, verbose=0), (x - low) / span, rtol=1e-5, atol=1e-6)
    assert model.predict(x, verbose=0).shape == (2, 16, 16, 6)


def _resnet_weights(tmp_path) -> tuple[str, list[np.ndarray]]:
    keras.utils.set_random_seed(3)
    saved = ENCODERS["resnet50"].build(None)
    path = tmp_path / "resnet50_notop.weights.h5"
    saved.save_weights(path)
    return str(path), saved.get_weights()


@pytest.mark.slow
@pytest.mark.parametrize("spec", [NIR, FALSE_COLOUR], ids=["rgb+nir", "nir,red,green"])
def test_a_resnet50_stem_takes_the_pretrained_kernels_by_band_name(tmp_path, spec):
    path, pretrained = _resnet_weights(tmp_path)
    stem = pretrained[0]  # conv1_conv's kernel (7, 7, 3, 64), its input channels blue, green, red
    by_name = {"blue": stem[:, :, 0], "green": stem[:, :, 1], "red": stem[:, :, 2]}
    scale = 3 / len(spec.bands)
    for extra in ("mean", "zero"):
        model = build_encoder_unet("resnet50", path, base_filters=4, max_filters=16, inputs_spec=spec,
                                   extra_bands=extra)
        encoder = model.get_layer("encoder")
        kernel = encoder.get_layer("conv1_conv").get_weights()[0]
        assert kernel.shape == (7, 7, len(spec.bands), 64)
        for i, band in enumerate(spec.bands):
            if band in by_name:
                expected = by_name[band] * (scale if extra == "mean" else 1.0)
            else:  # the documented rule: the mean of the colours' kernels (scaled), or zeros
                expected = stem.mean(axis=2) * scale if extra == "mean" else np.zeros_like(stem[:, :, 0])
            np.testing.assert_allclose(kernel[:, :, i], expected, rtol=1e-6, atol=1e-7, err_msg=f"{extra} {band}")
        for ours, theirs in zip(encoder.get_weights()[1:], pretrained[1:], strict=True):  # every other weight
            np.testing.assert_array_equal(ours, theirs)


@pytest.mark.slow
def test_with_zero_extra_bands_the_encoder_sees_the_colours_as_the_pretrained_rgb_model_does(tmp_path):
    """Red, green, blue in 0..255 with a normalisation that keeps them so: the four-band encoder's features
    equal the pretrained RGB model's (its own BGR-minus-mean preprocessing), whatever the NIR band holds."""
    path, _ = _resnet_weights(tmp_path)
    spec = InputSpec(bands=("red", "green", "blue", "nir"), dtype="uint16",
                     normalisation=Normalisation(method="percentiles", low=(0.0, 0.0, 0.0, 50.0),
                                                 high=(255.0, 255.0, 255.0, 1050.0)))
    four = build_encoder_unet("resnet50", path, base_filters=4, max_filters=16, inputs_spec=spec, extra_bands="zero")
    three = build_encoder_unet("resnet50", path, base_filters=4, max_filters=16)
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.integers(0, 256, (1, 64, 64, 3)), rng.integers(0, 2000, (1, 64, 64, 1))], -1)
    x = x.astype(np.float32)

    def features(model: keras.Model, preprocessing: str, inputs: np.ndarray) -> list[np.ndarray]:
        prepared = keras.Model(model.inputs, model.get_layer(preprocessing).output)
        encoder = model.get_layer("encoder")
        return [np.asarray(f) for f in encoder(prepared.predict(inputs, verbose=0), training=False)]

    for a, b in zip(features(four, "normalise", x), features(three, "bgr_minus_mean", x[..., :3]), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-3)


def _augmented(image: np.ndarray, spec: InputSpec, jitter: JitterParams) -> np.ndarray:
    mask = np.zeros(image.shape[:2], np.uint8)
    out, _ = augment(tf.constant(image), tf.constant(mask), seed=7, counter=tf.constant(3, tf.int64),
                     jitter=jitter, spec=spec)
    again, _ = augment(tf.constant(image), tf.constant(mask), seed=7, counter=tf.constant(3, tf.int64),
                       spec=spec)  # the same D4 transform without jitter
    return np.asarray(out), np.asarray(again)


def test_hue_and_saturation_move_the_colours_only_and_brightness_every_band_by_its_range():
    rng = np.random.default_rng(2)
    low, span = NIR.unit_scale()
    image = (low + rng.uniform(0.2, 0.8, (16, 16, 4)) * span).astype(np.float32)
    jittered, plain = _augmented(image, NIR, JitterParams(hue=0.2, saturation=0.5))
    np.testing.assert_allclose(jittered[..., 3], plain[..., 3], rtol=1e-6)  # NIR untouched
    assert not np.allclose(jittered[..., :3], plain[..., :3])
    jittered, plain = _augmented(image, NIR, JitterParams(brightness=0.1))
    shift = (jittered - plain) / span  # one shift in each band's own units
    assert np.ptp(shift) < 1e-4 and 0 < abs(shift.mean()) <= 0.1 + 1e-6
    jittered, plain = _augmented(image[..., :3], FALSE_COLOUR, JitterParams(hue=0.2, saturation=0.5))
    np.testing.assert_allclose(jittered, plain, rtol=1e-6)  # no blue band: no colour to turn


def test_jitter_keeps_16_bit_values_inside_their_type():
    image = np.full((8, 8, 4), 65000.0, np.float32)
    jittered, _ = _augmented(image, NIR, JitterParams(brightness=0.9, contrast=0.5))
    assert jittered.max() <= 65535.0 and jittered.min() >= 0.0
