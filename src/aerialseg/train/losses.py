"""Training loss and metrics on integer masks, built from Keras 3's own pieces.

Masks arrive as class indices with IGNORE_INDEX on pixels that must not count. Keras'
dice and focal losses and its metrics expect one-hot or clean sparse targets, so the
classes here only turn the index mask into what Keras expects and zero the ignored
pixels; the arithmetic is Keras'.
"""

from __future__ import annotations

from aerialseg.core.classes import IGNORE_INDEX
from aerialseg.core.framework import keras

ops = keras.ops


def _one_hot_valid(y_true, y_pred, num_classes: int):
    """One-hot targets (all zeros on ignored pixels) and the valid-pixel mask (..., 1)."""
    labels = ops.cast(y_true, "int32")
    if len(labels.shape) == len(y_pred.shape):
        labels = ops.squeeze(labels, -1)
    valid = ops.cast(ops.not_equal(labels, IGNORE_INDEX), y_pred.dtype)[..., None]
    one_hot = ops.one_hot(ops.where(labels == IGNORE_INDEX, 0, labels), num_classes) * valid
    return one_hot, valid


@keras.saving.register_keras_serializable(package="aerialseg")
class DiceFocalLoss(keras.losses.Loss):
    """``dice_weight * Dice + focal_weight * categorical focal cross-entropy``, ignoring 255.

    The seed's loss (segmentation_models' DiceLoss + CategoricalFocalLoss) rebuilt from
    ``keras.losses.Dice`` and ``keras.losses.CategoricalFocalCrossentropy``. Ignored pixels
    get an all-zero target and prediction, so they add nothing to either term.

    ``class_weights`` (one per class, relative) make the Dice term a weighted mean of the
    per-class scores and the focal term a weighted mean over pixels, each pixel weighted by
    its true class. Keras' ``class_weight`` argument to ``fit`` cannot do this for
    per-pixel targets (keras-team/keras#14126), so the weighting lives in the loss.
    """

    def __init__(self, num_classes: int, dice_weight: float = 1.0,
                 focal_weight: float = 1.0, gamma: float = 2.0, class_weights: list[float] | None = None,
                 name: str = "dice_focal", **kwargs):
        super().__init__(name=name, **kwargs)
        self.num_classes = num_classes
        self.dice_weight = dice_weight
        self.focal_weight = focal_weight
        self.gamma = gamma
        self.class_weights = None if class_weights is None else [float(w) for w in class_weights]
        if self.class_weights is not None and len(self.class_weights) != num_classes:
            raise ValueError(f"class_weights: expected {num_classes} values, got {len(self.class_weights)}")
        # one Dice score per class over the whole batch, then their mean: small classes
        # (cars, clutter) weigh as much as large ones
        self._dice = keras.losses.Dice(reduction=None, axis=(0, 1, 2))
        self._focal = keras.losses.CategoricalFocalCrossentropy(gamma=gamma, reduction=None)

    def call(self, y_true, y_pred):
        one_hot, valid = _one_hot_valid(y_true, y_pred, self.num_classes)
        per_class_dice = self._dice(one_hot, y_pred * valid)
        focal = self._focal(one_hot, y_pred)
        if self.class_weights is None:
            dice = ops.mean(per_class_dice)
            focal = ops.sum(focal) / ops.maximum(ops.sum(valid), 1.0)
        else:
            weights = ops.convert_to_tensor(self.class_weights, dtype=y_pred.dtype)
            dice = ops.sum(per_class_dice * weights) / ops.sum(weights)
            pixel_weights = ops.sum(one_hot * weights, axis=-1)  # 0 on ignored pixels
            focal = ops.sum(focal * pixel_weights) / ops.maximum(ops.sum(pixel_weights), 1e-6)
        total = self.dice_weight * dice + self.focal_weight * focal
        # a batch-level value, handed back once per sample: Keras then averages it as usual
        # and, under tf.distribute, scales it for summing gradients over replicas (a bare
        # scalar would skip that scaling and double the gradients on two replicas)
        return ops.broadcast_to(total, ops.shape(y_pred)[:1])

    def get_config(self) -> dict:
        return {**super().get_config(), "num_classes": self.num_classes, "dice_weight": self.dice_weight,
                "focal_weight": self.focal_weight, "gamma": self.gamma, "class_weights": self.class_weights}


