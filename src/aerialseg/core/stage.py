"""What every stage script shares: one-line errors for user mistakes, a tidy log."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from aerialseg.core.atomic import sweep_temporaries
from aerialseg.core.errors import UserError

# where stages write: their temporaries left by a kill are removed by whichever stage runs next
WORK_FOLDERS = (Path("data"), Path("metrics"), Path("reports"))


def run_stage(name: str, main: Callable[[], str | None], outputs: Iterable[Path] = ()) -> None:
    """Run a stage's main; print its summary line, or one error line and exit 1.

    User mistakes (bad params, bad or missing input files) never show a traceback. What an
    interrupted earlier run left in ``outputs``, beside them and in the work folders
    (temporary files and folders) is removed first.
    """
    outputs = [Path(output) for output in outputs]
    try:
        for folder in {*outputs, *(output.parent for output in outputs), *WORK_FOLDERS}:
            sweep_temporaries(folder, recursive=folder in outputs)
        summary = main()
    except UserError as err:
        print(f"{name}: error: {err}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print(f"{name}: interrupted; no partial output was kept", file=sys.stderr)
        sys.exit(130)
    if summary:
        print(f"{name}: {summary}")


def warn(name: str, message: str) -> None:
    """Say something the user should know that does not stop the stage (one line, on stderr)."""
    print(f"{name}: warning: {message}", file=sys.stderr)
