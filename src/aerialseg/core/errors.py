"""The user-facing errors: what a stage or the CLI reports as one line instead of a traceback.

Every module raises these for mistakes a user can fix (a bad param, a bad or missing input
file); anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """A mistake the user can fix; its message names the key or file at fault."""


class ParamsError(UserError, ValueError):
    """A parameter is missing, unknown, of the wrong type, or out of range."""


class DataError(UserError, ValueError):
    """An input file is missing, unreadable or not what the pipeline expects."""


class OffPaletteError(DataError):
    """A label holds colours that are neither a class colour nor (where allowed) the boundary."""


def one_line_reason(err: BaseException, limit: int = 200) -> str:
    """What a library said when it failed, as ``Type: message`` on one line of at most ``limit`` characters.

    User-facing errors quote it after the file they name, so a multi-line message from a
    decoder or runtime never breaks the one-line report. A message that only points to the
    previous exception (rasterio's "See previous exception for details.") quotes that one too.
    """
    text = " ".join(str(err).split())
    cause = err.__cause__ or err.__context__
    if cause is not None and "See previous exception for details" in text:  # rasterio's, after a GDAL error
        text = text.replace("See previous exception for details.", "").strip()
        return f"{type(err).__name__}: {text} ({one_line_reason(cause, limit)})"[:limit]
    return f"{type(err).__name__}: {text}"[:limit] if text else type(err).__name__


def listed(items: list[str], limit: int = 5) -> str:
    """Items for a one-line message: the first ``limit``, then how many more."""
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more
