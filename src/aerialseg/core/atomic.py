"""Atomic writes: every output appears whole, by rename of a temporary beside it, or not at all.

Temporaries have one naming scheme (``.<name>.<host>~<pid>~<random>.tmp[.<suffix>]``,
``.<name>.old``) so that what a SIGKILL or power loss left behind can be recognised and swept,
and never reaches ``dvc.lock``. A stage sweeps every temporary in its outputs (nothing else
writes there); a batch shares its output folder with other runs, so it sweeps only those whose
writer is gone: the host and process id in the name say who wrote it, as git's ``gc.pid`` does
(a process of this host that no longer runs, or started after the file was last written, left
it; another host's is stale after ``FOREIGN_TEMPORARY_AGE_S``). Before the rename a temporary
is flushed to disk. Failed writes the user can fix (space, quota, permissions) become one
``DataError`` naming the file the user asked for, never the temporary.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from aerialseg.core.errors import DataError

_UMASK = os.umask(0)
os.umask(_UMASK)


# Every temporary name this package writes: ".<name>.<random>.tmp[.<suffix>]" and ".<name>.old";
# the random part starts with its writer, "<host>~<pid>~".
_TEMPORARY = re.compile(r"^\..+\.(tmp(\.[^.]+)*|old)$")
_OWNED = re.compile(r"^\..+\.(?P<host>[A-Za-z0-9-]+)~(?P<pid>\d+)~[^.]*\.tmp(\.[^.]+)*$")
FOREIGN_TEMPORARY_AGE_S = 12 * 3600  # another host's (or an unmarked) temporary older than this is stale


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


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:40] or "host"


def _owner() -> str:
    """This process's mark at the start of its temporaries' random part."""
    return f"{_host()}~{os.getpid()}~"


def process_started(pid: int) -> float | None:
    """When process ``pid`` of this host started (None: not running, a zombie awaiting its parent
    included, or unknown)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:  # alive, another user's
        pass
    try:  # Linux: field 3 of /proc/PID/stat is the state, field 22 the start in clock ticks after boot
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        if fields[0] == "Z":  # killed, not yet reaped: it writes nothing any more
            return None
        ticks = int(fields[19])
        boot = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return 0.0  # alive, start unknown: taken to predate every file


def writer_is_gone(entry: Path, now: float | None = None) -> bool:
    """Whether the process that wrote temporary ``entry`` can no longer be writing it."""
    try:
        modified = entry.lstat().st_mtime
    except FileNotFoundError:
        return False  # renamed into place or removed meanwhile: nothing to sweep
    match = _OWNED.match(entry.name)
    if match is None or match["host"] != _host():
        return (now or time.time()) - modified > FOREIGN_TEMPORARY_AGE_S
    pid = int(match["pid"])
    if pid == os.getpid():
        return True  # a sweep runs before this process writes: an earlier process with this id left it
    started = process_started(pid)
    return started is None or started > modified + 2.0  # gone, or its id was reused since


def sweep_stale_temporaries(folder: str | Path) -> list[Path]:
    """Remove the temporaries in ``folder`` (not below it) whose writers are gone; return them.

    Safe while other runs write into the same folder: their live temporaries stay.
    """
    folder = Path(folder)
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    now = time.time()
    for entry in sorted(folder.iterdir()):
        if is_temporary(entry.name) and writer_is_gone(entry, now):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


def flush_to_disk(path: str | Path) -> None:
    """fsync a written file, so that the rename that publishes it never outlives its contents."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_TEMPORARY_FILE = re.compile(r"^\.(?P<stem>.+)\.[^.]+\.tmp(?P<suffix>(\.[^.]+)*)$")


def final_name(path: str | Path) -> Path:
    """The path a temporary of ``atomic_path`` (or a file in a temporary folder of ``atomic_dir``)
    will have once published (``path`` itself if no part of it is a temporary)."""
    def published(part: str) -> str:
        match = _TEMPORARY_FILE.match(part)
        return match["stem"] + match["suffix"] if match else part

    path = Path(path)
    return Path(*(published(part) for part in path.parts)) if path.parts else path


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
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.{_owner()}", suffix=f".tmp{path.suffix}", dir=path.parent)
        os.close(fd)
    tmp_path = Path(tmp)
    try:
        with write_errors_named(path):
            yield tmp_path
            os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp's 0600 would make outputs private
            flush_to_disk(tmp_path)
            os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_paths(paths: list[Path]) -> Iterator[list[Path]]:
    """``atomic_path`` for several files that belong together: all move into place if the block
    succeeds, none if it fails (a full disk on the last one leaves no orphan of the first)."""
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(atomic_path(path)) for path in paths]


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; it replaces ``path`` only on success."""
    path = Path(path)
    with write_errors_named(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.{_owner()}", suffix=".tmp", dir=path.parent))
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
