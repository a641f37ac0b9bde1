"""What every stage script shares: one-line errors for user mistakes, a tidy log."""

from __future__ import annotations

import sys
from typing import Callable

from aerialseg.errors import UserError


def run_stage(name: str, main: Callable[[], str | None]) -> None:
    """Run a stage's main; print its summary line, or one error line and exit 1.

    User mistakes (bad params, bad or missing input files) never show a traceback.
    """
    try:
        summary = main()
    except UserError as err:
        print(f"{name}: error: {err}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print(f"{name}: interrupted; no partial output was kept", file=sys.stderr)
        sys.exit(130)
    if summary:
        print(f"{name}: {summary}")
