"""Property: any option values either predict (exit 0) or exit 2 with one line, before any work.

The expected outcome is computed here from the documented rules (window 8..8192 and
divisible by 2**depth and by subdivisions; subdivisions 1..64; batch size 1..4096; tta one
of d4, flips, none), independently of the CLI's own checks.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aerialseg.cli import main

DEPTH = 2
NUMBERS = st.one_of(st.integers(-20, 300).map(str), st.integers(-2**70, 2**70).map(str),
                    st.sampled_from(["8", "16", "32", "64", "0", "-1", "1e3", "3.5", "", " 16", "0x10", "sixteen"]),
                    st.text(max_size=6))


def _int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def _valid(window: str, subdivisions: str, batch: str, tta: str) -> bool:
    w, s, b = _int(window), _int(subdivisions), _int(batch)
    if w is None or s is None or b is None or tta not in ("d4", "flips", "none"):
        return False
    return 8 <= w <= 8192 and 1 <= s <= 64 and 1 <= b <= 4096 and w % 2**DEPTH == 0 and w % s == 0


@pytest.fixture(scope="module")
def files(tmp_path_factory, tiny_checkpoint):
    folder = tmp_path_factory.mktemp("cli_fuzz")
    tiny_checkpoint(folder / "m.keras", depth=DEPTH, base_filters=2)
    np.save(folder / "image.npy", np.random.default_rng(0).integers(0, 256, (20, 18, 3), dtype=np.uint8))
    return folder


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(window=NUMBERS, subdivisions=NUMBERS, batch=NUMBERS,
       tta=st.one_of(st.sampled_from(["d4", "flips", "none"]), st.text(max_size=5)),
       backend=st.sampled_from(["keras", "keras", "keras", "auto"]))  # auto converts to ONNX: slower, drawn less
def test_option_values_predict_or_exit_2_with_one_line(files, capsys, window, subdivisions, batch, tta, backend):
    out = files / "out.png"
    out.unlink(missing_ok=True)
    argv = ["predict", str(files / "m.keras"), str(files / "image.npy"), "-o", str(out),
            f"--window={window}", f"--subdivisions={subdivisions}", f"--batch-size={batch}", f"--tta={tta}",
            f"--backend={backend}"]
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code
    err = capsys.readouterr().err
    if _valid(window, subdivisions, batch, tta):
        assert code == 0, err
        assert out.is_file()
    else:
        assert code == 2, err
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("aerialseg predict: error: "), err
        assert "Traceback" not in err
        assert not out.exists()
