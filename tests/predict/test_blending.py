"""aerialseg.predict.blending against the independent reference (weights normalisation) and a naive loop."""

import numpy as np
import pytest

from aerialseg.predict.blending import (
    blend_rows,
    count_windows,
    predict_plain,
    predict_smooth,
    spline_window_1d,
    transforms,
)
from reference.ref_blend import predict_smooth_reference
from reference.ref_blend import spline_window_1d as ref_spline

NUM_CLASSES = 6


def position_dependent_model(seed=0):
    """A deterministic stand-in for a network whose output depends on position in the window.

    Point-wise models would hide orientation mistakes; this one does not.
    """
    rng = np.random.default_rng(seed)
    weights = rng.standard_normal((3, NUM_CLASSES)).astype(np.float32)

    def predict(batch):
        n, h, w, _ = batch.shape
        z = batch @ weights
        z = z + np.linspace(0, 2, h, dtype=np.float32)[None, :, None, None] * np.arange(NUM_CLASSES, dtype=np.float32)
        classes = np.arange(NUM_CLASSES, dtype=np.float32)
        z = z + np.linspace(0, 1, w, dtype=np.float32)[None, None, :, None] * classes[::-1]
        z = z - z.max(-1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(-1, keepdims=True)

    return predict


@pytest.mark.parametrize("window", [16, 32, 33])
def test_spline_window_matches_reference(window):
    np.testing.assert_allclose(spline_window_1d(window), ref_spline(window), atol=1e-12)


@pytest.mark.parametrize("shape", [(64, 64), (70, 53), (37, 41), (100, 150), (20, 25)])  # last: < window
@pytest.mark.parametrize("subdivisions", [2, 3, 4])
@pytest.mark.parametrize("tta", ["d4", "none"])
@pytest.mark.parametrize("batch_size", [1, 7, 64])
def test_equals_reference_with_weight_normalisation(shape, subdivisions, tta, batch_size):
    window = 32
    image = np.random.default_rng(sum(shape)).random(shape + (3,)).astype(np.float32)
    model = position_dependent_model()
    expected = predict_smooth_reference(image, window, subdivisions, NUM_CLASSES, model, d4=tta == "d4",
                                        normalize="weights")
    got = predict_smooth(image, model, window=window, num_classes=NUM_CLASSES, subdivisions=subdivisions,
                         tta=tta, batch_size=batch_size)
    assert got.dtype == np.float32 and got.shape == shape + (NUM_CLASSES,)
    assert np.abs(got - expected).max() <= 1e-4
    np.testing.assert_allclose(got.sum(-1), 1.0, atol=1e-5)


def naive_flips_blend(image, model, window, subdivisions):
    """Independent loop for the "flips" mode: transform the whole padded image, tile, undo."""
    pad = int(round(window * (1 - 1 / subdivisions)))
    step = window // subdivisions
    padded = np.pad(image, ((pad, pad), (pad, pad), (0, 0)), mode="reflect")
    w1 = ref_spline(window)
    win = np.multiply.outer(w1, w1)[:, :, None]
    acc = np.zeros(padded.shape[:2] + (NUM_CLASSES,))
    weight = np.zeros(padded.shape[:2] + (1,))
    for flip_rows in (False, True):
        for flip_cols in (False, True):
            view = lambda a, fr=flip_rows, fc=flip_cols: a[::-1 if fr else 1, ::-1 if fc else 1]  # noqa: E731
            src, dst, wdst = view(padded), view(acc), view(weight)
            for r in range(0, src.shape[0] - window + 1, step):
                for c in range(0, src.shape[1] - window + 1, step):
                    out = model(np.ascontiguousarray(src[None, r:r + window, c:c + window]))[0]
                    dst[r:r + window, c:c + window] += out * win
                    wdst[r:r + window, c:c + window] += win
    return (acc / weight)[pad:pad + image.shape[0], pad:pad + image.shape[1]]


@pytest.mark.parametrize("shape", [(48, 48), (61, 45)])
def test_flips_mode_equals_naive_loop(shape):
    image = np.random.default_rng(3).random(shape + (3,)).astype(np.float32)
    model = position_dependent_model(1)
    got = predict_smooth(image, model, window=16, num_classes=NUM_CLASSES, subdivisions=2, tta="flips", batch_size=5)
    assert np.abs(got - naive_flips_blend(image, model, 16, 2)).max() <= 1e-4


@pytest.mark.parametrize("shape", [(64, 64), (50, 70), (10, 12)])
def test_plain_prediction_equals_naive_tiling(shape):
    image = np.random.default_rng(4).random(shape + (3,)).astype(np.float32)
    model = position_dependent_model(2)
    window = 16
    h, w = shape
    padded = np.pad(image, ((0, -h % window), (0, -w % window), (0, 0)), mode="reflect")
    expected = np.zeros(padded.shape[:2] + (NUM_CLASSES,), np.float32)
    for r in range(0, padded.shape[0], window):
        for c in range(0, padded.shape[1], window):
            expected[r:r + window, c:c + window] = model(padded[None, r:r + window, c:c + window])[0]
    got = predict_plain(image, model, window=window, num_classes=NUM_CLASSES, batch_size=3)
    assert np.abs(got - expected[:h, :w]).max() <= 1e-6


def test_streamed_bands_equal_in_memory_result_and_arrive_in_order():
    image = np.random.default_rng(5).random((150, 90, 3)).astype(np.float32)
    model = position_dependent_model(3)
    whole = predict_smooth(image, model, window=32, num_classes=NUM_CLASSES, subdivisions=2, tta="d4", batch_size=9)
    rows_read = []

    def read_rows(idx):
        rows_read.append(np.asarray(idx))
        return image[idx]

    next_row, bands = 0, 0
    for top, band in blend_rows(read_rows, image.shape[:2], model, window=32, num_classes=NUM_CLASSES,
                                subdivisions=2, tta="d4", batch_size=9):
        assert top == next_row
        assert np.array_equal(band, whole[top:top + len(band)])
        next_row, bands = top + len(band), bands + 1
    assert next_row == 150 and bands > 3
    assert max(len(r) for r in rows_read) == 32  # one window of rows at a time, never the image


def test_window_count_matches_model_calls():
    calls = []
    model = position_dependent_model()

    def counting(batch):
        calls.append(len(batch))
        return model(batch)

    predict_smooth(np.zeros((70, 53, 3), np.float32), counting, window=32, num_classes=NUM_CLASSES,
                   subdivisions=2, tta="d4", batch_size=4)
    assert sum(calls) == count_windows((70, 53), window=32, subdivisions=2, tta="d4")


def test_transforms_are_the_dihedral_group():
    patch = np.arange(2 * 2 * 1).reshape(1, 2, 2, 1)
    images = {t.forward(patch).tobytes() for t in transforms("d4")}
    assert len(images) == 8
    for t in transforms("d4"):
        assert np.array_equal(t.inverse(t.forward(patch)), patch)


def test_wrong_model_output_is_reported():
    with pytest.raises(ValueError, match="predict_fn returned shape"):
        predict_smooth(np.zeros((32, 32, 3), np.float32), lambda b: b, window=16, num_classes=6)


def test_unknown_tta_is_reported():
    with pytest.raises(ValueError, match="tta must be one of"):
        predict_smooth(np.zeros((32, 32, 3), np.float32), position_dependent_model(), window=16, num_classes=6,
                       tta="rot")
