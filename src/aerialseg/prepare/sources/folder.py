"""Your own imagery: a folder of GeoTIFF orthophotos and their label rasters, paired by name.

``find_scenes`` pairs every image the glob ``data.folder.images`` finds with the label the pattern
``data.folder.labels`` names for it (``labels/{stem}.tif``): by name, never by order, and every
image without a label, every label without an image and every file stem found twice is listed
in one line before anything is written. ``collect_scene`` brings one scene into the stage folder
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

import glob
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aerialseg.core.classes import ClassTable
from aerialseg.core.config.data_params import FolderParams
from aerialseg.core.errors import DataError
from aerialseg.core.geo.geoio import crs_xml, opened_raster
from aerialseg.core.geo.worldfile import WorldFile, write_world_file
from aerialseg.core.io import write_label, write_rgb, write_text
from aerialseg.core.names import SceneFiles

_LISTED = 5  # file names a message lists before it counts the rest


@dataclass(frozen=True)
class FolderScene:
    """One image of the folder, its scene id (the file stem) and its label file."""

    scene: str
    image: Path
    label: Path


def _listed(paths: list[str]) -> str:
    more = f" and {len(paths) - _LISTED} more" if len(paths) > _LISTED else ""
    return ", ".join(paths[:_LISTED]) + more


def find_scenes(params: FolderParams) -> list[FolderScene]:
    """Every image of the folder with its label, sorted by scene id; one DataError listing every
    pairing problem (no image found, images without labels, labels without images, a stem twice)."""
    root = Path(params.path)
    if not root.is_dir():
        raise DataError(f"{root}: data.folder.path is not a folder")
    images = sorted(Path(p) for p in glob.glob(str(root / params.images), recursive=True) if Path(p).is_file())
    if not images:
        raise DataError(f"{root}: no file matches data.folder.images {params.images!r}")
    stems: dict[str, Path] = {}
    for image in images:
        if image.stem.lower() in stems:
            raise DataError(f"{image}: its file stem {image.stem!r} is also {stems[image.stem.lower()]}'s; scene ids "
                            "(file stems, whatever their case) must be unique")
        stems[image.stem.lower()] = image
    scenes = [FolderScene(image.stem, image, root / params.labels.format(stem=image.stem)) for image in images]
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
    return sorted(scenes, key=lambda s: s.scene)


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
    if label.ndim == 2:
        return ~np.isin(label, classes.ignore_values)
    ignored = np.zeros(label.shape[:2], bool)
    for colour in classes.ignore_colours:
        ignored |= (label == np.array(colour, label.dtype)).all(-1)
    return ~ignored


def collect_scene(scene: FolderScene, destination: Path, classes: ClassTable,
                  min_label_coverage: float) -> tuple[dict[str, str], dict]:
    """Bring one scene into ``destination`` (``SceneFiles``); return where each file came from and the
    scene's audit (its CRS, ground sample distance, nodata share and the share of its footprint its
    labels cover). A scene whose labels cover less than ``min_label_coverage`` of its footprint, the
    usual sign of a label that is not its image's or of a wrong georeference, is a DataError."""
    files = SceneFiles(destination, scene.scene)
    with opened_raster(scene.image, "raster") as image:
        if image.count < 3 or image.dtypes[0] != "uint8":
            raise DataError(f"{scene.image}: {image.count} band(s) of {image.dtypes[0]}; a model learns from 8-bit "
                            "red, green, blue (bands 1-3)")
        if image.transform.is_identity:
            raise DataError(f"{scene.image}: no georeference; a scene needs one for its ground sample distance")
        rgb = np.ascontiguousarray(image.read((1, 2, 3)).transpose(1, 2, 0))
        footprint = image.dataset_mask() > 0
        label = _label_on_image_grid(scene, image, classes)
        t, own_crs = image.transform, image.crs
    inside = int(footprint.sum())
    coverage = float((_labelled(label, classes) & footprint).sum() / inside) if inside else 0.0
    if coverage < min_label_coverage:
        where = f"{own_crs.to_string() if own_crs else 'no CRS'}, origin ({t.c:.2f}, {t.f:.2f})"
        raise DataError(f"{scene.label}: its labels cover {coverage:.1%} of scene {scene.scene}'s footprint "
                        f"(image {where}), under data.folder.min_label_coverage {min_label_coverage:.0%}: is it "
                        "this image's label, and are its georeference and CRS right?")
    if not footprint.all():
        label[~footprint] = _ignore_of(classes, label, scene.image)
    write_rgb(files.image, rgb, compress=False)
    write_world_file(files.world, WorldFile(t.a, t.d, t.b, t.e, t.c + t.a / 2 + t.b / 2, t.f + t.d / 2 + t.e / 2))
    for target in (files.label, files.label_noboundary):
        write_label(target, label, compress=False)
    origins = {files.image.name: str(scene.image), files.world.name: f"{scene.image} (its transform)",
               files.label.name: str(scene.label), files.label_noboundary.name: str(scene.label)}
    if own_crs is not None:  # each scene keeps its CRS; one without takes data.crs
        write_text(files.srs, crs_xml(own_crs))
        origins[files.srs.name] = f"{scene.image} (its CRS)"
    audit = {"crs": own_crs.to_string() if own_crs else None, "pixel_size": [abs(t.a), abs(t.e)],
             "size": [int(footprint.shape[1]), int(footprint.shape[0])],
             "nodata_share": round(1 - inside / footprint.size, 6), "label_coverage": round(coverage, 6)}
    return origins, audit
