"""Reuse the predictions of checkpoints that did not change between runs.

Each checkpoint's predictions live in their own folder with a key: the digest of the
model's weights, the prediction settings, the test images and the predicting code
(docstrings and comments aside). When ``epochs`` grows, the earlier checkpoints come out
of training unchanged, so only the new ones are predicted; when the blending code
changes, everything is predicted again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

from aerialseg.core.atomic import atomic_dir
from aerialseg.core.errors import DataError
from aerialseg.core.io import read_json, write_json
from aerialseg.core.names import PREDICTION_KEY_FILE, list_prediction_folders, prediction_folder


def prediction_key(weights_digest: str, settings: dict, images: dict[str, Path], code_digest: str) -> dict:
    """Everything a checkpoint's predictions depend on."""
    image_digests = {scene: hashlib.sha256(Path(path).read_bytes()).hexdigest()
                     for scene, path in sorted(images.items())}
    return {"weights": weights_digest, "settings": settings, "images": image_digests, "code": code_digest}


def is_current(root: Path, epoch: int, key: dict) -> bool:
    """Whether stored predictions for ``epoch`` were made with exactly ``key``."""
    path = prediction_folder(root, epoch) / PREDICTION_KEY_FILE
    if not path.is_file():
        return False
    try:
        return read_json(path) == json.loads(json.dumps(key))
    except DataError:
        return False


@contextlib.contextmanager
def store(root: Path, epoch: int, key: dict) -> Iterator[Path]:
    """A temporary folder that becomes the epoch's predictions (with their key) on success."""
    with atomic_dir(prediction_folder(root, epoch)) as tmp:
        yield tmp
        write_json(tmp / PREDICTION_KEY_FILE, key)


def prune(root: Path, keep: set[int]) -> list[int]:
    """Remove the predictions of checkpoints that no longer exist; return their epochs."""
    removed = []
    for epoch, path in list_prediction_folders(root).items():
        if epoch not in keep:
            shutil.rmtree(path)
            removed.append(epoch)
    return removed
