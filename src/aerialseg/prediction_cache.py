"""Reuse the predictions of checkpoints that did not change between runs.

Each checkpoint's predictions live in their own folder with a key: the digest of the
model's weights, the prediction settings and the test images. When ``epochs`` grows, the
earlier checkpoints come out of training unchanged, so only the new ones are predicted.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
from pathlib import Path
from typing import Iterator

from aerialseg.io import atomic_dir, read_json, write_json

KEY_FILE = "key.json"


def prediction_key(weights_digest: str, settings: dict, images: dict[str, Path]) -> dict:
    """Everything a checkpoint's predictions depend on."""
    image_digests = {scene: hashlib.sha256(Path(path).read_bytes()).hexdigest() for scene, path in sorted(images.items())}
    return {"weights": weights_digest, "settings": settings, "images": image_digests}


def epoch_folder(root: Path, epoch: int) -> Path:
    """Where the predictions of one checkpoint live."""
    return Path(root) / f"epoch_{epoch:03d}"


def prediction_file(folder: Path, scene: str, kind: str) -> Path:
    """The class map of one test scene in a checkpoint's folder (kind: plain or smooth)."""
    return Path(folder) / f"{scene}_{kind}.png"


def is_current(root: Path, epoch: int, key: dict) -> bool:
    """Whether stored predictions for ``epoch`` were made with exactly ``key``."""
    path = epoch_folder(root, epoch) / KEY_FILE
    if not path.is_file():
        return False
    try:
        return read_json(path) == json.loads(json.dumps(key))
    except ValueError:
        return False


@contextlib.contextmanager
def store(root: Path, epoch: int, key: dict) -> Iterator[Path]:
    """A temporary folder that becomes the epoch's predictions (with their key) on success."""
    with atomic_dir(epoch_folder(root, epoch)) as tmp:
        yield tmp
        write_json(tmp / KEY_FILE, key)


def prune(root: Path, keep: set[int]) -> list[int]:
    """Remove the predictions of checkpoints that no longer exist; return their epochs."""
    removed = []
    for path in sorted(Path(root).glob("epoch_*")):
        try:
            epoch = int(path.name.split("_")[1])
        except (IndexError, ValueError):
            continue
        if epoch not in keep:
            shutil.rmtree(path)
            removed.append(epoch)
    return removed
