import keras
import numpy as np
import pytest

from aerialseg.train.model import build_unet


@pytest.mark.parametrize("depth", [1, 2, 4, 6])
def test_output_shape_and_probabilities(depth):
    model = build_unet(num_classes=6, depth=depth, base_filters=2)
    size = 2**depth * 2
    out = model.predict(np.random.default_rng(0).integers(0, 256, (2, size, size + 2**depth, 3)).astype("float32"),
                        verbose=0)
    assert out.shape == (2, size, size + 2**depth, 6)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.sum(-1), 1.0, atol=1e-5)


@pytest.mark.parametrize("depth", [4, 6])
def test_depth_counts_poolings_and_transpose_convolutions(depth):
    model = build_unet(depth=depth, base_filters=2)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds.count("MaxPooling2D") == depth
    assert kinds.count("Conv2DTranspose") == depth
    assert kinds.count("Concatenate") == depth  # one skip connection per level
    # two 3x3 convolutions per encoder level, bridge and decoder level, plus the 1x1 head
    assert kinds.count("Conv2D") == 2 * (2 * depth + 1) + 1


def test_filters_double_per_level_up_to_the_cap():
    model = build_unet(depth=6, base_filters=4, max_filters=32)
    widths = [model.get_layer(f"enc{level}_conv1").filters for level in range(6)]
    assert widths == [4, 8, 16, 32, 32, 32]
    assert model.get_layer("bridge_conv1").filters == 32
    assert build_unet(depth=6, base_filters=4).get_layer("bridge_conv1").filters == 256


def test_batch_norm_is_optional():
    names = [type(layer).__name__ for layer in build_unet(depth=2, base_filters=2, batch_norm=True).layers]
    assert names.count("BatchNormalization") == 2 * 5
    assert "BatchNormalization" not in [type(layer).__name__ for layer in build_unet(depth=2, base_filters=2).layers]


def test_head_stays_float32_under_mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = build_unet(depth=2, base_filters=2)
        assert model.get_layer("probabilities").dtype_policy.compute_dtype == "float32"
        assert model.get_layer("enc0_conv1").dtype_policy.compute_dtype == "float16"
    finally:
        keras.mixed_precision.set_global_policy("float32")
