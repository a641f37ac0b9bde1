"""Resize scenes (Lanczos images, nearest-exact labels) and encode labels to class indices."""

from __future__ import annotations

import cv2
import numpy as np

from aerialseg.datasets.layout import MaskFiles, SceneFiles
from aerialseg.io import DataError, read_rgb, read_world_file, write_index_mask, write_rgb, write_world_file
from aerialseg.palette import OffPaletteError, rgb_to_index


def resized_shape(shape: tuple[int, int], scale: float) -> tuple[int, int]:
    """(height, width) after resizing by ``scale``, rounded to whole pixels."""
    return max(1, int(round(shape[0] * scale))), max(1, int(round(shape[1] * scale)))


def resize_image(image: np.ndarray, scale: float) -> np.ndarray:
    """Down-size an orthophoto with Lanczos-4, which keeps fine detail and limits aliasing."""
    if scale == 1.0:
        return image
    h, w = resized_shape(image.shape[:2], scale)
    return cv2.resize(image, (w, h), interpolation=cv2.INTER_LANCZOS4)


def resize_label(label: np.ndarray, scale: float) -> np.ndarray:
    """Down-size a colour label with nearest-exact, which never invents a colour."""
    if scale == 1.0:
        return label
    h, w = resized_shape(label.shape[:2], scale)
    return cv2.resize(label, (w, h), interpolation=cv2.INTER_NEAREST_EXACT)


def resize_scene(src: SceneFiles, dst: SceneFiles, scale: float) -> tuple[int, int]:
    """Resize one scene's image, labels and world file; returns the new (height, width)."""
    image = read_rgb(src.image)
    labels = {}
    for path in (src.label, src.label_noboundary):
        label = read_rgb(path)
        if label.shape != image.shape:
            raise DataError(f"{path}: label is {label.shape[1]}x{label.shape[0]} px but its image "
                            f"{src.image.name} is {image.shape[1]}x{image.shape[0]} px")
        labels[path] = label
    write_rgb(dst.image, resize_image(image, scale))
    write_rgb(dst.label, resize_label(labels[src.label], scale))
    write_rgb(dst.label_noboundary, resize_label(labels[src.label_noboundary], scale))
    if src.world.is_file():
        write_world_file(dst.world, read_world_file(src.world).scaled(scale))
    return resized_shape(image.shape[:2], scale)


def encode_scene(src: SceneFiles, dst: MaskFiles) -> dict[str, int]:
    """Encode both labels of a scene to class-index masks; returns ignored-pixel counts.

    Black in the no-boundary label is the eroded boundary (ignore); any colour outside
    the palette is an error naming the file, the colours and their pixel counts.
    """
    ignored = {}
    for path, out, allow_boundary in ((src.label, dst.full, False), (src.label_noboundary, dst.noboundary, True)):
        try:
            mask = rgb_to_index(read_rgb(path), allow_boundary=allow_boundary)
        except OffPaletteError as err:
            raise OffPaletteError(f"{path}: {err}") from None
        write_index_mask(out, mask)
        ignored[out.name] = int((mask == 255).sum())
    return ignored
