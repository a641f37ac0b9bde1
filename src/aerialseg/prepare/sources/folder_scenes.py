"""The scenes of a folder of your own imagery: images paired with their labels, and their split.

``find_scenes`` pairs every image the glob ``data.folder.images`` finds with the label the pattern
``data.folder.labels`` names for it (``labels/{stem}.tif``): by name, never by order, and every
image without a label, every label without an image and every file stem found twice is listed
in one line before anything is written. A CSV manifest (``data.folder.manifest``: ``image,label``
and optionally ``split``) lists the pairs instead, for folders whose names do not pair by a
pattern. ``folder_split`` resolves the split: the params' lists and the manifest's column, then
seeded draws for the rest (``prepare.splitting``). No pixel is read here.
"""

from __future__ import annotations

import csv
import glob
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

from aerialseg.core.config.data_params import FolderParams
from aerialseg.core.config.declarations import scene_id
from aerialseg.core.errors import DataError, ParamsError, listed
from aerialseg.core.scene_split import SPLIT_NAMES, Split
from aerialseg.prepare.splitting import draw_split

MANIFEST_COLUMNS = {"image", "label", "split"}


@dataclass(frozen=True)
class FolderScene:
    """One image of the folder, its scene id (the file stem), its label file and the split a manifest
    gives it (None: not given)."""

    scene: str
    image: Path
    label: Path
    split: str | None = None
    shared_label: bool = False  # the label file is several scenes' (one vector file for all)


def find_scenes(params: FolderParams) -> list[FolderScene]:
    """Every image of the folder with its label, sorted by scene id: listed in ``params.manifest``, or
    found by the ``images`` glob and paired through the ``labels`` pattern. One DataError lists every
    pairing problem (no image found, images without labels, labels without images); a file stem
    found twice is one too."""
    root = Path(params.path)
    if not root.is_dir():
        raise DataError(f"{root}: data.folder.path is not a folder")
    scenes = _manifest_scenes(root, params.manifest) if params.manifest else _paired_scenes(root, params)
    uses = Counter(s.label for s in scenes)
    return sorted((replace(s, shared_label=uses[s.label] > 1) for s in scenes), key=lambda s: s.scene)


def _check_stems(scenes: list[FolderScene]) -> None:
    """Refuse a file stem that cannot be a scene id, and two images with one stem: scene ids name files
    in every stage folder, on file systems that may ignore case."""
    stems: dict[str, Path] = {}
    for scene in scenes:
        try:
            scene_id(str(scene.image), scene.scene)
        except ParamsError as err:
            raise DataError(f"{err}; rename the file (and its label)") from None
        if scene.scene.lower() in stems:
            raise DataError(f"{scene.image}: its file stem {scene.scene!r} is also {stems[scene.scene.lower()]}'s; "
                            "scene ids (file stems, whatever their case) must be unique")
        stems[scene.scene.lower()] = scene.image


def _paired_scenes(root: Path, params: FolderParams) -> list[FolderScene]:
    """The images the glob finds, each with the label the pattern names for it."""
    images = sorted(Path(p) for p in glob.glob(str(root / params.images), recursive=True) if Path(p).is_file())
    if not images:
        raise DataError(f"{root}: no file matches data.folder.images {params.images!r}")
    scenes = [FolderScene(image.stem, image, root / params.labels.format(stem=image.stem)) for image in images]
    _check_stems(scenes)
    unlabelled = [str(s.image.relative_to(root)) for s in scenes if not s.label.is_file()]
    labels = {Path(p) for p in glob.glob(str(root / params.labels.replace("{stem}", "*")), recursive=True)}
    orphans = sorted(str(p.relative_to(root)) for p in labels - {s.label for s in scenes} if p.is_file())
    problems = []
    if unlabelled:
        problems.append(f"{len(unlabelled)} image(s) without a label ({listed(unlabelled)})")
    if orphans:
        problems.append(f"{len(orphans)} label(s) without an image ({listed(orphans)})")
    if problems:
        raise DataError(f"{root}: " + "; ".join(problems) + f" (data.folder.labels {params.labels!r})")
    return scenes


