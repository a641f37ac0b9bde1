"""Resize scenes (Lanczos images, nearest-exact labels) and encode labels to class indices."""

from __future__ import annotations

import math
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from aerialseg.core.classes import ClassTable
from aerialseg.core.errors import DataError, OffPaletteError
from aerialseg.core.geo.geoio import read_bands
from aerialseg.core.geo.worldfile import read_world_file, write_world_file
from aerialseg.core.io import (
    map_image,
    read_json,
    read_label,
    write_image,
    write_index_mask,
    write_json,
    write_label,
    write_text,
)
from aerialseg.core.names import AUDIT_FILE, INPUT_FILE, SOURCES_FILE, SPLIT_FILE, MaskFiles, SceneFiles
from aerialseg.core.palette import LabelEncoding, class_counts, encode_index_label, encode_label


def resized_shape(shape: tuple[int, int], scale: float) -> tuple[int, int]:
    """(height, width) after resizing by ``scale``, rounded to whole pixels."""
    return max(1, int(round(shape[0] * scale))), max(1, int(round(shape[1] * scale)))


def resize_image(image: np.ndarray, scale: float) -> np.ndarray:
    """Down-size an orthophoto (H, W[, bands]) with Lanczos-4, which keeps fine detail and limits
    aliasing; any band count (OpenCV's Lanczos takes up to 4 at a time), 8 or 16 bits or float32."""
    if scale == 1.0:
        return image
    h, w = resized_shape(image.shape[:2], scale)
    if image.ndim == 2 or image.shape[2] <= 4:
        resized = cv2.resize(image, (w, h), interpolation=cv2.INTER_LANCZOS4)
        return resized if resized.ndim == image.ndim else resized[:, :, None]
    return np.concatenate([resize_image(np.ascontiguousarray(image[:, :, b:b + 4]), scale)
                           for b in range(0, image.shape[2], 4)], axis=2)


def resize_label(label: np.ndarray, scale: float) -> np.ndarray:
    """Down-size a label (colours or class values) with nearest-exact, which never invents a value."""
    if scale == 1.0:
        return label
    h, w = resized_shape(label.shape[:2], scale)
    return cv2.resize(label, (w, h), interpolation=cv2.INTER_NEAREST_EXACT)


def origin_of(path: Path) -> str:
    """Where a scene file came from (an archive member or the user's file), as the download stage
    recorded beside it; the path itself where nothing is recorded (synthetic scenes)."""
    record = Path(path).parent / SOURCES_FILE
    if record.is_file():
        origin = read_json(record).get(Path(path).name)
        if origin:
            return f"{origin} (as {path})"
    return str(path)


def carry_sources(source: Path, target: Path) -> None:
    """Keep the records of where scene files came from, of the split, of the scenes' bands and of the
    scenes' audit (own data) in a folder derived from ``source``."""
    for name in (SOURCES_FILE, SPLIT_FILE, AUDIT_FILE, INPUT_FILE):
        record = Path(source) / name
        if record.is_file():
            write_json(Path(target) / name, read_json(record))


def scene_gsd(src: SceneFiles, declared: float | None) -> float:
    """A scene's ground sample distance in m/px: its world file's pixel size, or else the one its
    source declares. Refuses rotated and non-square pixels (one scale cannot bring both sides to
    the target) and a scene with neither."""
    if not src.world.is_file():
        if declared is None:
            raise DataError(f"{origin_of(src.image)}: no world file gives its ground sample distance, and its "
                            "data source declares none")
        return declared
    world = read_world_file(src.world)
    width, height = abs(world.pixel_x), abs(world.pixel_y)
    if world.rotation_x or world.rotation_y or not math.isclose(width, height, rel_tol=1e-6) or not width:
        raise DataError(f"{origin_of(src.world)}: pixels of {width:g} x {height:g} m with rotation "
                        f"({world.rotation_y:g}, {world.rotation_x:g}); resize brings square, north-up pixels to "
                        "resize.gsd: warp the scene to such a grid first (gdalwarp -tr)")
    return width


def resize_scene(src: SceneFiles, dst: SceneFiles, scale: float) -> tuple[int, int]:
    """Resize one scene's image, labels and world file; returns the new (height, width).

    One file is in memory at a time (a 6000 x 6000 RGB tile is 108 MB), and uncompressed
    TIFFs are memory-mapped rather than decoded, so a worker's peak stays near one
    full-size tile plus its resized copy. Other images (own GeoTIFFs, copied as they came:
    compressed, tiled) are decoded through GDAL; every band is kept (download left only those
    a model reads), in its own type.
    """
    image = map_image(src.image)
    if image is None:  # a compressed or tiled GeoTIFF, as a folder of one's own brings it
        image = read_bands(src.image)
    size = image.shape[:2]
    write_image(dst.image, resize_image(image, scale))
    del image
    for path, out in ((src.label, dst.label), (src.label_noboundary, dst.label_noboundary)):
        label = read_label(path)
        if label.shape[:2] != size:
            raise DataError(f"{origin_of(path)}: label is {label.shape[1]}x{label.shape[0]} px but its image "
                            f"{src.image.name} is {size[1]}x{size[0]} px")
        write_label(out, resize_label(label, scale), compress=False)
        del label
    if src.world.is_file():
        write_world_file(dst.world, read_world_file(src.world).scaled(scale))
    if src.srs.is_file():  # the scene's own CRS: resizing does not change it
        write_text(dst.srs, src.srs.read_text())
    return resized_shape(size, scale)


