"""Your own imagery: a folder of GeoTIFF orthophotos and their label rasters, paired by name.

``find_scenes`` pairs every image the glob ``data.folder.images`` finds with the label the pattern
``data.folder.labels`` names for it (``labels/{stem}.tif``): by name, never by order, and every
image without a label, every label without an image and every file stem found twice is listed
in one line before anything is written. A CSV manifest (``data.folder.manifest``: ``image,label``
and optionally ``split``) lists the pairs instead, for folders whose names do not pair by a
pattern. ``folder_split`` resolves the split: the params' lists and the manifest's column, then
seeded draws for the rest (``prepare.splitting``). ``collect_scene`` brings one scene into the stage folder
under the source-neutral names (``SceneFiles``): the image's red, green and blue bands as an
uncompressed TIFF with a world file from its transform, and the label on the image's grid — as
it is when it shares the grid or carries no georeference (then it must have the image's size),
else reprojected onto it with nearest-neighbour resampling (``rasterio.warp``). Pixels outside
the image's footprint (nodata, alpha, an internal mask) and outside the label's own extent become
the class table's ignore (its first ignore value for class-index labels, its first ignore colour
for colour labels), so they are never trained or scored as a class. Both label files of a scene
(``label``, ``label_noboundary``) are that one label: own data has no eroded version.

Each scene keeps its own CRS (an image without one takes ``data.crs``): the resized image carries
it in GDAL's ``.aux.xml`` beside it, and every map predicted for the scene is in it. Labels in
class indices go through the class table's ``values``, colour labels through its colours, both
checked exhaustively by ``encode_masks``.
"""

from __future__ import annotations

import csv
import glob
from collections import Counter
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np
from rasterio.enums import MaskFlags

from aerialseg.core.classes import ClassTable
from aerialseg.core.config.data_params import DataParams, FolderParams, VectorParams, is_vector_file
from aerialseg.core.config.declarations import scene_id
from aerialseg.core.errors import DataError, ParamsError
from aerialseg.core.geo.geoio import crs_xml, opened_raster, read_rgb_bands
from aerialseg.core.geo.worldfile import WorldFile, write_world_file
from aerialseg.core.io import copy_file, link_or_copy, sha256_of, write_json, write_label, write_rgb, write_text
from aerialseg.core.names import AUDIT_FILE, SOURCES_FILE, SceneFiles
from aerialseg.core.scene_split import SPLIT_NAMES, Split
from aerialseg.prepare.parallel import map_scenes
from aerialseg.prepare.sources import vector_labels
from aerialseg.prepare.splitting import draw_split

_LISTED = 5  # file names a message lists before it counts the rest
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


def _listed(paths: list[str]) -> str:
    more = f" and {len(paths) - _LISTED} more" if len(paths) > _LISTED else ""
    return ", ".join(paths[:_LISTED]) + more


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
        problems.append(f"{len(unlabelled)} image(s) without a label ({_listed(unlabelled)})")
    if orphans:
        problems.append(f"{len(orphans)} label(s) without an image ({_listed(orphans)})")
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
        raise DataError(f"{path}: {len(missing)} listed file(s) not found under {root} ({_listed(missing)})")
    return scenes


def _cells(row: dict[str, str], extra: list[str]) -> str:
    return ", ".join(repr(v) for v in [*row.values(), *extra])


def folder_split(scenes: list[FolderScene], params: FolderParams, exclude: tuple[str, ...], seed: int) -> Split:
    """The split of the folder's scenes (less ``exclude``): as the params' lists and the manifest's
    split column assign them, the rest drawn by ``params.fractions`` (``splitting.draw_split``). One
    line for a listed scene the folder lacks, a scene two places assign differently, an empty split."""
    found = {scene.scene: scene for scene in scenes if scene.scene not in exclude}
    listed = params.split.without(exclude)
    missing = [scene for scene in listed.all_scenes if scene not in found]
    if missing:
        where = f"data.folder.manifest {params.manifest!r}" if params.manifest else \
            f"data.folder.images {params.images!r}"
        raise DataError(f"{params.path}: no image for scene(s) {_listed(missing)} of the split ({where} found "
                        f"{_listed(sorted(found))})")
    assigned = {scene: name for name, ids in listed.items() for scene in ids}
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