def _manifest_scenes(root: Path, manifest: str) -> list[FolderScene]:
    """The scenes a CSV manifest lists: a header naming ``image``, ``label`` and optionally ``split``
    (train, val, test, or empty: drawn), one scene per row, paths relative to ``root``."""
    path = root / manifest
    if not path.is_file():
        raise DataError(f"{path}: data.folder.manifest not found")
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:  # -sig: a spreadsheet's byte-order mark
            reader = csv.DictReader(handle)
            columns = [c.strip() for c in reader.fieldnames or []]
            rows = [(reader.line_num, {k.strip(): (v or "").strip() for k, v in row.items() if k is not None},
                     list(row.get(None) or [])) for row in reader]  # cells beyond the header's under None
    except (UnicodeDecodeError, csv.Error) as err:
        raise DataError(f"{path}: not a UTF-8 CSV file ({err})") from None
    wanted = {"image", "label"}
    if not wanted <= set(columns) or not set(columns) <= MANIFEST_COLUMNS:
        raise DataError(f"{path}: columns {', '.join(map(repr, columns)) or '(none)'}; a manifest's header is "
                        "image,label and optionally split")
    if not rows:
        raise DataError(f"{path}: lists no scenes")
    scenes, missing = [], []
    for line, row, extra in rows:
        if any(not cell.isprintable() for cell in [*row.values(), *extra]):  # a quoted line break, a tab
            raise DataError(f"{path}, line {line}: a cell holds a line break or a control character "
                            f"({_cells(row, extra)}); a path is one line")
        if extra or not row.get("image") or not row.get("label"):
            raise DataError(f"{path}, line {line}: expected an image and a label path"
                            + (" and a split" if "split" in columns else "") + f", got {_cells(row, extra)}")
        for column in ("image", "label"):
            if row[column].startswith("/") or ".." in Path(row[column]).parts:
                raise DataError(f"{path}, line {line}: {column} {row[column]!r} must be a path under "
                                f"data.folder.path {root} (a dependency of download)")
        split = row.get("split", "").lower() or None
        if split is not None and split not in SPLIT_NAMES:
            raise DataError(f"{path}, line {line}: split {row['split']!r} is not train, val or test (or empty: "
                            "drawn by data.folder.fractions)")
        scene = FolderScene(Path(row["image"]).stem, root / row["image"], root / row["label"], split)
        missing += [str(p.relative_to(root)) for p in (scene.image, scene.label) if not p.is_file()]
        scenes.append(scene)
    _check_stems(scenes)
    if missing:
        raise DataError(f"{path}: {len(missing)} listed file(s) not found under {root} ({listed(missing)})")
    return scenes


def _cells(row: dict[str, str], extra: list[str]) -> str:
    return ", ".join(repr(v) for v in [*row.values(), *extra])


def folder_split(scenes: list[FolderScene], params: FolderParams, exclude: tuple[str, ...], seed: int) -> Split:
    """The split of the folder's scenes (less ``exclude``): as the params' lists and the manifest's
    split column assign them, the rest drawn by ``params.fractions`` (``splitting.draw_split``). One
    line for a listed scene the folder lacks, a scene two places assign differently, an empty split."""
    found = {scene.scene: scene for scene in scenes if scene.scene not in exclude}
    given = params.split.without(exclude)
    missing = [scene for scene in given.all_scenes if scene not in found]
    if missing:
        where = f"data.folder.manifest {params.manifest!r}" if params.manifest else \
            f"data.folder.images {params.images!r}"
        raise DataError(f"{params.path}: no image for scene(s) {listed(missing)} of the split ({where} found "
                        f"{listed(sorted(found))})")
    assigned = {scene: name for name, ids in given.items() for scene in ids}
    for scene in found.values():
        if scene.split is None:
            continue
        if assigned.get(scene.scene, scene.split) != scene.split:
            raise DataError(f"data.folder.{assigned[scene.scene]}: scene {scene.scene} is also in {scene.split} by "
                            f"the manifest {params.manifest}; a scene must belong to one split only")
        assigned[scene.scene] = scene.split
    fractions = {"val": params.fractions.val, "test": params.fractions.test}
    split = draw_split(sorted(found), assigned, fractions, seed)
    split.check_not_empty(lambda name: f"data.folder.{name}", f" among the folder's {len(found)} scene(s) (none "
                          "listed, and data.folder.fractions draws none)")
    return split
