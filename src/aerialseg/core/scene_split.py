"""The split of scenes into train, val and test, and its file beside the scenes.

``download`` resolves the split once — the params' lists for the built-in sources; for a folder of
one's own the lists, a manifest's split column and seeded fractions — and writes it as
``SPLIT_FILE`` (``{"train": [...], "val": [...], "test": [...]}``) in ``data/raw``; ``resize`` carries
it into ``data/resized``, which every later stage reads. So which scenes are tested is a fact of the
data, read from one file, and a stage never re-derives it from params that may say less (fractions).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aerialseg.core.errors import DataError
from aerialseg.core.io import read_json, write_json
from aerialseg.core.names import SPLIT_FILE

SPLIT_NAMES = ("train", "val", "test")


@dataclass(frozen=True)
class Split:
    """Scene ids of each split; a scene belongs to exactly one split."""

    train: tuple[str, ...]
    val: tuple[str, ...]
    test: tuple[str, ...]

    def items(self) -> list[tuple[str, tuple[str, ...]]]:
        """(split name, scene ids) pairs in a fixed order."""
        return [("train", self.train), ("val", self.val), ("test", self.test)]

    @property
    def all_scenes(self) -> tuple[str, ...]:
        """Every scene id, train first."""
        return self.train + self.val + self.test

    def without(self, excluded: tuple[str, ...]) -> Split:
        """The same split with ``excluded`` scenes removed everywhere."""
        def keep(ids: tuple[str, ...]) -> tuple[str, ...]:
            return tuple(i for i in ids if i not in excluded)
        return Split(keep(self.train), keep(self.val), keep(self.test))

    def check(self, key: Callable[[str], str], error: type[Exception] = DataError) -> None:
        """Refuse a scene in two splits (its tiles would leak from training into testing); ``key(split)``
        names where a split comes from in the message."""
        seen: dict[str, tuple[str, str]] = {}  # by id in lower case: ids name files, and some file systems ignore case
        for name, ids in self.items():
            for scene in ids:
                if scene.lower() in seen:
                    other, where = seen[scene.lower()]
                    also = f"is also in {where}" if other == scene else f"is {other} in {where}"
                    raise error(f"{key(name)}: scene {scene} {also}; a scene must belong to one split only")
                seen[scene.lower()] = scene, key(name)

    def check_not_empty(self, key: Callable[[str], str], why: str = "") -> None:
        """Refuse an empty split: nothing to train on, to stop on, or to score."""
        for name, ids in self.items():
            if not ids:
                raise DataError(f"{key(name)}: no scenes{why}")


def write_split(folder: str | Path, split: Split) -> None:
    """Write ``split`` as ``SPLIT_FILE`` in ``folder``."""
    write_json(Path(folder) / SPLIT_FILE, {name: list(ids) for name, ids in split.items()})


def read_split(folder: str | Path) -> Split:
    """The split ``download`` resolved, from ``SPLIT_FILE`` in ``folder``; a DataError naming the file
    when it is missing (a stage folder of an older version: run ``dvc repro`` again) or malformed."""
    path = Path(folder) / SPLIT_FILE
    if not path.is_file():
        raise DataError(f"{path}: missing; it is written by the download stage (run dvc repro)")
    raw = read_json(path)
    if not isinstance(raw, dict) or set(raw) != set(SPLIT_NAMES) or not all(
            isinstance(ids, list) and all(isinstance(i, str) for i in ids) for ids in raw.values()):
        raise DataError(f"{path}: not a split (expected lists of scene ids under {', '.join(SPLIT_NAMES)})")
    return Split(*(tuple(raw[name]) for name in SPLIT_NAMES))
