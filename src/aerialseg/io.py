"""Reading and writing images, masks, world files and JSON, always atomically.

Arrays are RGB here; OpenCV's BGR never leaves this module. Every writer goes through a
temporary file in the destination folder and an ``os.replace``, so an interrupted stage
never leaves a half-written output behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import cv2
import numpy as np
import tifffile

from aerialseg.errors import DataError

os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(2**34))
_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it into place only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp's 0600 would make outputs private
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def read_rgb(path: str | Path) -> np.ndarray:
    """Read an 8-bit 3-channel image as RGB (H, W, 3) uint8; DataError if it is anything else."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise DataError(f"{path}: not a readable image (corrupt or unsupported format)")
    if image.dtype != np.uint8:
        raise DataError(f"{path}: expected 8-bit samples, found {image.dtype}")
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        channels = 1 if image.ndim == 2 else image.shape[2]
        raise DataError(f"{path}: expected 3 colour channels, found {channels}")
    return cv2.cvtColor(image[:, :, :3], cv2.COLOR_BGR2RGB)


def map_rgb_tiff(path: str | Path) -> np.ndarray | None:
    """An uncompressed 8-bit RGB TIFF memory-mapped as (H, W, 3) uint8; None for any other file.

    The official Potsdam tiles are uncompressed 6000 x 6000 TIFFs (108 MB): mapping them
    costs nothing up front, and readers then take the pages they need straight from the
    page cache, several times faster than decoding.
    """
    path = Path(path)
    if path.suffix.lower() not in (".tif", ".tiff"):
        return None
    try:
        image = tifffile.memmap(path, mode="r")
    except (ValueError, TypeError, OSError, tifffile.TiffFileError):
        return None
    if image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8:
        return np.asarray(image)
    return None


def open_rgb(path: str | Path) -> np.ndarray:
    """An RGB (H, W, 3) uint8 image, memory-mapped when it is an uncompressed TIFF.

    Anything else is read as by ``read_rgb``, with the same errors.
    """
    mapped = map_rgb_tiff(path)
    return read_rgb(path) if mapped is None else mapped


def write_rgb(path: str | Path, rgb: np.ndarray, compress: bool = True) -> None:
    """Write an RGB (H, W, 3) uint8 image atomically; the format follows the suffix.

    ``compress=False`` writes TIFFs uncompressed: ten times faster to write and three
    times faster to read, for intermediate files that are read once more and discarded.
    """
    with atomic_path(path) as tmp:
        if not compress and Path(path).suffix.lower() in (".tif", ".tiff"):
            tifffile.imwrite(tmp, rgb, photometric="rgb")  # contiguous strips, so ``open_rgb`` can map it
        elif not cv2.imwrite(str(tmp), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
            raise DataError(f"{path}: OpenCV could not write this format")


def write_npy(path: str | Path, array: np.ndarray) -> None:
    """Save one array as .npy atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, array)


def read_npy(path: str | Path, mmap: bool = False) -> np.ndarray:
    """Load a .npy array, memory-mapped if asked; DataError naming the file if it is bad."""
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (ValueError, OSError) as err:
        raise DataError(f"{path}: not a valid .npy file ({err})") from None


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
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: not valid JSON ({err})") from None


@dataclass(frozen=True)
class WorldFile:
    """An ESRI world file (.tfw): the affine map from pixel to map coordinates."""

    pixel_x: float
    rotation_y: float
    rotation_x: float
    pixel_y: float
    origin_x: float
    origin_y: float

    def scaled(self, scale: float) -> "WorldFile":
        """The world file of the same image resized by ``scale`` (pixels grow by 1/scale).

        The origin refers to the centre of the top-left pixel, which moves by half the
        change in pixel size.
        """
        a, d, b, e = (v / scale for v in (self.pixel_x, self.rotation_y, self.rotation_x, self.pixel_y))
        shift_x = (a - self.pixel_x + b - self.rotation_x) / 2
        shift_y = (d - self.rotation_y + e - self.pixel_y) / 2
        return WorldFile(a, d, b, e, self.origin_x + shift_x, self.origin_y + shift_y)

    def to_text(self) -> str:
        """The six-line text form."""
        values = (self.pixel_x, self.rotation_y, self.rotation_x, self.pixel_y, self.origin_x, self.origin_y)
        return "".join(f"{v!r}\n" for v in values)


def read_world_file(path: str | Path) -> WorldFile:
    """Parse a six-line world file; DataError naming the file if it is malformed."""
    try:
        values = [float(line) for line in Path(path).read_text().split()]
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except ValueError:
        raise DataError(f"{path}: world file must hold six numbers") from None
    if len(values) != 6:
        raise DataError(f"{path}: world file must hold six numbers, found {len(values)}")
    return WorldFile(*values)


_WORLD_SUFFIXES = {".tif": ".tfw", ".tiff": ".tfw", ".png": ".pgw", ".jpg": ".jgw", ".jpeg": ".jgw"}


def world_file_for(image: str | Path) -> Path:
    """The world file GDAL/QGIS look for beside an image (.tfw, .pgw, .jgw, else .wld)."""
    image = Path(image)
    return image.with_suffix(_WORLD_SUFFIXES.get(image.suffix.lower(), ".wld"))


def write_world_file(path: str | Path, world: WorldFile) -> None:
    """Write a world file atomically."""
    write_text(path, world.to_text())


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; it replaces ``path`` only on success."""
    import shutil

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_UMASK)
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def read_index_mask(path: str | Path) -> np.ndarray:
    """Read a class-index mask written by ``write_index_mask`` (H, W) uint8."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if mask is None or mask.ndim != 2 or mask.dtype != np.uint8:
        raise DataError(f"{path}: not a single-channel 8-bit mask")
    return mask


def write_index_mask(path: str | Path, mask: np.ndarray) -> None:
    """Write a class-index mask (H, W) uint8 as a lossless PNG, atomically."""
    if mask.ndim != 2 or mask.dtype != np.uint8:
        raise ValueError(f"mask must be uint8 (H, W), got {mask.dtype} {mask.shape}")
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), mask):
            raise DataError(f"{path}: OpenCV could not write the mask")
