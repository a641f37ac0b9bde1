"""Reading and writing images, masks, arrays and JSON, always atomically (``aerialseg.core.atomic``).

Arrays are RGB here; OpenCV's BGR never leaves this module. Every reader turns whatever
its decoder raises into one ``DataError`` naming the file.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import tifffile

from aerialseg.core.atomic import atomic_path, preallocate, write_errors_named
from aerialseg.core.errors import DataError, one_line_reason

os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(2**34))


def sha256_of(path: str | Path) -> str:
    """The SHA-256 of a file, read in 1 MiB blocks: how downloads are verified and weight files keyed."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def open_npy_memmap(path: str | Path, shape: tuple[int, ...], dtype: npt.DTypeLike) -> np.memmap[Any, Any]:
    """A new ``.npy`` file of ``shape`` and ``dtype`` as a writable memory map, its disk space reserved."""
    with write_errors_named(path):
        array = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
    preallocate(path, os.path.getsize(path))
    return array


def decode_image(path: str | Path) -> np.ndarray:
    """Decode an image file as OpenCV stores it (BGR order, any depth); DataError if it cannot be."""
    path = Path(path)
    try:
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    except Exception as err:  # OpenCV raises cv2.error on some damaged files
        raise DataError(f"{path}: not a readable image ({one_line_reason(err)})") from None
    if image is None or image.size == 0:
        raise DataError(f"{path}: not a readable image (corrupt, truncated or unsupported format)")
    return image


def read_rgb(path: str | Path) -> np.ndarray:
    """Read an 8-bit 3-channel image as RGB (H, W, 3) uint8; DataError if it is anything else."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    image = decode_image(path)
    if image.dtype != np.uint8:
        raise DataError(f"{path}: expected 8-bit samples, found {image.dtype}")
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        channels = 1 if image.ndim == 2 else image.shape[2]
        raise DataError(f"{path}: expected 3 colour channels, found {channels}")
    return cv2.cvtColor(image[:, :, :3], cv2.COLOR_BGR2RGB)


def _map_tiff(path: Path) -> np.ndarray | None:
    """An uncompressed, contiguous grey or RGB TIFF memory-mapped as it is stored; None for any other
    file (a palette TIFF's values are indices into its colour map: the decoder gives its colours; an
    alpha sample is a mask, not a band: GDAL's reading leaves it out)."""
    if path.suffix.lower() not in (".tif", ".tiff"):
        return None
    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages.first
            if page.photometric not in (tifffile.PHOTOMETRIC.MINISBLACK, tifffile.PHOTOMETRIC.RGB):
                return None
            if any(kind in (1, 2) for kind in page.extrasamples):  # an alpha sample: GDAL reads it as the mask
                return None
        return np.asarray(tifffile.memmap(path, mode="r"))
    except Exception:  # not an uncompressed, contiguous TIFF (or a damaged one): the decoder decides
        return None


def map_image(path: str | Path) -> np.ndarray | None:
    """An uncompressed TIFF of any band count, 8 or 16 bits or float32 (what the stages write),
    memory-mapped as (H, W, bands); None for any other file."""
    mapped = _map_tiff(Path(path))
    if mapped is not None and mapped.size and mapped.ndim in (2, 3) and mapped.dtype in (
            np.uint8, np.uint16, np.float32):
        return mapped if mapped.ndim == 3 else mapped[:, :, None]
    return None


def open_image(path: str | Path) -> np.ndarray:
    """A stage's scene image as (H, W, bands): ``map_image``'s, or else read as by ``read_rgb``."""
    mapped = map_image(path)  # the Potsdam release's uncompressed 6000 x 6000 TIFFs: pages read as needed
    return read_rgb(path) if mapped is None else mapped


def write_image(path: str | Path, image: np.ndarray) -> None:
    """Write a scene image (H, W, bands) as an uncompressed TIFF that ``open_image`` maps, atomically: 8-bit
    RGB as ``write_rgb`` writes it, any other band count or type as contiguous samples (GDAL: one band each)."""
    if image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8:
        write_rgb(path, image, compress=False)
        return
    with atomic_path(path) as tmp, write_errors_named(path):
        if image.ndim == 2 or image.shape[2] == 1:  # one band: no samples to interleave
            tifffile.imwrite(tmp, image.reshape(image.shape[:2]), photometric="minisblack")
        else:
            tifffile.imwrite(tmp, image, photometric="minisblack", planarconfig="contig")


def read_label(path: str | Path) -> np.ndarray:
    """A label raster: one band of class values (H, W) uint8 or uint16, or colours (H, W, 3) RGB
    uint8 (an uncompressed TIFF memory-mapped); DataError for anything else."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    mapped = _map_tiff(path)  # uncompressed class values or colours: no decoding (OpenCV's is row by row)
    if mapped is not None and mapped.size and (
            (mapped.ndim == 2 and mapped.dtype in (np.uint8, np.uint16))
            or (mapped.ndim == 3 and mapped.shape[2] == 3 and mapped.dtype == np.uint8)):
        return mapped
    label = decode_image(path)
    if label.ndim == 2 and label.dtype in (np.uint8, np.uint16):
        return label
    if label.ndim == 3 and label.shape[2] in (3, 4) and label.dtype == np.uint8:
        return cv2.cvtColor(label[:, :, :3], cv2.COLOR_BGR2RGB)
    shape = "x".join(map(str, label.shape))
    raise DataError(f"{path}: a label is one band of class values (8 or 16 bit) or 3 colour channels (8 bit), "
                    f"found {label.dtype} {shape}")


def write_label(path: str | Path, label: np.ndarray, compress: bool = True) -> None:
    """Write a label read by ``read_label`` (class values or RGB colours) atomically, losslessly."""
    if label.ndim == 3:
        write_rgb(path, label, compress=compress)
        return
    with atomic_path(path) as tmp:
        tifffile.imwrite(tmp, label, compression="zlib" if compress else None)


def write_rgb(path: str | Path, rgb: np.ndarray, compress: bool = True) -> None:
    """Write an RGB (H, W, 3) uint8 image atomically; the format follows the suffix.

    ``compress=False`` writes TIFFs uncompressed: ten times faster to write and three
    times faster to read, for intermediate files that are read once more and discarded.
    """
    with atomic_path(path) as tmp:
        if not compress and Path(path).suffix.lower() in (".tif", ".tiff"):
            tifffile.imwrite(tmp, rgb, photometric="rgb")  # contiguous strips, so ``open_image`` can map it
        else:
            write_rgb_into(tmp, rgb, path)


def write_rgb_into(tmp: Path, rgb: np.ndarray, path: str | Path) -> None:
    """Encode an RGB image into ``tmp``, a temporary of ``path`` (whose suffix sets the format)."""
    _write_with_opencv(Path(path), tmp, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def _write_with_opencv(path: Path, tmp: Path, image: np.ndarray) -> None:
    """Encode with OpenCV and write with Python, so that a short write (a full disk) is an error.

    ``cv2.imwrite`` ignores failed writes and leaves a truncated file; Python's file writes
    raise, which ``atomic_path`` turns into one DataError naming ``path``.
    """
    try:
        encoded, data = cv2.imencode(Path(path).suffix.lower(), image)
    except cv2.error as err:
        raise DataError(f"{path}: could not be encoded ({one_line_reason(err)})") from None
    if not encoded:
        raise DataError(f"{path}: OpenCV cannot write this format")
    with open(tmp, "wb") as handle:
        handle.write(data.tobytes())


def write_npy(path: str | Path, array: np.ndarray) -> None:
    """Save one array as .npy atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, array)


