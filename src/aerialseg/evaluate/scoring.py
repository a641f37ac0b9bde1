"""Score predicted class maps against test labels, and the colour-only baseline.

Every score comes from one confusion matrix per (prediction kind, label kind), accumulated
scene by scene. Two label conventions are reported side by side, each named in its key:
``full`` (every pixel) and ``noboundary`` (ISPRS's eroded-boundary labels, boundary
pixels ignored).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from aerialseg.core.classes import IGNORE_INDEX, ClassTable
from aerialseg.core.io import read_index_mask
from aerialseg.core.names import MaskFiles
from aerialseg.evaluate.metrics import confusion, scores


def label_masks(masks: Path, scene_id: str) -> dict[str, np.ndarray]:
    """Both label conventions of a scene: ``full`` and ``noboundary``."""
    files = MaskFiles(masks, scene_id)
    return {"full": read_index_mask(files.full), "noboundary": read_index_mask(files.noboundary)}


def confusion_matrices(predictions: dict[str, dict[str, np.ndarray]], labels: dict[str, dict[str, np.ndarray]],
                       num_classes: int) -> dict[str, dict[str, np.ndarray]]:
    """Sum confusion matrices over scenes: result[prediction kind][label kind].

    ``predictions[scene][kind]`` and ``labels[scene][label kind]`` are class maps; the
    prediction kinds are whatever the caller passes (e.g. plain and smooth).
    """
    total: dict[str, dict[str, np.ndarray]] = {}
    for scene, preds in predictions.items():
        for kind, prediction in preds.items():
            for label_kind, label in labels[scene].items():
                by_label = total.setdefault(kind, {})
                by_label[label_kind] = by_label.get(label_kind, 0) + confusion(label, prediction, num_classes)
    return total


def score_tree(matrices: dict[str, dict[str, np.ndarray]], classes: ClassTable) -> dict:
    """Scores for every (prediction kind, label kind) pair, nested in that order."""
    return {kind: {lk: scores(cm, classes) for lk, cm in by_label.items()} for kind, by_label in matrices.items()}


def _logged_metrics(row: pd.Series, prefix: str) -> dict[str, float]:
    """The seed's four training metrics of one history row (``val_`` for validation), rounded."""
    names = ("loss", "accuracy", "jaccard", "mean_iou")
    return {name: round(float(row[prefix + name]), 6) for name in names if prefix + name in row}


def training_values(history_csv: Path, epochs: list[int]) -> dict[int, dict]:
    """Training and validation values logged at each of ``epochs`` (1-based)."""
    history = pd.read_csv(history_csv)
    out = {}
    for epoch in epochs:
        row = history.loc[history["epoch"] == epoch - 1]
        if row.empty:
            continue
        logged = row.iloc[0]
        out[epoch] = {"train": _logged_metrics(logged, ""), "val": _logged_metrics(logged, "val_")}
    return out


def sample_pixels(images: list[np.ndarray], masks: list[np.ndarray], count: int, seed: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """A seeded sample of (band values, class) pairs from labelled pixels of several scenes."""
    colours = np.concatenate([im.reshape(-1, im.shape[-1]) for im in images])
    classes = np.concatenate([m.ravel() for m in masks])
    valid = np.flatnonzero(classes != IGNORE_INDEX)
    rng = np.random.default_rng(seed)
    pick = rng.choice(valid, size=min(count, valid.size), replace=False)
    return colours[pick], classes[pick]


def colour_baseline(train_images: list[np.ndarray], train_masks: list[np.ndarray], seed: int, pixels: int):
    """A per-pixel colour classifier (gradient-boosted trees on the bands' values) fit on training scenes.

    It shows how much of the task colour alone solves: the gap to the U-Net is what
    shape and context contribute.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier

    x, y = sample_pixels(train_images, train_masks, pixels, seed)
    classifier = HistGradientBoostingClassifier(max_iter=100, random_state=seed)
    return classifier.fit(x, y)


def predict_colours(classifier, image: np.ndarray) -> np.ndarray:
    """Class map of an image (H, W, bands) from the colour classifier."""
    return classifier.predict(image.reshape(-1, image.shape[-1])).reshape(image.shape[:2]).astype(np.uint8)
