"""Your own imagery: a folder of GeoTIFF orthophotos and their labels, brought into the stage folder.

The scenes and their split are ``folder_scenes``'s (images paired with labels by name or by a CSV
manifest). ``collect_scene`` brings one scene into the stage folder
under the source-neutral names (``SceneFiles``): the image's bands that ``data.folder.bands`` names
(8 or 16 bits, or float32; every image of one kind, ``check_images``) with a world file from its
transform, and the label on the image's grid — as
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

import zlib
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from rasterio.enums import MaskFlags

from aerialseg.core.classes import ClassTable
from aerialseg.core.config.data_params import DataParams, VectorParams, is_vector_file
from aerialseg.core.errors import DataError
from aerialseg.core.geo.geoio import crs_xml, data_bands, opened_raster, read_bands
from aerialseg.core.geo.worldfile import WorldFile, write_world_file
from aerialseg.core.input_spec import InputSpec
from aerialseg.core.io import copy_file, link_or_copy, sha256_of, write_image, write_json, write_label, write_text
from aerialseg.core.names import AUDIT_FILE, SOURCES_FILE, SceneFiles
from aerialseg.core.scene_split import Split
from aerialseg.prepare.band_statistics import BandSummary, band_input, summarise_raster
from aerialseg.prepare.parallel import map_scenes
from aerialseg.prepare.sources import vector_labels
from aerialseg.prepare.sources.folder_scenes import FolderScene, find_scenes, folder_split
from aerialseg.prepare.sources.image_bands import check_images


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
    file_bands: tuple[int, ...] = (1, 2, 3)  # the image files' bands a model reads, in its order
    summarise: frozenset[str] = frozenset()  # scenes whose band statistics are wanted (the training scenes)


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


def collect_scene(scene: FolderScene, destination: Path,
                  settings: Collecting) -> tuple[dict[str, str], dict, BandSummary | None]:
    """Bring one scene into ``destination`` (``SceneFiles``); return where each file came from, the
    scene's audit (its CRS, ground sample distance, nodata share, the share of its footprint its
    labels cover, and its image and label files' paths, sizes and SHA-256: which files trained a
    model) and, for a scene in ``settings.summarise`` whose bands are not 8-bit, the summary of its
    bands' values over its footprint (``band_statistics``). A GeoTIFF that holds all it says (no
    sidecar files) and whose bands are all read, in order, is copied byte for byte; any other image
    is decoded into a plain TIFF of the bands read (``settings.file_bands``). A scene whose labels cover less than
    ``min_label_coverage`` of its footprint, the usual sign of a label that is not its image's or of
    a wrong georeference, is a DataError."""
    files = SceneFiles(destination, scene.scene)
    classes, min_label_coverage = settings.classes, settings.min_label_coverage
    with opened_raster(scene.image, "raster") as image:
        if image.transform.is_identity:
            raise DataError(f"{scene.image}: no georeference; a scene needs one for its ground sample distance")
        every_band = settings.file_bands == data_bands(image)
        if image.driver == "GTiff" and len(image.files) == 1 and every_band:  # all it says is in the file
            copy_file(scene.image, files.image)
        else:  # another format, a GeoTIFF leaning on sidecar files (.msk, .aux.xml, .tfw), bands left out
            write_image(files.image, read_bands(scene.image, settings.file_bands))
        summary = None
        if scene.scene in settings.summarise and image.dtypes[0] != "uint8":
            summary = summarise_raster(scene.image, settings.file_bands, seed=zlib.crc32(scene.scene.encode()))
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
    write_world_file(files.world, WorldFile.of_transform(t))
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
    return origins, audit, summary


@dataclass(frozen=True)
class Collected:
    """What collecting the folder resolved: the split, the models' input, and notes for the user."""

    split: Split
    input: InputSpec
    notes: tuple[str, ...]


def collect_folder(data: DataParams, classes: ClassTable, seed: int, jobs: int | None, destination: Path) -> Collected:
    """Bring the folder's scenes into ``destination`` in parallel (``jobs``), with ``SOURCES_FILE`` (where
    each file came from, for later errors) and ``AUDIT_FILE`` (each scene's audit, for the data
    report); return the resolved split and input (the training scenes' band statistics). Every check
    that needs no pixel (pairing, the split, the images' bands, a vector file all scenes share) comes
    first, so a mistake there costs no scene's work."""
    own = data.folder
    found = find_scenes(own)
    split = folder_split(found, own, data.exclude, seed)
    by_id = {scene.scene: scene for scene in found}
    scenes = [by_id[s] for s in split.all_scenes]
    facts = check_images([scene.image for scene in scenes], own)
    settings = Collecting(classes, own.min_label_coverage, own.vector,
                          Path(own.path) / own.vector.aoi if own.vector.aoi else None, data.crs,
                          own.file_bands, frozenset(split.train))
    check_vector_labels(found, settings)
    collected, _ = map_scenes(partial(collect_scene, destination=destination, settings=settings),
                              scenes, jobs, "download")
    write_json(destination / SOURCES_FILE, {name: at for origins, _, _ in collected for name, at in origins.items()})
    write_json(destination / AUDIT_FILE, {s: audit for s, (_, audit, _) in zip(split.all_scenes, collected,
                                                                                strict=True)})
    summary = BandSummary()
    for _, _, scene_summary in collected:
        if scene_summary is not None:
            summary = summary.merged(scene_summary)
    return Collected(split, band_input(own.band_names, facts.dtype, summary, "null in data.folder.bands"), facts.notes)