def read_npy(path: str | Path, mmap: bool = False) -> np.ndarray:
    """Load a .npy array, memory-mapped if asked; DataError naming the file if it is bad."""
    try:
        array: np.ndarray = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
        return array
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except Exception as err:  # a damaged header can make NumPy raise nearly anything
        raise DataError(f"{path}: not a valid .npy file ({one_line_reason(err)})") from None


def write_json(path: str | Path, payload: Any) -> None:
    """Write JSON atomically, keys sorted so that reruns produce identical bytes."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")


def write_text(path: str | Path, text: str) -> None:
    """Write a text file atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def read_json(path: str | Path) -> Any:
    """Read a JSON file; DataError naming the file if it is missing or malformed."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (ValueError, OSError) as err:  # bad JSON, bad UTF-8, a folder
        raise DataError(f"{path}: not valid JSON ({one_line_reason(err)})") from None


def read_index_mask(path: str | Path) -> np.ndarray:
    """Read a class-index mask written by ``write_index_mask`` (H, W) uint8."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    mask = decode_image(path)
    if mask.ndim != 2 or mask.dtype != np.uint8:
        raise DataError(f"{path}: not a single-channel 8-bit mask")
    return mask


def write_index_mask(path: str | Path, mask: np.ndarray) -> None:
    """Write a class-index mask (H, W) uint8 as a lossless PNG, atomically."""
    if mask.ndim != 2 or mask.dtype != np.uint8:
        raise ValueError(f"mask must be uint8 (H, W), got {mask.dtype} {mask.shape}")
    with atomic_path(path) as tmp:
        _write_with_opencv(Path(path), tmp, mask)


def link_or_copy(origin: str | Path, target: str | Path) -> None:
    """Make ``target`` the file ``origin`` is: a hard link where the file system allows one (no bytes
    copied), a copy otherwise (another device, a file system without links)."""
    try:
        os.link(origin, target)
    except OSError:
        shutil.copyfile(origin, target)


def copy_file(origin: str | Path, target: str | Path) -> None:
    """Copy ``origin``'s bytes to ``target`` atomically (a temporary, then rename): never a half copy."""
    with atomic_path(Path(target)) as tmp:
        shutil.copyfile(origin, tmp)
