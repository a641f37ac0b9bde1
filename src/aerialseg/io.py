"""Reading and writing images, masks, world files and JSON, always atomically.

Arrays are RGB here; OpenCV's BGR never leaves this module. Every writer goes through a
temporary file in the destination folder and an ``os.replace``, so an interrupted stage
never leaves a half-written output behind.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import cv2
import numpy as np
import tifffile

from aerialseg.errors import DataError, one_line_reason

os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(2**34))
_UMASK = os.umask(0)
os.umask(_UMASK)

# Every temporary name this package writes: ".<name>.<random>.tmp[.<suffix>]" and ".<name>.old".
_TEMPORARY = re.compile(r"^\..+\.(tmp(\.[^.]+)*|old)$")
# Errors of a write that the user can fix (space, quota, permissions, a read-only disk, a bad path).
_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO,
                 errno.ENOTDIR, errno.EISDIR, errno.ENAMETOOLONG}


def is_temporary(name: str) -> bool:
    """Whether a file or folder name is one of this package's temporary names."""
    return bool(_TEMPORARY.match(name))


def sweep_temporaries(folder: str | Path, recursive: bool = True) -> list[Path]:
    """Remove what an interrupted write left in ``folder`` (SIGKILL, power loss); return it.

    Only names of the form this package gives its temporaries are touched, so a user's
    files are safe. Call it when nothing else writes there (a stage's start).
    """
    folder = Path(folder)
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    for entry in sorted(folder.iterdir()):
        if is_temporary(entry.name):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed.append(entry)
        elif recursive and entry.is_dir() and not entry.is_symlink():
            removed += sweep_temporaries(entry)
    return removed


_TEMPORARY_FILE = re.compile(r"^\.(?P<stem>.+)\.[^.]+\.tmp(?P<suffix>(\.[^.]+)*)$")


def final_name(path: str | Path) -> Path:
    """The file a temporary of ``atomic_path`` will become (``path`` itself if it is no temporary)."""
    path = Path(path)
    match = _TEMPORARY_FILE.match(path.name)
    return path.with_name(match["stem"] + match["suffix"]) if match else path


@contextlib.contextmanager
def write_errors_named(path: str | Path) -> Iterator[None]:
    """Turn a failed write (disk full, quota, permission, read-only) into a DataError naming the file.

    The file named is the one the user asked for, never a temporary on its way to it.
    """
    try:
        yield
    except OSError as err:
        if err.errno not in _WRITE_ERRNOS:
            raise
        raise DataError(f"{final_name(err.filename or path)}: {os.strerror(err.errno)}") from None


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it into place only if the block succeeds."""
    path = Path(path)
    with write_errors_named(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
        os.close(fd)
    tmp_path = Path(tmp)
    try:
        with write_errors_named(path):
            yield tmp_path
            os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp's 0600 would make outputs private
            os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_paths(paths: list[Path]) -> Iterator[list[Path]]:
    """``atomic_path`` for several files that belong together: all move into place if the block
    succeeds, none if it fails (a full disk on the last one leaves no orphan of the first)."""
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(atomic_path(path)) for path in paths]


def sha256_of(path: str | Path) -> str:
    """The SHA-256 of a file, read in 1 MiB blocks: how downloads are verified and weight files keyed."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def preallocate(path: str | Path, size: int) -> None:
    """Reserve ``size`` bytes of disk for a file about to be filled through a memory map.

    A memory map over a sparse file on a full disk dies with SIGBUS at the first page the
    disk cannot hold; reserved blocks turn that into one clear DataError up front.
    """
    with write_errors_named(path):
        fd = os.open(path, os.O_RDWR)
        try:
            os.posix_fallocate(fd, 0, size)
        finally:
            os.close(fd)


def open_npy_memmap(path: str | Path, shape: tuple[int, ...], dtype) -> np.ndarray:
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
    except Exception:  # not an uncompressed, contiguous TIFF (or a damaged one): the decoder decides
        return None
    if image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8 and image.size:
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
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, array)


def read_npy(path: str | Path, mmap: bool = False) -> np.ndarray:
    """Load a .npy array, memory-mapped if asked; DataError naming the file if it is bad."""
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
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
    except (ValueError, OSError):
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
    path = Path(path)
    with write_errors_named(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        with write_errors_named(path):
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
    mask = decode_image(path)
    if mask.ndim != 2 or mask.dtype != np.uint8:
        raise DataError(f"{path}: not a single-channel 8-bit mask")
    return mask


def write_index_mask(path: str | Path, mask: np.ndarray) -> None:
    """Write a class-index mask (H, W) uint8 as a lossless PNG, atomically."""
    if mask.ndim != 2 or mask.dtype != np.uint8:
        raise ValueError(f"mask must be uint8 (H, W), got {mask.dtype} {mask.shape}")
    with atomic_path(path) as tmp:
        _write_with_opencv(path, tmp, mask)