def median_frequency_weights(pixel_counts: list[int]) -> list[float]:
    """Median-frequency balancing (Eigen & Fergus 2015): ``median(freq) / freq`` per class.

    Rare classes (cars, clutter) get weights above 1, dominant ones (impervious surfaces,
    buildings) below 1. A class absent from the counts gets weight 0: it has no pixels
    to weigh and its Dice score is meaningless.
    """
    counts = [float(c) for c in pixel_counts]
    total = sum(counts)
    if total <= 0:
        raise ValueError("median_frequency_weights: no labelled pixels to count")
    present = sorted(c / total for c in counts if c > 0)
    middle = len(present) // 2
    median = present[middle] if len(present) % 2 else (present[middle - 1] + present[middle]) / 2
    return [median / (c / total) if c > 0 else 0.0 for c in counts]


@keras.saving.register_keras_serializable(package="aerialseg")
class MaskedAccuracy(keras.metrics.SparseCategoricalAccuracy):
    """Pixel accuracy that skips ignored pixels."""

    def __init__(self, name: str = "accuracy", **kwargs):
        super().__init__(name=name, **kwargs)

    def update_state(self, y_true, y_pred, sample_weight=None):
        labels = ops.cast(y_true, "int32")
        valid = ops.cast(ops.not_equal(labels, IGNORE_INDEX), "float32")
        return super().update_state(ops.where(labels == IGNORE_INDEX, 0, labels), y_pred, valid)


@keras.saving.register_keras_serializable(package="aerialseg")
class JaccardCoefficient(keras.metrics.Metric):
    """The seed's "Jaccard coefficient": one soft IoU over all pixels and classes at once.

    ``(sum(t * p) + 1) / (sum(t) + sum(p) - sum(t * p) + 1)`` on one-hot targets ``t`` and
    probabilities ``p``, as in the notebook; sums accumulate over the epoch instead of
    averaging per-batch ratios. Kept only to compare with the seed's table: it is not the
    per-class IoU that the Potsdam literature reports (see MeanIoU and evaluation).
    """

    def __init__(self, num_classes: int, name: str = "jaccard", **kwargs):
        super().__init__(name=name, **kwargs)
        self.num_classes = num_classes
        self.intersection = self.add_variable(shape=(), initializer="zeros", name="intersection")
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")

    def update_state(self, y_true, y_pred, sample_weight=None):
        one_hot, valid = _one_hot_valid(y_true, y_pred, self.num_classes)
        probs = ops.cast(y_pred, "float32") * ops.cast(valid, "float32")
        one_hot = ops.cast(one_hot, "float32")
        self.intersection.assign_add(ops.sum(one_hot * probs))
        self.total.assign_add(ops.sum(one_hot) + ops.sum(probs))

    def result(self):
        return (self.intersection + 1.0) / (self.total - self.intersection + 1.0)

    def reset_state(self):
        self.intersection.assign(0.0)
        self.total.assign(0.0)

    def get_config(self) -> dict:
        return {**super().get_config(), "num_classes": self.num_classes}


def training_metrics(num_classes: int) -> list[keras.metrics.Metric]:
    """Accuracy, the seed's Jaccard coefficient and the true mean IoU (ignoring 255)."""
    return [
        MaskedAccuracy(),
        JaccardCoefficient(num_classes),
        keras.metrics.MeanIoU(num_classes, name="mean_iou", sparse_y_pred=False, ignore_class=IGNORE_INDEX),
    ]