def _ignore_of(classes: ClassTable, label: np.ndarray, path: Path) -> np.ndarray:
    """The label value (one band) or colour (three) that means ignore in ``classes``."""
    if label.ndim == 2 and classes.ignore_values:
        return np.array(classes.ignore_values[0], label.dtype)
    if label.ndim == 3 and classes.ignore_colours:
        return np.array(classes.ignore_colours[0], label.dtype)
    kind = "classes.ignore.values" if label.ndim == 2 else "classes.ignore.colours"
    raise DataError(f"{path}: has pixels outside its image's footprint or its own extent, which must become "
                    f"ignore; declare one in {kind}")


def _label_on_image_grid(scene: FolderScene, image, classes: ClassTable) -> np.ndarray:
    """The scene's label as (H, W) values or (H, W, 3) colours on the image's grid; ignore where it
    does not reach (outside its extent, when it is reprojected)."""
    from affine import Affine
    from rasterio.warp import Resampling, reproject

    with opened_raster(scene.label, "label raster") as src:
        if src.count not in (1, 3):
            raise DataError(f"{scene.label}: a label raster has 1 band (class indices) or 3 (class colours), "
                            f"not {src.count}")
        georeferenced = src.transform != Affine.identity()
        same_grid = (src.width, src.height) == (image.width, image.height) and (
            not georeferenced or (src.transform.almost_equals(image.transform)
                                  and (src.crs is None or image.crs is None or src.crs == image.crs)))
        if same_grid:
            data = src.read()
            return data[0] if src.count == 1 else np.ascontiguousarray(data.transpose(1, 2, 0))
        if not georeferenced:
            raise DataError(f"{scene.label}: {src.width}x{src.height} px without a georeference, but its image "
                            f"{scene.image.name} is {image.width}x{image.height} px; a label without one must "
                            "have its image's size")
        source = src.read()
        out = np.zeros((src.count, image.height, image.width), source.dtype)
        reached = np.zeros((image.height, image.width), np.uint8)
        crs = src.crs or image.crs
        for band in range(src.count):
            reproject(source[band], out[band], src_transform=src.transform, src_crs=crs,
                      dst_transform=image.transform, dst_crs=image.crs or crs, resampling=Resampling.nearest)
        reproject(np.ones((src.height, src.width), np.uint8), reached, src_transform=src.transform, src_crs=crs,
                  dst_transform=image.transform, dst_crs=image.crs or crs, resampling=Resampling.nearest)
    label = out[0] if src.count == 1 else np.ascontiguousarray(out.transpose(1, 2, 0))
    if not reached.all():
        label[reached == 0] = _ignore_of(classes, label, scene.label)
    return label


def _labelled(label: np.ndarray, classes: ClassTable) -> np.ndarray:
    """Where a label says a class: not one of the table's ignore values (index labels) or colours."""
    if label.ndim == 2:  # a table over every value of the label's type (np.isin sorts 36 M values)
        labelled = np.ones(np.iinfo(label.dtype).max + 1, bool)
        labelled[[v for v in classes.ignore_values if v < len(labelled)]] = False
        return labelled[label]
    ignored = np.zeros(label.shape[:2], bool)
    for colour in classes.ignore_colours:
        ignored |= (label == np.array(colour, label.dtype)).all(-1)
    return ~ignored


@dataclass(frozen=True)
class Collecting:
    """What bringing a scene in needs besides the scene: the class table, the label coverage a scene
    must reach, how vector labels are burnt (and the area of interest's file), and the CRS of an image
    that names none (``data.crs``)."""

    classes: ClassTable
    min_label_coverage: float
    vector: VectorParams
    aoi: Path | None = None
    crs: str | None = None


