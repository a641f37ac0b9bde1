"""Which file ``--backend auto`` runs for an exported fp32 model: the file itself, or the int8 model
quantised from it, whichever this CPU runs faster; measured once per machine and pair of files, then cached.

No fixed rule picks int8 well everywhere: its gain depends on the layers' width and on the CPU's
int8 instructions (on one AVX-512 VNNI CPU the seed notebook's wide U-Net runs int8 at 2.1x fp32,
the default narrow one at 0.98-1.3x, near a tie; docs/export.md). So ``auto`` measures:

1. **Which int8 model.** The one beside the file, named as the export stage and ``aerialseg export``
   name it (``model.onnx`` -> ``model_int8.onnx``), and only if its card says it was quantised from
   this very file (``quantization.source_sha256``): an int8 file of another checkpoint, or of an
   earlier export, would be a silently different model.
2. **How fast.** Both files predict the same seeded windows of the card's window and bands, taking
   turns (``quantize.int8_speedup``, this machine's speed drifts within seconds); about
   ``MEASURED_PIXELS`` pixels a side, a few seconds.
3. **Which.** int8 when it is at least ``quantize.PAYS`` (1.05) times as fast: it changes results
   (class maps agree with fp32 except on near-ties) and a tie is not worth that.
4. **Cached** in the user's cache folder (``AERIALSEG_CACHE_DIR``, else ``$XDG_CACHE_HOME/aerialseg``,
   else ``~/.cache/aerialseg``), keyed on this machine (CPU model, its instruction flags, the cores
   this process may use, ONNX Runtime's version), both files' SHA-256, the window and the measuring
   code's digest, so that every later call on this machine makes the same choice without measuring,
   and a new model, CPU or runtime measures again. Processes starting together wait for one
   measurement (a lock beside the entry).

A checkpoint of a pipeline (``data/models/epoch_050.keras``) stands for its project's export when
that export was made from this very file (``export.checkpoint_sha256``, ``pipeline_export``): the
same model, already converted, with its int8 model beside it.

The choice is made where ``aerialseg predict`` runs, once for a whole batch: Dask workers run the
chosen file, so one batch's maps never mix the two models.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import os
import platform
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aerialseg.core.errors import DataError
from aerialseg.core.input_spec import InputSpec
from aerialseg.core.io import read_json, sha256_of, write_json
from aerialseg.core.model_card import Card

MEASURED_PIXELS = 32 * 128 * 128  # the export stage's speed check: 32 windows of the default 128 px
REPEATS = 5  # turns of each side; the median ratio is kept
LOCK_WAIT_S = 600  # how long a process waits for another one's measurement of the same pair
INT8_SUFFIX = "_int8"


@dataclass(frozen=True)
class Pick:
    """The file auto runs, the line that says which and why (None: nothing to choose between) and the int8
    model's measured speed over the fp32 one's (None: not measured)."""

    path: Path
    note: str | None = None
    int8_over_fp32: float | None = None


def int8_sibling(path: Path) -> Path:
    """Where an fp32 export's int8 model lies: ``model.onnx`` -> ``model_int8.onnx``."""
    return path.with_name(f"{path.stem}{INT8_SUFFIX}{path.suffix}")


def pipeline_export(checkpoint: Path) -> Path | None:
    """The export stage's fp32 export of ``checkpoint``, if it lies in a pipeline's checkpoint folder
    (``data/models``) and that project's export (``data/export/model.onnx``) was made from this very
    file (its card's ``export.checkpoint_sha256``); else None."""
    from aerialseg.core.names import EXPORT_FP32, EXPORTS, MODELS
    from aerialseg.predict.onnx_model import onnx_card

    folder = checkpoint.resolve().parent
    if folder.parts[-len(MODELS.parts):] != MODELS.parts:
        return None
    export = folder.parents[len(MODELS.parts) - 1] / EXPORTS / EXPORT_FP32
    card = onnx_card(export) if export.is_file() else None
    if card is None or card.export is None or card.export.checkpoint_sha256 != sha256_of(checkpoint):
        return None
    return export


def usable_cores() -> int:
    """The cores this process may run on (its affinity where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def machine() -> dict[str, str | int]:
    """What a speed measurement holds for: the CPU model, a digest of its instruction flags, the cores
    this process may use and ONNX Runtime's version."""
    import onnxruntime

    cpu, flags = platform.processor() or platform.machine(), ""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:  # not Linux: the platform's name of the processor stands for it
        lines = []
    for line in lines:
        key, _, value = (part.strip() for part in line.partition(":"))
        if key == "model name":
            cpu = value
        elif key in ("flags", "Features"):
            flags = value
            break
    return {"cpu": cpu, "flags": hashlib.sha256(flags.encode()).hexdigest()[:16], "cores": usable_cores(),
            "onnxruntime": onnxruntime.__version__}


