"""What native libraries print on standard error, captured at the file descriptor.

GDAL's libtiff, SQLite and TensorFlow's runtime write to file descriptor 2 directly, past
Python's ``sys.stderr``: dozens of such lines would bury the one line that names a bad file.
The capture holds them while a native call runs; the caller decides to quote them in its
error or to show them after all (``replay``).
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator


class Captured:
    """The text a native call printed; filled when the capture ends."""

    def __init__(self) -> None:
        self.text = ""

    def first_line(self) -> str:
        """The first non-empty line, stripped ("" if nothing was printed)."""
        return next((line.strip() for line in self.text.splitlines() if line.strip()), "")

    def replay(self) -> None:
        """Show what was captured on standard error after all."""
        if self.text:
            sys.stderr.write(self.text)
            sys.stderr.flush()


@contextlib.contextmanager
def captured_stderr() -> Iterator[Captured]:
    """Redirect file descriptor 2 into a temporary file while the block runs."""
    captured = Captured()
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield captured
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            captured.text = capture.read().decode(errors="replace")