def check_vector_labels(scenes: list[FolderScene], settings: Collecting) -> None:
    """Read and check each vector file that several scenes share, once, before any scene is collected
    (a file of one scene is checked as it is collected)."""
    shared = sorted({s.label for s in scenes if s.shared_label and is_vector_file(str(s.label))})
    for path in shared:
        vector_labels.read_layer(path, settings.vector, settings.classes)
    if settings.aoi is not None:
        vector_labels.read_area(settings.aoi)


def _vector_label(scene: FolderScene, image, settings: Collecting) -> tuple[np.ndarray, dict, str]:
    """The scene's vector labels burnt on the image's grid, the burn's counts, and where the layer lies
    against the scene (both bounds in the scene's CRS), for a coverage message."""
    from rasterio.crs import CRS

    crs = image.crs or (CRS.from_user_input(settings.crs) if settings.crs else None)
    if crs is None:
        raise DataError(f"{scene.image}: has no CRS, so its vector labels cannot be placed on it; set data.crs")
    grid = vector_labels.Grid(image.transform, image.width, image.height, crs)
    bbox = vector_labels.layer_bbox(scene.label, settings.vector, grid) if scene.shared_label else None
    layer = vector_labels.read_layer(scene.label, settings.vector, settings.classes, bbox=bbox)
    aoi = vector_labels.read_area(settings.aoi) if settings.aoi is not None else None
    classes = settings.classes
    ignore = classes.ignore_values[0] if classes.ignore_values else None
    if ignore is None and (settings.vector.background is None or aoi is not None):
        raise DataError(f"{scene.label}: vector labels leave pixels outside every feature, which must become ignore; "
                        "declare a value for it in classes.ignore.values (e.g. [255]), or name the class of those "
                        "pixels in data.folder.vector.background")
    label, counts = vector_labels.rasterise(layer, grid, settings.vector, classes, 255 if ignore is None else ignore,
                                            aoi)
    left, bottom, right, top = vector_labels.bounds_in(layer, grid)
    t = image.transform
    xs, ys = sorted((t.c, t.c + t.a * image.width)), sorted((t.f, t.f + t.e * image.height))
    where = (f"the layer spans ({left:.1f}, {bottom:.1f}, {right:.1f}, {top:.1f}) and the scene ({xs[0]:.1f}, "
             f"{ys[0]:.1f}, {xs[1]:.1f}, {ys[1]:.1f}), both in {crs.to_string()} (left, bottom, right, top): is "
             f"{scene.label.name}'s CRS ({layer.crs.to_string()}) right, or are its axes swapped?")
    return label, counts, where