def cache_folder() -> Path:
    """Where measurements are kept: ``AERIALSEG_CACHE_DIR``, else the XDG cache folder's ``aerialseg``."""
    if os.environ.get("AERIALSEG_CACHE_DIR"):
        return Path(os.environ["AERIALSEG_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "aerialseg"


def speed_windows(inputs: InputSpec, window: int, count: int, seed: int = 0) -> np.ndarray:
    """``count`` seeded windows of uniform band values within the card's normalisation ranges: what a
    convolution costs does not depend on the values, so no image is needed to time one."""
    rng = np.random.default_rng(seed)
    low, high = (np.asarray(values, np.float32) for values in (inputs.normalisation.low, inputs.normalisation.high))
    return rng.uniform(low, high, (count, window, window, len(inputs.bands))).astype(np.float32)


def measurement_key(fp32_sha256: str, int8: Path, window: int) -> dict:
    """Everything an int8-over-fp32 speed depends on: the machine, the files, the window, the code."""
    from aerialseg.core.fingerprint import code_digest

    return {"machine": machine(), "fp32": fp32_sha256, "int8": sha256_of(int8), "window": window,
            "code": code_digest([__name__])}


def _cached(path: Path, key: dict) -> tuple[float, str] | None:
    """A measurement cached under exactly ``key`` (a damaged or foreign entry is none)."""
    try:
        cached = read_json(path) if path.is_file() else None
    except DataError:
        return None
    if isinstance(cached, dict) and cached.get("key") == json.loads(json.dumps(key)):
        return float(cached["int8_over_fp32"]), f"measured {cached['measured']}, cached in {path.parent}"
    return None


def int8_over_fp32(fp32: Path, int8: Path, card: Card, window: int, fp32_sha256: str) -> tuple[float, str]:
    """The int8 model's speed over the fp32 one's on this machine (3 decimals, as cached, so that the first
    call decides as every later one), and when it was measured ("now", or the cached measurement's date).

    A lock beside the entry makes processes that start together on one machine (a job array's) wait for
    one measurement and share it, so they all run the same file."""
    from filelock import FileLock, Timeout

    from aerialseg.predict.quantize import int8_speedup

    key = measurement_key(fp32_sha256, int8, window)
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()
    path = cache_folder() / "int8_speed" / f"{digest}.json"
    with contextlib.ExitStack() as held:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            held.enter_context(FileLock(f"{path}.lock", timeout=LOCK_WAIT_S))
        except (OSError, Timeout):  # a read-only home: measured on every call, said so
            cacheable = False
        else:
            cacheable = True
            cached = _cached(path, key)
            if cached is not None:
                return cached
        count = max(2, MEASURED_PIXELS // window**2)
        speedup = round(int8_speedup(fp32, int8, speed_windows(card.input, window, count), repeats=REPEATS,
                                     count=count), 3)
        measured = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        with contextlib.suppress(DataError, OSError):
            if cacheable:
                write_json(path, {"key": key, "int8_over_fp32": speedup, "measured": measured})
                return speedup, f"measured now, cached in {path.parent}"
    return speedup, f"measured now; not cached, {path.parent} is not writable"


def auto_precision(path: Path, window: int) -> Pick:
    """The file ``--backend auto`` runs for the model file ``path`` (module docstring): an fp32 export,
    or the int8 model quantised from it when this machine runs that at least ``PAYS`` times as fast."""
    from aerialseg.predict.onnx_model import onnx_card
    from aerialseg.predict.quantize import PAYS

    int8 = int8_sibling(path)
    if path.suffix.lower() != ".onnx" or not int8.is_file():
        return Pick(path)
    card = onnx_card(path)
    if card is None or card.export is None or card.export.precision != "float32":
        return Pick(path)
    try:
        int8_card = onnx_card(int8)
    except DataError as err:  # a damaged file beside the model does not stop it
        return Pick(path, f"{path.name}: ONNX Runtime fp32; not weighing {err}")
    how = int8_card.export.quantization if int8_card is not None and int8_card.export is not None else None
    fp32_sha256 = sha256_of(path)
    if how is None or how.source_sha256 != fp32_sha256:
        return Pick(path, f"{path.name}: ONNX Runtime fp32; {int8.name} beside it was not quantised from this "
                          "file (export it again with --quantize int8 to let --backend auto weigh it)")
    speedup, when = int8_over_fp32(path, int8, card, window, fp32_sha256)
    measured = f"{int8.name} runs {speedup:.2f}x its speed on this CPU ({when})"
    if speedup >= PAYS:
        return Pick(int8, f"{path.name}: predicting with {int8.name}, its int8 model (--backend auto: {measured}; "
                          "class maps agree except on near-ties, docs/export.md; --backend onnx keeps fp32)", speedup)
    return Pick(path, f"{path.name}: ONNX Runtime fp32 (--backend auto: {measured}, under {PAYS}x: "
                      "not worth int8's changed results)", speedup)
