"""What every stage script shares: one-line errors for user mistakes, a tidy log."""

from __future__ import annotations

import os
import sys
from typing import Callable

from aerialseg.io import DataError
from aerialseg.palette import OffPaletteError
from aerialseg.params import ParamsError

USER_ERRORS = (ParamsError, DataError, OffPaletteError)


def run_stage(name: str, main: Callable[[], str | None]) -> None:
    """Run a stage's main; print its summary line, or one error line and exit 1.

    User mistakes (bad params, bad or missing input files) never show a traceback.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        summary = main()
    except USER_ERRORS as err:
        print(f"{name}: error: {err}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print(f"{name}: interrupted; no partial output was kept", file=sys.stderr)
        sys.exit(130)
    if summary:
        print(f"{name}: {summary}")
