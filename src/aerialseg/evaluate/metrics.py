"""Evaluation metrics from one confusion matrix, as the Potsdam literature reports them.

A confusion matrix is accumulated scene by scene (never all predictions in memory) and
every score is derived from it: per-class IoU, F1, precision and recall keyed by the class
table's names, overall accuracy, and means over all N classes (``miou_N``) and, when the
table leaves k classes out of its headline (ISPRS: clutter), over the other N-k
(``miou_{N-k}``): the two conventions found in papers. A class absent from both labels
and predictions has no defined score; it is reported as NaN in the per-class values and
left out of the means.
"""

from __future__ import annotations

import numpy as np

from aerialseg.core.classes import IGNORE_INDEX, ClassTable


def confusion(label: np.ndarray, prediction: np.ndarray, num_classes: int) -> np.ndarray:
    """Confusion matrix (rows: label, columns: prediction), int64; ignored pixels skipped."""
    if label.shape != prediction.shape:
        raise ValueError(f"label {label.shape} and prediction {prediction.shape} differ in shape")
    valid = label != IGNORE_INDEX
    codes = label[valid].astype(np.int64) * num_classes + prediction[valid].astype(np.int64)
    return np.bincount(codes, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    out = np.full(numerator.shape, np.nan)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def _mean(values: np.ndarray) -> float:
    present = values[~np.isnan(values)]
    return float(present.mean()) if present.size else float("nan")


def scores(cm: np.ndarray, classes: ClassTable) -> dict:
    """All evaluation scores of a confusion matrix of the table's classes, as a JSON-ready dict with
    fixed keys.

    Per-class values are dicts keyed by class name (DVC drops lists from metrics files).
    """
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    labelled = cm.sum(1)
    predicted = cm.sum(0)
    present = (labelled + predicted) > 0
    iou = np.where(present, _ratio(tp, labelled + predicted - tp), np.nan)
    precision = np.where(present, np.where(predicted > 0, _ratio(tp, predicted), 0.0), np.nan)
    recall = np.where(present, np.where(labelled > 0, _ratio(tp, labelled), 0.0), np.nan)
    f1 = np.where(present, _ratio(2 * tp, labelled + predicted), np.nan)
    if len(tp) != len(classes):
        raise ValueError(f"a confusion matrix of {len(tp)} classes for a table of {len(classes)}")
    headline = list(classes.headline_classes)
    means = {len(tp): np.arange(len(tp))}
    if len(headline) < len(tp):
        means[len(headline)] = np.array(headline)
    total = cm.sum()

    def per_class(values: np.ndarray) -> dict:
        return {name: _json_float(v) for name, v in zip(classes.names, values, strict=True)}

    return {
        "overall_accuracy": _json_float(tp.sum() / total if total else float("nan")),
        **{f"miou_{n}": _json_float(_mean(iou[kept])) for n, kept in means.items()},
        **{f"mf1_{n}": _json_float(_mean(f1[kept])) for n, kept in means.items()},
        "iou": per_class(iou),
        "f1": per_class(f1),
        "precision": per_class(precision),
        "recall": per_class(recall),
        "pixels": int(total),
    }


def _json_float(value: float) -> float | None:
    """Round for stable files; NaN becomes null so the JSON stays standard."""
    value = float(value)
    return None if np.isnan(value) else round(value, 6)