def label_report(encoding: LabelEncoding, classes: ClassTable, counts: np.ndarray) -> dict:
    """What a data report says about one encoded label: repairs and class shares (``counts``: its
    ``class_counts``)."""
    mask = encoding.mask
    labelled = max(int(counts[: len(classes)].sum()), 1)
    return {
        "pixels": int(mask.size),
        "snapped": encoding.snapped,
        "off_palette": encoding.off_palette,
        "ignored": int(counts[len(classes)]),
        "class_share": {name: round(int(counts[i]) / labelled, 6) for i, name in enumerate(classes.names)},
    }


class EncodedScene(NamedTuple):
    """What encoding a scene's labels tells: each label's data report (``full``, ``noboundary``) and
    the full label's pixels per class, exact (the split's class check counts them)."""

    report: dict
    class_pixels: list[int]


def encode_scene(src: SceneFiles, dst: MaskFiles, classes: ClassTable, tolerance: int = 0,
                 max_offpalette: float = 0.0) -> EncodedScene:
    """Encode both labels of a scene to class-index masks through the class table; return their
    data reports and the full label's class pixel counts.

    The table's ignore colours (the eroded boundaries' black) become ignore. Near-table colours
    (within ``tolerance``) are snapped; other colours become ignore, and a label where they
    exceed ``max_offpalette`` of the pixels stops with an error naming the scene, the share and
    the commonest colours with their pixel counts.
    """
    reports = {}
    for path, out, kind in ((src.label, dst.full, "full"), (src.label_noboundary, dst.noboundary, "noboundary")):
        label = read_label(path)
        if label.ndim == 2:  # class values: every value must be declared (no anti-aliasing to tolerate)
            mask, undeclared = encode_index_label(label, classes)
            if undeclared:
                listed = ", ".join(f"value {value} x{count}" for value, count in undeclared[:5])
                raise DataError(f"{origin_of(path)}: scene {src.scene}: label values that are no class's and not "
                                f"ignore in classes ({listed}); declare them (classes.table.<class>.values or "
                                f"classes.ignore.values) or fix the label")
            encoding = LabelEncoding(mask, 0, 0, [])
        else:
            encoding = encode_label(label, classes, tolerance=tolerance)
        if encoding.off_palette_share > max_offpalette:
            listed = ", ".join(f"rgb{c.rgb} x{c.count}" for c in encoding.off_colours[:3])
            raise OffPaletteError(
                f"{origin_of(path)}: scene {src.scene}: {encoding.off_palette_share:.2%} of pixels have colours "
                f"that are no class's and not ignore in classes, more than encode.max_offpalette = "
                f"{max_offpalette:.2%} tolerates (commonest {listed}); fix the label, declare the colour in "
                f"classes, raise encode.max_offpalette (those pixels become ignore), or "
                f"add \"{src.scene}\" to data.exclude")
        write_index_mask(out, encoding.mask)
        counts = class_counts(encoding.mask, len(classes))
        reports[kind] = label_report(encoding, classes, counts)
        if kind == "full":
            class_pixels = [int(c) for c in counts[: len(classes)]]
    return EncodedScene(reports, class_pixels)


def resize_scene_files(scene_id: str, source: Path, target: Path, gsd: float,
                       declared_gsd: float | None) -> tuple[int, int]:
    """``resize_scene`` to ground sample distance ``gsd`` by scene id and folders (picklable, for
    worker processes); the scene's own GSD is ``scene_gsd``'s."""
    src = SceneFiles(source, scene_id)
    return resize_scene(src, SceneFiles(target, scene_id), scene_gsd(src, declared_gsd) / gsd)


def encode_scene_files(scene_id: str, source: Path, target: Path, classes: ClassTable, tolerance: int,
                       max_offpalette: float) -> EncodedScene:
    """``encode_scene`` by scene id and folders (picklable, for worker processes)."""
    return encode_scene(SceneFiles(source, scene_id), MaskFiles(target, scene_id), classes, tolerance, max_offpalette)


def data_report(reports: dict[str, dict], tolerance: int, max_offpalette: float,
                audit: dict[str, dict] | None = None) -> dict:
    """The data report of a set of scenes: per-tile label reports and their totals, and for own data
    each scene's audit from download (CRS, pixel size, nodata share, label coverage)."""
    totals = {key: sum(r[kind][key] for r in reports.values() for kind in r)
              for key in ("pixels", "snapped", "off_palette")}
    report = {"settings": {"tolerance": tolerance, "max_offpalette": max_offpalette}, "totals": totals,
              "tiles": reports}
    if audit:
        report["scenes"] = audit
    return report
