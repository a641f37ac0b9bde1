"""Splitting scenes into train, val and test, and checking that the split can be learned and scored.

``draw_split`` completes a split some scenes of which are assigned (the params' lists, a manifest's
split column): every other scene is drawn at random — from a generator seeded by ``seed``, over the
scene ids in sorted order, so the same folder and seed give the same split on any machine — into
val and test by their fractions of all scenes (at least one scene for a fraction above zero), the
rest into train. Only a split nothing assigns is drawn into: a user who lists the test scenes (a
held-out district, say) gets a random val carved from the rest, not extra test scenes. Whole scenes
only, never patches: overlapping tiles of one scene on both sides would leak.

``check_split_classes`` refuses a split that scores a class the training scenes never show (the
model cannot learn it, and its IoU would say nothing about the model), and names the classes whose
training share is under a tenth of their scored share (learnable, but from few examples).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from aerialseg.core.errors import DataError, listed
from aerialseg.core.scene_split import SPLIT_NAMES, Split

RARE_RATIO = 0.1  # a class whose share of training pixels is under this fraction of its scored share is rare


def draw_split(scenes: Sequence[str], assigned: Mapping[str, str], fractions: Mapping[str, float],
               seed: int) -> Split:
    """``scenes`` split: those in ``assigned`` (scene -> split name) as assigned, the others drawn
    for each of val and test that nothing assigns, by ``fractions`` (split name -> share of all
    scenes), the rest train."""
    unknown = sorted(set(assigned) - set(scenes))
    if unknown:
        raise ValueError(f"assigned scenes that are not scenes: {unknown}")
    members: dict[str, list[str]] = {name: [s for s in sorted(scenes) if assigned.get(s) == name]
                                     for name in SPLIT_NAMES}
    free = [s for s in sorted(scenes) if s not in assigned]
    order = [free[i] for i in np.random.default_rng(seed).permutation(len(free))]
    for name in ("test", "val"):
        share = fractions.get(name, 0.0)
        if members[name] or share <= 0:
            continue
        wanted = max(1, round(share * len(scenes)))
        members[name], order = sorted(order[:wanted]), order[wanted:]
    members["train"] = sorted(members["train"] + order)
    return Split(*(tuple(members[name]) for name in SPLIT_NAMES))


def check_split_classes(split: Split, class_pixels: Mapping[str, Sequence[int]],
                        names: Sequence[str]) -> list[str]:
    """Refuse (DataError) a class with pixels in val or test scenes and none in a training scene;
    return a warning for each class whose share of the training pixels is under ``RARE_RATIO`` of
    its share of the scored (val and test) pixels. ``class_pixels``: per scene, pixels per class."""
    def totals(ids: tuple[str, ...]) -> np.ndarray:
        counts = np.zeros(len(names), np.int64)
        for scene in ids:
            counts += np.asarray(class_pixels[scene][: len(names)], np.int64)
        return counts

    train, scored = totals(split.train), totals(split.val + split.test)
    absent = [(i, name) for i, name in enumerate(names) if train[i] == 0 and scored[i] > 0]
    if absent:
        where = "; ".join(f"{name}: {int(scored[i])} px in {_holders(split, class_pixels, i)}" for i, name in absent)
        raise DataError(f"the split scores classes no training scene shows ({where}); move a scene that has them "
                        "into train (data.<source>.train, a manifest's split column) or drop the class")
    warnings = []
    train_share, scored_share = train / max(int(train.sum()), 1), scored / max(int(scored.sum()), 1)
    for i, name in enumerate(names):
        if scored[i] and train_share[i] < RARE_RATIO * scored_share[i]:
            warnings.append(f"class {name} is rare in training: {train_share[i]:.3%} of training pixels, "
                            f"{scored_share[i]:.3%} of val/test pixels; its scores rest on few examples")
    return warnings


def _holders(split: Split, class_pixels: Mapping[str, Sequence[int]], index: int) -> str:
    """The val/test scenes holding class ``index``, named (the first few)."""
    held = [f"{name} scene {scene}" for name, ids in split.items() if name != "train"
            for scene in ids if class_pixels[scene][index]]
    return listed(held)
