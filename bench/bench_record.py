"""Where and when a benchmark's figures were taken, printed with them and kept where asked.

Every bench script prints one JSON line per measurement through ``emit``, which adds the script's
name, the date (UTC) and the machine: its core count, CPU model and the SIMD extensions that decide
which kernels TensorFlow and ONNX Runtime run (AVX2, AVX-512, VNNI, AMX). ``--out FILE``
(``add_out_option``) also appends the line to FILE, so that a figure quoted in the docs can name
the run it came from.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
from pathlib import Path

SIMD_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile",
              "asimd", "sve")


def machine() -> dict:
    """The cores, CPU model and SIMD extensions of this machine (from /proc/cpuinfo where there is one)."""
    model, flags = platform.processor() or platform.machine(), set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                model = value.strip()
            elif key.strip() in ("flags", "Features"):
                flags.update(value.split())
    return {"cores": os.cpu_count(), "cpu": model, "simd": [flag for flag in SIMD_FLAGS if flag in flags]}


def add_out_option(parser: argparse.ArgumentParser) -> None:
    """The ``--out`` option every bench script takes."""
    parser.add_argument("--out", type=Path, help="also append the JSON line(s) to this file")


def emit(record: dict, out: Path | None = None) -> None:
    """Print ``record`` as one JSON line, with the script, the date and the machine; append it to ``out``."""
    line = json.dumps({"bench": Path(sys.argv[0]).stem, **record,
                       "date": datetime.datetime.now(datetime.timezone.utc).date().isoformat(),
                       "machine": machine()})
    print(line, flush=True)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("a") as handle:
            handle.write(line + "\n")
