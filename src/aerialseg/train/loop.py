"""Train the U-Net from the sharded tile store: resumable, deterministic, distributable.

A run keeps its full state (weights, optimizer, epoch) in a state folder after every
epoch. Started again with the same settings, tiles and training code, it continues from
the last completed epoch, whether the previous process was killed or finished a shorter
run, and produces the same checkpoints, history and dvclive logs as one uninterrupted run.
A run whose state already covers the requested epochs trains nothing: its outputs are
reused (and cut back when fewer epochs are asked for).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from aerialseg.core.config.params import ModelParams
from aerialseg.core.fingerprint import code_digest
from aerialseg.core.framework import keras
from aerialseg.core.io import sha256_of
from aerialseg.core.names import HISTORY_FILE, checkpoint_path, list_checkpoints
from aerialseg.train import resume
from aerialseg.train.checkpoints import PeriodicCheckpoint, save_checkpoint
from aerialseg.train.compiling import (
    TrainConfig,
    compile_model,
    encoder_frozen,
    loss_class_weights,
    make_deterministic,
    unfreeze_encoder,
)
from aerialseg.train.distribute import build_before_fit, is_chief, make_strategy, replica_batch
from aerialseg.train.input_pipeline import steps_per_epoch, tile_dataset
from aerialseg.train.tile_reader import TileStore


def training_code_digest() -> str:
    """What the training code does (docstrings and comments aside): states of other code are not reused."""
    return code_digest([__name__])


@dataclass(frozen=True)
class TrainOutcome:
    """What a call of ``train`` did: epochs taken over from a saved state, epochs trained now."""

    reused: int
    trained: int
    history: dict[str, list[float]] = field(default_factory=dict)


def encoder_weights_digest(model: ModelParams) -> str | None:
    """A digest of the encoder weights file a run starts from (None unless given by path)."""
    if model.encoder == "none" or model.encoder_weights in ("none", "imagenet"):
        return None
    path = Path(model.encoder_weights)
    if not path.is_file():
        return None  # building the model reports the missing file
    return sha256_of(path)


def _clear(*folders: Path) -> None:
    for folder in folders:
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)


def _prune_checkpoints(models: Path, keep: list[int], epochs_done: int) -> None:
    """Drop checkpoints this run will not keep or will write again."""
    for epoch, path in list_checkpoints(models).items():
        if epoch > epochs_done or epoch not in keep:
            path.unlink()


def _missing_checkpoints(config: TrainConfig, models: Path, epochs_done: int) -> list[int]:
    """Checkpoints of the first ``epochs_done`` epochs that are not on disk."""
    return [e for e in config.checkpoint_epochs if e <= epochs_done and not checkpoint_path(models, e).is_file()]


def _logged_epochs(models: Path) -> int:
    """How many epochs ``history.csv`` holds (0 when it is missing)."""
    path = Path(models) / HISTORY_FILE
    if not path.is_file():
        return 0
    return sum(1 for line in path.read_text().splitlines()[1:] if line.strip())


def _cut_back(config: TrainConfig, models: Path, live_dir: Path, epochs_done: int) -> None:
    """Make the outputs those of a run that stopped after ``epochs_done`` epochs."""
    _prune_checkpoints(models, config.checkpoint_epochs, epochs_done)
    resume.trim_history(models / HISTORY_FILE, epochs_done)
    resume.trim_live(live_dir, epochs_done)


def _resume_or_start(model_for: Callable[[int], keras.Model], config: TrainConfig, run: dict, models: Path,
                     live_dir: Path, state_dir: Path) -> tuple[keras.Model | None, int]:
    """Continue from the newest usable state of this run, or start afresh; return (model, epochs done).

    ``model_for(epoch)`` builds a compiled model that a state saved after ``epoch`` epochs
    loads into. A state of the same run that covers ``epochs`` is reused whole when the
    outputs of those epochs are all on disk (the last checkpoint may be rebuilt from the
    state): nothing needs training. A state short of ``epochs`` is restored. Otherwise the
    output folders are emptied, the state folder is claimed for this run and the result is
    (None, 0).
    """
    states = resume.list_states(state_dir)
    if states and resume.read_run(state_dir) == json.loads(json.dumps(run)):
        if max(states) >= config.epochs and _logged_epochs(models) >= config.epochs:
            missing = _missing_checkpoints(config, models, config.epochs)
            model = None
            if missing == [config.epochs]:
                model, done = resume.restore_latest(model_for, state_dir, config.epochs)
                if done == config.epochs:
                    save_checkpoint(model, models, config.epochs)
                    missing = []
            if not missing:
                _cut_back(config, models, live_dir, config.epochs)
                resume.rewind_live_summary(live_dir, config.epochs)
                return model, config.epochs
        model, start = resume.restore_latest(model_for, state_dir, config.epochs - 1)
        if start and not _missing_checkpoints(config, models, start) and _logged_epochs(models) >= start:
            _cut_back(config, models, live_dir, start)
            return model, start
    _clear(models, live_dir)
    resume.start_run(state_dir, run)
    return None, 0


def _phases(config: TrainConfig, start: int) -> list[tuple[int, int, bool]]:
    """(first epoch, end epoch, encoder frozen) of each ``fit`` still to run from ``start``."""
    frozen_epochs = config.train.freeze_encoder_epochs
    phases = [(start, min(frozen_epochs, config.epochs), True), (max(start, frozen_epochs), config.epochs, False)]
    return [phase for phase in phases if phase[0] < phase[1]]


def train(config: TrainConfig, store: TileStore, models: Path, live_dir: Path, state_dir: Path,
          verbose: int = 2) -> TrainOutcome:
    """Train, continuing from ``state_dir`` when it holds a state of this run.

    Leaves checkpoints and ``history.csv`` in ``models``, dvclive logs in ``live_dir``, and
    the latest training state in ``state_dir``. Only the chief process of a multi-worker
    run writes them; the other workers write to a throw-away folder. With
    ``freeze_encoder_epochs``, the decoder trains alone first, then everything.
    """
    from dvclive import Live
    from dvclive.keras import DVCLiveCallback

    class LiveLogger(DVCLiveCallback):
        def on_train_end(self, logs=None) -> None:
            pass  # one dvclive run spans the fine-tuning phases: ended once, after the last

    strategy = make_strategy(config.train.strategy)
    replica_batch(strategy, config.batch_size)
    scratch = None
    if not is_chief(strategy):
        scratch = Path(tempfile.mkdtemp(prefix="aerialseg-worker-"))
        models, live_dir, state_dir = scratch / "models", scratch / "live", scratch / "state"
    run = {"config": config.resume_key(), "tiles": store.digest(), "code": training_code_digest()}
    weights_digest = encoder_weights_digest(config.model)
    if weights_digest:
        run["encoder_weights"] = weights_digest
    steps = steps_per_epoch(store, "train", config.batch_size)
    class_weights = loss_class_weights(config.train, store, config.class_names)

    def model_for(epoch: int) -> keras.Model:
        with strategy.scope():
            return compile_model(config, steps, class_weights, frozen=encoder_frozen(config, epoch))

    try:
        make_deterministic(config.seed)
        with strategy.scope():  # optimizer variables are created while states load
            model, start = _resume_or_start(model_for, config, run, models, live_dir, state_dir)
        if start >= config.epochs:
            return TrainOutcome(reused=start, trained=0)
        if model is None:
            make_deterministic(config.seed)  # a state may have been loaded, then rejected: clean weights
            model = model_for(0)

        live = Live(str(live_dir), dvcyaml=False, save_dvc_exp=False, report=None, resume=start > 0)
        live.step = start
        history: dict[str, list[float]] = {}
        for first, end, frozen in _phases(config, start):
            if not frozen and encoder_frozen(config, first):
                with strategy.scope():
                    unfreeze_encoder(model, config, steps, class_weights, first)
            train_ds = tile_dataset(store, "train", config.batch_size, seed=config.seed, training=True,
                                    first_epoch=first, epochs=end, jitter=config.train.jitter)
            val_ds = tile_dataset(store, "val", config.batch_size, seed=config.seed, training=False)
            build_before_fit(model, strategy, next(iter(val_ds)))
            callbacks = [
                resume.EpochSeeds(),
                PeriodicCheckpoint(models, config.checkpoint_epochs),
                keras.callbacks.CSVLogger(str(models / HISTORY_FILE), append=first > 0),
                LiveLogger(live=live),
                resume.EpochState(state_dir),  # last: logs may run one epoch ahead of the state, never behind
            ]
            fitted = model.fit(train_ds, steps_per_epoch=steps, validation_data=val_ds, epochs=end,
                               initial_epoch=first, callbacks=callbacks, verbose=verbose,
                               shuffle=False)  # tile_dataset orders each epoch, seeded
            for key, values in fitted.history.items():
                history.setdefault(key, []).extend(values)
        live.end()
        return TrainOutcome(reused=start, trained=config.epochs - start, history=history)
    finally:
        keras.mixed_precision.set_global_policy("float32")
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
