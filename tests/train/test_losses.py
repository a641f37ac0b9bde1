"""Loss and metrics against plain NumPy formulas written here from their definitions."""

import numpy as np
import pytest

from aerialseg.train.losses import DiceFocalLoss, JaccardCoefficient, MaskedAccuracy

IGNORE = 255


def _case(seed, ignore_share=0.2):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 6, (2, 8, 8)).astype(np.uint8)
    labels[rng.random(labels.shape) < ignore_share] = IGNORE
    logits = rng.standard_normal((2, 8, 8, 6)).astype(np.float32)
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    return labels, probs.astype(np.float32)


def numpy_loss(labels, probs, dice_weight=1.0, focal_weight=1.0, gamma=2.0, class_weights=None):
    valid = labels != IGNORE
    onehot = np.eye(6)[np.where(valid, labels, 0)] * valid[..., None]
    p = probs * valid[..., None]
    # Dice per class over the whole batch, averaged over classes
    inter = (onehot * p).sum((0, 1, 2))
    dice = 1 - 2 * inter / (onehot.sum((0, 1, 2)) + p.sum((0, 1, 2)) + 1e-7)
    eps = 1e-7
    pc = np.clip(probs, eps, 1 - eps)
    focal = -(onehot * 0.25 * (1 - pc) ** gamma * np.log(pc)).sum(-1)
    if class_weights is None:
        return dice_weight * dice.mean() + focal_weight * focal[valid].sum() / max(valid.sum(), 1)
    w = np.asarray(class_weights)
    pixel_w = w[np.where(valid, labels, 0)] * valid
    return (dice_weight * (w * dice).sum() / w.sum()
            + focal_weight * (focal * pixel_w).sum() / pixel_w.sum())


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("weights", [(1.0, 1.0), (0.5, 2.0)])
def test_dice_focal_matches_numpy(seed, weights):
    labels, probs = _case(seed)
    loss = DiceFocalLoss(6, dice_weight=weights[0], focal_weight=weights[1])
    assert float(loss(labels, probs)) == pytest.approx(numpy_loss(labels, probs, *weights), rel=1e-4)


@pytest.mark.parametrize("class_weights", [[1, 1, 1, 1, 1, 1], [0.5, 1, 2, 1, 4, 0], [3, 3, 3, 3, 3, 3]])
def test_class_weighted_dice_focal_matches_numpy(class_weights):
    labels, probs = _case(7)
    loss = DiceFocalLoss(6, class_weights=class_weights)
    expected = numpy_loss(labels, probs, class_weights=class_weights)
    assert float(loss(labels, probs)) == pytest.approx(expected, rel=1e-4)
    # weights are relative: equal weights give the unweighted loss
    if len(set(class_weights)) == 1:
        assert float(loss(labels, probs)) == pytest.approx(float(DiceFocalLoss(6)(labels, probs)), rel=1e-5)


def test_class_weights_survive_saving():
    loss = DiceFocalLoss(6, class_weights=[1, 2, 3, 4, 5, 6])
    assert DiceFocalLoss.from_config(loss.get_config()).class_weights == [1, 2, 3, 4, 5, 6]
    with pytest.raises(ValueError, match="expected 6 values"):
        DiceFocalLoss(6, class_weights=[1, 2])


def test_median_frequency_weights_by_hand():
    from aerialseg.train.losses import median_frequency_weights

    # frequencies 0.4, 0.3, 0.2, 0.1, 0 (absent): median of the present ones is 0.25
    weights = median_frequency_weights([400, 300, 200, 100, 0])
    assert weights == pytest.approx([0.625, 0.25 / 0.3, 1.25, 2.5, 0.0])
    # odd number of present classes: the middle one gets weight 1
    assert median_frequency_weights([10, 20, 70]) == pytest.approx([2.0, 1.0, 20 / 70])
    with pytest.raises(ValueError, match="no labelled pixels"):
        median_frequency_weights([0, 0])


def test_ignored_pixels_do_not_change_the_loss():
    labels, probs = _case(2)
    loss = DiceFocalLoss(6)
    other = probs.copy()
    other[labels == IGNORE] = np.roll(other[labels == IGNORE], 1, axis=-1)
    assert float(loss(labels, probs)) == pytest.approx(float(loss(labels, other)), rel=1e-6)


def test_perfect_prediction_has_lower_loss():
    labels, probs = _case(3, ignore_share=0.0)
    perfect = np.eye(6, dtype=np.float32)[labels] * 0.999 + 0.001 / 6
    loss = DiceFocalLoss(6)
    assert float(loss(labels, perfect)) < 0.05 < float(loss(labels, probs))


def test_masked_accuracy_counts_valid_pixels_only():
    labels, probs = _case(4)
    metric = MaskedAccuracy()
    metric.update_state(labels, probs)
    valid = labels != IGNORE
    assert float(metric.result()) == pytest.approx((probs.argmax(-1) == labels)[valid].mean(), abs=1e-6)


def test_jaccard_coefficient_is_the_seeds_formula_accumulated_over_batches():
    metric = JaccardCoefficient(6)
    inter = total = 0.0
    for seed in (5, 6):
        labels, probs = _case(seed)
        metric.update_state(labels, probs)
        valid = labels != IGNORE
        onehot = np.eye(6)[np.where(valid, labels, 0)] * valid[..., None]
        p = probs * valid[..., None]
        inter += (onehot * p).sum()
        total += onehot.sum() + p.sum()
    assert float(metric.result()) == pytest.approx((inter + 1) / (total - inter + 1), rel=1e-5)
