import numpy as np
from sklearn.metrics import confusion_matrix

from aerialseg.evaluate.scoring import colour_baseline, confusion_matrices, predict_colours, sample_pixels


def _scenes(seed):
    rng = np.random.default_rng(seed)
    labels, preds = {}, {}
    for scene in ("2_13", "2_14"):
        full = rng.integers(0, 6, (20, 30)).astype(np.uint8)
        noboundary = full.copy()
        noboundary[::4] = 255
        labels[scene] = {"full": full, "noboundary": noboundary}
        preds[scene] = {"plain": rng.integers(0, 6, (20, 30)).astype(np.uint8), "smooth": full.copy()}
    return labels, preds


def test_confusions_accumulate_over_scenes_like_one_big_image():
    labels, preds = _scenes(0)
    cms = confusion_matrices(preds, labels, 6)
    for kind in ("plain", "smooth"):
        for label_kind in ("full", "noboundary"):
            y = np.concatenate([labels[s][label_kind].ravel() for s in labels])
            p = np.concatenate([preds[s][kind].ravel() for s in labels])
            keep = y != 255
            assert np.array_equal(cms[kind][label_kind], confusion_matrix(y[keep], p[keep], labels=range(6)))
    assert np.trace(cms["smooth"]["full"]) == 2 * 20 * 30


def test_pixel_sample_skips_ignore_and_is_seeded():
    image = np.arange(10 * 10 * 3, dtype=np.uint8).reshape(10, 10, 3)
    mask = np.zeros((10, 10), np.uint8)
    mask[:5] = 255
    x1, y1 = sample_pixels([image], [mask], 30, seed=4)
    x2, _ = sample_pixels([image], [mask], 30, seed=4)
    assert np.array_equal(x1, x2) and (y1 == 0).all() and len(y1) == 30


def test_colour_baseline_learns_colour_and_nothing_else():
    rng = np.random.default_rng(1)
    mask = rng.integers(0, 2, (40, 40)).astype(np.uint8)
    image = np.where(mask[..., None] == 1, [200, 50, 50], [50, 50, 200]).astype(np.uint8)
    classifier = colour_baseline([image], [mask], seed=0, pixels=500)
    assert np.array_equal(predict_colours(classifier, image), mask)