def collect_scene(scene: FolderScene, destination: Path, settings: Collecting) -> tuple[dict[str, str], dict]:
    """Bring one scene into ``destination`` (``SceneFiles``); return where each file came from and the
    scene's audit (its CRS, ground sample distance, nodata share, the share of its footprint its
    labels cover, and its image and label files' paths, sizes and SHA-256: which files trained a
    model). A GeoTIFF that holds all it says (no sidecar files) is copied byte for byte; any other
    image is decoded into a plain RGB TIFF. A scene whose labels cover less than
    ``min_label_coverage`` of its footprint, the usual sign of a label that is not its image's or of
    a wrong georeference, is a DataError."""
    files = SceneFiles(destination, scene.scene)
    classes, min_label_coverage = settings.classes, settings.min_label_coverage
    with opened_raster(scene.image, "raster") as image:
        if image.count < 3 or image.dtypes[0] != "uint8":
            raise DataError(f"{scene.image}: {image.count} band(s) of {image.dtypes[0]}; a model learns from 8-bit "
                            "red, green, blue (bands 1-3)")
        if image.transform.is_identity:
            raise DataError(f"{scene.image}: no georeference; a scene needs one for its ground sample distance")
        if image.driver == "GTiff" and len(image.files) == 1:  # all it says is in the file: its bytes will do
            copy_file(scene.image, files.image)
        else:  # another format, or a GeoTIFF leaning on sidecar files (.msk, .aux.xml, .tfw): its pixels
            write_rgb(files.image, read_rgb_bands(scene.image), compress=False)
        # no nodata, alpha or mask: every pixel is inside (GDAL's all-valid mask, not read)
        whole = all(flags == [MaskFlags.all_valid] for flags in image.mask_flag_enums)
        footprint = np.ones((image.height, image.width), bool) if whole else image.dataset_mask() > 0
        burn: dict[str, int] | None = None
        if is_vector_file(str(scene.label)):
            label, burn, where = _vector_label(scene, image, settings)
        else:
            label = _label_on_image_grid(scene, image, classes)
        t, own_crs = image.transform, image.crs
    inside = footprint.size if whole else int(footprint.sum())
    labelled = _labelled(label, classes) if whole else _labelled(label, classes) & footprint
    coverage = float(labelled.sum() / inside) if inside else 0.0
    if coverage < min_label_coverage and burn is not None:
        raise DataError(f"{scene.label}: its features cover {coverage:.1%} of scene {scene.scene}'s footprint, under "
                        f"data.folder.min_label_coverage {min_label_coverage:.0%}; {where}")
    if coverage < min_label_coverage:
        where = f"{own_crs.to_string() if own_crs else 'no CRS'}, origin ({t.c:.2f}, {t.f:.2f})"
        raise DataError(f"{scene.label}: its labels cover {coverage:.1%} of scene {scene.scene}'s footprint "
                        f"(image {where}), under data.folder.min_label_coverage {min_label_coverage:.0%}: is it "
                        "this image's label, and are its georeference and CRS right?")
    if not whole and not footprint.all():
        label[~footprint] = _ignore_of(classes, label, scene.image)
    write_world_file(files.world, WorldFile(t.a, t.d, t.b, t.e, t.c + t.a / 2 + t.b / 2, t.f + t.d / 2 + t.e / 2))
    write_label(files.label, label, compress=False)
    link_or_copy(files.label, files.label_noboundary)  # own data has one label: the same file twice
    origins = {files.image.name: str(scene.image), files.world.name: f"{scene.image} (its transform)",
               files.label.name: str(scene.label), files.label_noboundary.name: str(scene.label)}
    if own_crs is not None:  # each scene keeps its CRS; one without takes data.crs
        write_text(files.srs, crs_xml(own_crs))
        origins[files.srs.name] = f"{scene.image} (its CRS)"
    if burn is not None:
        origins[files.label.name] = origins[files.label_noboundary.name] = f"{scene.label} (burnt on its grid)"
    audit = {"crs": own_crs.to_string() if own_crs else None, "pixel_size": [abs(t.a), abs(t.e)],
             "size": [int(footprint.shape[1]), int(footprint.shape[0])],
             "nodata_share": round(1 - inside / footprint.size, 6), "label_coverage": round(coverage, 6),
             "files": {kind: {"path": str(path), "bytes": path.stat().st_size, "sha256": sha256_of(path)}
                       for kind, path in (("image", scene.image), ("label", scene.label))}}
    if burn is not None:
        audit["vector"] = burn
    return origins, audit


def collect_folder(data: DataParams, classes: ClassTable, seed: int, jobs: int | None, destination: Path) -> Split:
    """Bring the folder's scenes into ``destination`` in parallel (``jobs``), with ``SOURCES_FILE`` (where
    each file came from, for later errors) and ``AUDIT_FILE`` (each scene's audit, for the data
    report); return the resolved split. Every check that needs no pixel (pairing, the split, a vector
    file all scenes share) comes first, so a mistake there costs no scene's work."""
    own = data.folder
    found = find_scenes(own)
    split = folder_split(found, own, data.exclude, seed)
    settings = Collecting(classes, own.min_label_coverage, own.vector,
                          Path(own.path) / own.vector.aoi if own.vector.aoi else None, data.crs)
    check_vector_labels(found, settings)
    by_id = {scene.scene: scene for scene in found}
    collected, _ = map_scenes(partial(collect_scene, destination=destination, settings=settings),
                              [by_id[s] for s in split.all_scenes], jobs, "download")
    write_json(destination / SOURCES_FILE, {name: at for origins, _ in collected for name, at in origins.items()})
    write_json(destination / AUDIT_FILE, {s: audit for s, (_, audit) in zip(split.all_scenes, collected, strict=True)})
    return split
