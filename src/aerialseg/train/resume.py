"""Training state that survives SIGKILL: one atomic file per completed epoch.

Keras' ``BackupAndRestore`` writes the weights and its epoch counter as two files, one after
the other; a kill between the two pairs epoch N+1's weights with counter N and the resumed
run silently diverges. Here the epoch number is part of the state file's name and the file
appears by rename, so the state on disk is always one whole, completed epoch. The file
holds the model and optimizer variables (``save_weights`` includes the optimizer, so Adam's
moments and the step counter that drives the learning-rate schedule come back too).

The logs (``history.csv``, dvclive's TSV files) are written before the state file. After a
kill they may hold one epoch more than the state; ``trim_history`` and ``trim_live`` cut them
back, byte for byte, so the resumed run appends exactly where the state left off.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np

from aerialseg.core.atomic import atomic_path, write_errors_named
from aerialseg.core.framework import keras
from aerialseg.core.io import read_json, write_json
from aerialseg.core.names import RUN_FILE, list_states, state_path


def read_run(folder: Path) -> dict | None:
    """The run description saved with the state, or None when there is none."""
    path = Path(folder) / RUN_FILE
    return read_json(path) if path.is_file() else None


def start_run(folder: Path, run: dict) -> None:
    """Empty the state folder and record which run its states will belong to."""
    folder = Path(folder)
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    write_json(folder / RUN_FILE, run)


class EpochState(keras.callbacks.Callback):
    """After every epoch, save the full training state atomically; keep the last two.

    The previous state stays as a fallback in case a power loss leaves the newest file
    unreadable (rename is atomic, but not every file system orders data before names).
    """

    def __init__(self, folder: Path, keep: int = 2) -> None:
        super().__init__()
        self.folder = Path(folder)
        self.keep = keep

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        final = state_path(self.folder, epoch + 1)
        partial = final.with_name(f".{final.stem.split('.')[0]}.tmp.weights.h5")  # Keras wants this suffix
        with write_errors_named(final):
            self.model.save_weights(str(partial))
            os.replace(partial, final)
        for path in list(list_states(self.folder).values())[:-self.keep]:
            path.unlink(missing_ok=True)


class EpochSeeds(keras.callbacks.Callback):
    """Set every random layer's seed counter from the epoch number when an epoch begins.

    Dropout and stochastic depth (EfficientNet's blocks) draw from seed generators whose
    counters are not part of a saved state; a resumed process would start them at zero.
    Tied to the epoch, the draws of an epoch are the same whether the run was resumed or not.
    """

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        for state in [v for v in self.model.variables if v.name == "seed_generator_state"]:
            seed = int(state.numpy()[0])
            state.assign(np.array([seed, epoch << 20], dtype=state.dtype))


def restore_latest(model_for: Callable[[int], keras.Model], folder: Path,
                   at_most: int) -> tuple[keras.Model | None, int]:
    """Load the newest readable state with at most ``at_most`` epochs: (model, its epoch), or (None, 0).

    ``model_for(epoch)`` builds the compiled model a state of that epoch loads into (a
    fine-tuning run's optimizer has other variables before and after the encoder thaws);
    its optimizer is built first so that its variables load too.
    """
    for epoch, path in reversed(list_states(folder).items()):
        if epoch > at_most:
            continue
        model = model_for(epoch)
        if model.optimizer is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        try:
            model.load_weights(str(path))
        except (OSError, ValueError):
            continue
        return model, epoch
    return None, 0


def _keep_first_rows(path: Path, delimiter: str, epochs_done: int) -> None:
    """Keep the header and the rows whose first field (epoch or step) is below ``epochs_done``.

    Lines are kept byte for byte, line endings included, so a trimmed log is a prefix of the
    log an uninterrupted run writes and the writer appending to it need not match our dialect.
    """
    path = Path(path)
    if not path.is_file():
        return
    lines = path.read_bytes().splitlines(keepends=True)
    if not lines:
        return
    kept = [lines[0]] + [line for line in lines[1:]
                         if line.strip() and int(line.split(delimiter.encode(), 1)[0]) < epochs_done]
    if kept != lines:
        with atomic_path(path) as tmp:
            Path(tmp).write_bytes(b"".join(kept))


def trim_history(path: Path, epochs_done: int) -> None:
    """Keep only the rows of Keras' ``history.csv`` for the first ``epochs_done`` epochs."""
    _keep_first_rows(path, ",", epochs_done)


def trim_live(folder: Path, epochs_done: int) -> None:
    """Drop dvclive's metric rows logged at steps >= ``epochs_done`` (one step per epoch)."""
    for tsv in Path(folder).glob("plots/metrics/**/*.tsv"):
        _keep_first_rows(tsv, "\t", epochs_done)


def rewind_live_summary(folder: Path, epochs_done: int) -> None:
    """Make dvclive's ``metrics.json`` summary show the values of epoch ``epochs_done`` again.

    Used when a run that went further is cut back to fewer epochs: the summary keeps its
    layout and takes each value from the matching (already trimmed) TSV log.
    """
    folder = Path(folder)
    summary_path = folder / "metrics.json"
    if not summary_path.is_file():
        return
    summary = read_json(summary_path)
    step = epochs_done - 1
    for group, values in summary.items():
        if not isinstance(values, dict):
            continue
        for name in values:
            tsv = folder / "plots" / "metrics" / group / f"{name}.tsv"
            rows = [line.split("\t") for line in tsv.read_text().splitlines()[1:] if line.strip()]
            found = [float(row[1]) for row in rows if int(row[0]) == step]
            if found:
                values[name] = found[0]
    summary["step"] = step
    with atomic_path(summary_path) as tmp:
        Path(tmp).write_text(json.dumps(summary, indent=4) + "\n")  # as dvclive writes it
