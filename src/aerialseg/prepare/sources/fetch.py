"""Download an archive over HTTP(S): streamed, resumable, verified, then moved into place.

The bytes go to ``<name>.part`` beside the destination. An interrupted transfer (a dropped
connection, or a killed process) continues from the end of that file with an HTTP
``Range`` request; a server that ignores ranges is read again from the start. Only a file
whose SHA-256 matches is renamed to its final name, so the destination either holds the
verified archive or nothing.
"""

from __future__ import annotations

import http.client
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from aerialseg.core.errors import DataError
from aerialseg.core.io import sha256_of

_CHUNK = 1 << 20


def partial_path(destination: Path) -> Path:
    """Where the bytes of an unfinished download of ``destination`` are kept."""
    return destination.with_name(destination.name + ".part")


def _transfer(url: str, part: Path, timeout: float, progress: Callable[[int, int | None], None] | None) -> None:
    """Append the rest of ``url`` to ``part``; raises OSError-like errors if cut off."""
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        if have and response.status != 206:  # the server sent the whole file again
            have = 0
        total = response.headers.get("Content-Length")
        total = int(total) + have if total is not None else None
        with open(part, "ab" if have else "wb") as out:
            done = have
            while block := response.read(_CHUNK):
                out.write(block)
                done += len(block)
                if progress:
                    progress(done, total)
        if total is not None and done < total:
            raise http.client.IncompleteRead(b"", total - done)


def download(url: str, destination: Path, sha256: str, *, attempts: int = 3, timeout: float = 60.0,
             progress: Callable[[int, int | None], None] | None = None, key: str = "data.potsdam.sha256") -> Path:
    """Fetch ``url`` to ``destination`` unless a verified copy is already there (``key``: the param that
    gives ``sha256``, for messages).

    Retries up to ``attempts`` times, each resuming where the last stopped. A checksum
    mismatch deletes the partial file and raises DataError naming the URL and both sums.
    """
    destination = Path(destination)
    expected = sha256.lower()
    if destination.is_file():
        actual = sha256_of(destination)
        if actual == expected:
            return destination
        raise DataError(f"{destination}: exists but its sha256 is {actual}, not {expected} "
                        f"({key}); delete it to download again")
    destination.parent.mkdir(parents=True, exist_ok=True)
    part = partial_path(destination)
    error: Exception | None = None
    for _ in range(attempts):
        try:
            _transfer(url, part, timeout, progress)
            break
        except urllib.error.HTTPError as err:
            if err.code == 416 and part.exists():  # range past the end: the part is complete
                break
            raise DataError(f"{url}: HTTP {err.code} {err.reason}") from None
        except (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError) as err:
            error = err
    else:
        size = part.stat().st_size if part.exists() else 0
        raise DataError(f"{url}: download interrupted after {size} bytes ({error}); run the stage again "
                        "to resume") from None
    actual = sha256_of(part)
    if actual != expected:
        part.unlink()
        raise DataError(f"{url}: sha256 mismatch: got {actual}, expected {expected} ({key}); "
                        "the download was deleted")
    os.replace(part, destination)
    return destination
