import numpy as np
import pytest
from sklearn.metrics import confusion_matrix, f1_score, jaccard_score, precision_score, recall_score

from aerialseg.core.classes import IGNORE_INDEX, ClassTable
from aerialseg.evaluate.metrics import confusion, scores

from conftest import CLASSES

CLASS_NAMES = CLASSES.names
LABELS = list(range(6))


def _random_case(seed, absent=()):
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 6, (64, 48)).astype(np.uint8)
    prediction = np.where(rng.random(label.shape) < 0.7, label, rng.integers(0, 6, label.shape)).astype(np.uint8)
    for cls in absent:
        label[label == cls] = 0
        prediction[prediction == cls] = 1
    label[rng.random(label.shape) < 0.1] = IGNORE_INDEX
    return label, prediction


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_confusion_matches_sklearn_and_skips_ignore(seed):
    label, prediction = _random_case(seed)
    valid = label != IGNORE_INDEX
    expected = confusion_matrix(label[valid], prediction[valid], labels=LABELS)
    assert np.array_equal(confusion(label, prediction, 6), expected)


@pytest.mark.parametrize("seed", [3, 4])
def test_per_class_scores_match_sklearn(seed):
    label, prediction = _random_case(seed)
    valid = label != IGNORE_INDEX
    y, p = label[valid], prediction[valid]
    result = scores(confusion(label, prediction, 6), CLASSES)
    for name, reference in (("iou", jaccard_score), ("f1", f1_score), ("precision", precision_score),
                            ("recall", recall_score)):
        expected = reference(y, p, labels=LABELS, average=None, zero_division=0)
        got = [result[name][c] for c in CLASS_NAMES]
        np.testing.assert_allclose(got, expected, atol=1e-6)
    assert result["overall_accuracy"] == pytest.approx((y == p).mean(), abs=1e-6)
    iou = jaccard_score(y, p, labels=LABELS, average=None)
    assert result["miou_6"] == pytest.approx(iou.mean(), abs=1e-6)
    assert result["miou_5"] == pytest.approx(iou[:5].mean(), abs=1e-6)
    f1 = f1_score(y, p, labels=LABELS, average=None)
    assert result["mf1_6"] == pytest.approx(f1.mean(), abs=1e-6)
    assert result["mf1_5"] == pytest.approx(f1[:5].mean(), abs=1e-6)


def test_class_absent_from_labels_and_predictions_is_left_out_of_the_means():
    label, prediction = _random_case(5)
    label[label == 5] = 0
    prediction[prediction == 5] = 0
    result = scores(confusion(label, prediction, 6), CLASSES)
    assert result["iou"]["clutter"] is None and result["f1"]["clutter"] is None
    valid = label != IGNORE_INDEX
    present = jaccard_score(label[valid], prediction[valid], labels=LABELS[:5], average=None)
    assert result["miou_6"] == pytest.approx(present.mean(), abs=1e-6)
    assert result["miou_5"] == result["miou_6"]


def test_class_predicted_but_never_labelled_scores_zero():
    label = np.zeros((4, 4), np.uint8)
    prediction = label.copy()
    prediction[0, 0] = 4  # a car where there is none
    result = scores(confusion(label, prediction, 6), CLASSES)
    assert result["iou"]["car"] == 0.0 and result["precision"]["car"] == 0.0
    assert result["iou"]["impervious"] == pytest.approx(15 / 16)
    assert result["miou_6"] == pytest.approx((15 / 16 + 0.0) / 2)


def test_hand_computed_case():
    # label:  0 0 1 1   prediction: 0 1 1 1  (ignore in the last column of row 2)
    label = np.array([[0, 0, 1, 1], [0, 0, 1, IGNORE_INDEX]], np.uint8)
    prediction = np.array([[0, 1, 1, 1], [0, 0, 1, 0]], np.uint8)
    result = scores(confusion(label, prediction, 6), CLASSES)
    assert result["pixels"] == 7
    assert result["iou"]["impervious"] == pytest.approx(3 / 4)   # tp 3, fn 1, fp 0
    assert result["iou"]["building"] == pytest.approx(3 / 4)     # tp 3, fp 1
    assert result["f1"]["impervious"] == pytest.approx(6 / 7)
    assert result["overall_accuracy"] == pytest.approx(6 / 7)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="differ in shape"):
        confusion(np.zeros((2, 2), np.uint8), np.zeros((2, 3), np.uint8), 6)


def test_metric_keys_follow_the_table_names_and_its_headline():
    """Seven classes, two left out of the headline: miou_7 and miou_5 (over the headline classes),
    per-class keys by name; without exclusions only miou_7."""
    names = ("road", "pavement", "building", "low_vegetation", "tree", "car", "clutter")
    colours = tuple((i, i, i) for i in range(7))
    label = np.array([[0, 1, 2, 3, 4, 5, 6, 0]], np.uint8)
    prediction = np.array([[0, 1, 2, 3, 4, 5, 5, 1]], np.uint8)
    cm = confusion(label, prediction, 7)
    headline = ClassTable(names, colours, headline=(True, True, True, True, True, False, False))
    result = scores(cm, headline)
    assert [k for k in result if k.startswith(("miou", "mf1"))] == ["miou_7", "miou_5", "mf1_7", "mf1_5"]
    iou = jaccard_score(label.ravel(), prediction.ravel(), labels=list(range(7)), average=None, zero_division=0)
    assert result["miou_7"] == pytest.approx(iou.mean(), abs=1e-6)
    assert result["miou_5"] == pytest.approx(iou[:5].mean(), abs=1e-6)
    assert list(result["iou"]) == list(names)
    plain = scores(cm, ClassTable(names, colours))
    assert [k for k in plain if k.startswith("miou")] == ["miou_7"]
    with pytest.raises(ValueError, match="confusion matrix of 7 classes for a table of 6"):
        scores(cm, CLASSES)
