"""Checkpoints: written atomically after chosen epochs, with bytes that depend on the weights alone.

DVC's hash of the models folder then says whether a retrained run really reproduced the
previous one: Keras' save time and the memory addresses it uses as shared-object ids are
taken out of every archive.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from aerialseg.core.atomic import atomic_path
from aerialseg.core.framework import keras
from aerialseg.core.names import checkpoint_path


class PeriodicCheckpoint(keras.callbacks.Callback):
    """Save the model after the given (1-based) epochs, atomically."""

    def __init__(self, folder: Path, epochs: list[int]) -> None:
        super().__init__()
        self.folder = Path(folder)
        self.epochs = set(epochs)

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        if epoch + 1 in self.epochs:
            save_checkpoint(self.model, self.folder, epoch + 1)


def save_checkpoint(model: keras.Model, folder: Path, epoch: int) -> None:
    """Write the checkpoint of ``epoch`` so that it appears whole or not at all.

    The same weights always give the same bytes, so DVC's hash of the models folder says
    whether a retrained run really reproduced the previous one.
    """
    with atomic_path(checkpoint_path(folder, epoch)) as tmp:
        model.save(tmp)
        _make_reproducible(tmp)


def _make_reproducible(path: Path) -> None:
    """Rewrite a ``.keras`` archive without what changes from save to save of the same model.

    That is the save time (archive entry times, ``date_saved``) and the memory addresses
    Keras uses as ids of shared objects in ``config.json``, renumbered in order of appearance.
    """
    with zipfile.ZipFile(path) as archive:
        entries = [(info, archive.read(info)) for info in archive.infolist()]
    with zipfile.ZipFile(path, "w") as archive:
        for info, data in entries:
            if info.filename == "metadata.json":
                metadata = json.loads(data)
                metadata.pop("date_saved", None)
                data = json.dumps(metadata).encode()
            elif info.filename == "config.json":
                data = json.dumps(_renumber_shared_objects(json.loads(data), {})).encode()
            fixed = zipfile.ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0))
            fixed.compress_type, fixed.external_attr = info.compress_type, info.external_attr
            archive.writestr(fixed, data)


def _renumber_shared_objects(node, ids: dict):
    """``node`` with every ``shared_object_id`` replaced by 1, 2, ... in order of first appearance."""
    if isinstance(node, dict):
        return {key: (ids.setdefault(value, len(ids) + 1) if key == "shared_object_id"
                      else _renumber_shared_objects(value, ids)) for key, value in node.items()}
    if isinstance(node, list):
        return [_renumber_shared_objects(value, ids) for value in node]
    return node
