"""Safe extraction of the files the pipeline needs from zip and tar archives.

Archives come from registrations and mirrors, so a member is never trusted to name its own
destination: an absolute path, a ``..`` component, a link or a device file makes the whole
archive refused before anything is written (zip-slip / tar-slip). Members are extracted
by their base name only, into one flat folder, after checking that the disk has room.
"""

from __future__ import annotations

import shutil
import stat
import tarfile
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import IO

from aerialseg.core.atomic import atomic_path
from aerialseg.core.errors import DataError

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")
_CHUNK = 1 << 20


def is_archive(path: Path) -> bool:
    """Whether a file name looks like a supported archive."""
    return path.name.lower().endswith(ARCHIVE_SUFFIXES)


@dataclass(frozen=True)
class Member:
    """One regular file in an archive, by its base name."""

    archive: Path
    name: str  # the path inside the archive
    size: int

    @property
    def base_name(self) -> str:
        """The file name without its folders."""
        return PurePosixPath(self.name).name


def _check_name(archive: Path, name: str) -> None:
    posix, windows = PurePosixPath(name), PureWindowsPath(name)
    if posix.is_absolute() or windows.is_absolute() or windows.drive:
        raise DataError(f"{archive}: refused: member {name!r} has an absolute path")
    if ".." in posix.parts or ".." in windows.parts:
        raise DataError(f"{archive}: refused: member {name!r} points outside the archive ('..')")


def list_members(archive: Path) -> list[Member]:
    """The regular files of an archive; DataError if any member is unsafe or it is unreadable.

    Unsafe means an absolute path, a ``..`` component, a symbolic or hard link, or a
    device/FIFO entry. One unsafe member refuses the whole archive: it is not what the
    ISPRS release contains, so the archive is not the one the user meant.
    """
    archive = Path(archive)
    if not archive.is_file():
        raise DataError(f"{archive}: archive not found")
    try:
        if _is_zip(archive):
            return _zip_members(archive)
        return _tar_members(archive)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as err:
        raise DataError(f"{archive}: not a readable archive ({err})") from None


def _zip_members(archive: Path) -> list[Member]:
    members = []
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            _check_name(archive, info.filename)
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise DataError(f"{archive}: refused: member {info.filename!r} is a symbolic link")
            if info.is_dir():
                continue
            members.append(Member(archive, info.filename, info.file_size))
    return members


def _tar_members(archive: Path) -> list[Member]:
    members = []
    with tarfile.open(archive) as tf:
        for info in tf.getmembers():
            _check_name(archive, info.name)
            if info.issym() or info.islnk():
                raise DataError(f"{archive}: refused: member {info.name!r} is a link")
            if info.isdir():
                continue
            if not info.isfile():
                raise DataError(f"{archive}: refused: member {info.name!r} is not a regular file")
            members.append(Member(archive, info.name, info.size))
    return members


def check_free_space(folder: Path, needed: int, margin: float = 1.05) -> None:
    """DataError unless ``folder``'s file system has room for ``needed`` bytes (plus 5 %)."""
    folder = Path(folder)
    probe = folder
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if needed * margin > free:
        raise DataError(f"{folder}: not enough free disk space: extracting needs {needed / 1e9:.2f} GB, "
                        f"{free / 1e9:.2f} GB free")


def extract_members(members: Iterable[Member], destination: Path,
                    names: Sequence[str] | None = None) -> list[Path]:
    """Extract the given members into ``destination``, atomically each, under ``names`` (one file
    name per member; default their base names).

    Checks the free space for all of them first. Returns the written paths.
    """
    members = list(members)
    pairs = list(zip(members, names if names is not None else [m.base_name for m in members], strict=True))
    destination = Path(destination)
    destination.mkdir(parents=True, exist_ok=True)
    check_free_space(destination, sum(m.size for m in members))
    written = []
    by_archive: dict[Path, list[tuple[Member, str]]] = {}
    for member, name in pairs:
        by_archive.setdefault(member.archive, []).append((member, name))
    for archive, wanted in by_archive.items():
        is_zip = _is_zip(archive)
        with zipfile.ZipFile(archive) if is_zip else tarfile.open(archive) as handle:
            for member, name in wanted:
                target = destination / name
                if isinstance(handle, zipfile.ZipFile):
                    source: IO[bytes] = handle.open(member.name)
                else:
                    source = _tar_member(handle, member)
                with atomic_path(target) as tmp, source, open(tmp, "wb") as out:
                    shutil.copyfileobj(source, out, _CHUNK)
                written.append(target)
    return written


def _is_zip(archive: Path) -> bool:
    return archive.name.lower().endswith(".zip")


def _tar_member(handle: tarfile.TarFile, member: Member) -> IO[bytes]:
    source = handle.extractfile(member.name)
    if source is None:
        raise DataError(f"{member.archive}: member {member.name!r} cannot be read")
    return source
