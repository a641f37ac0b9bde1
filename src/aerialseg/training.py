"""Train the U-Net from the sharded tile store: resumable, deterministic, distributable.

A run keeps its full state (weights, optimizer, epoch) in a state folder after every
epoch. Started again with the same settings it continues from the last completed epoch,
whether the previous process was killed or finished a shorter run, and it produces the
same checkpoints, history and dvclive logs as one uninterrupted run.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import keras
import tensorflow as tf

from aerialseg import resume
from aerialseg.distribute import build_before_fit, is_chief, make_strategy, replica_batch
from aerialseg.input_pipeline import Jitter, steps_per_epoch, tile_dataset
from aerialseg.io import atomic_path
from aerialseg.losses import DiceFocalLoss, median_frequency_weights, training_metrics
from aerialseg.model import build_unet
from aerialseg.palette import CLASS_NAMES, NUM_CLASSES
from aerialseg.tiling import TileStore

CHECKPOINT_PATTERN = "epoch_{epoch:03d}.keras"


def make_deterministic(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow and ask TF for deterministic kernels."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def checkpoint_path(folder: Path, epoch: int) -> Path:
    """Where the checkpoint after ``epoch`` lives."""
    return Path(folder) / CHECKPOINT_PATTERN.format(epoch=epoch)


def list_checkpoints(folder: Path) -> dict[int, Path]:
    """Checkpoints in a folder by epoch, in epoch order."""
    found = {}
    for path in sorted(Path(folder).glob("epoch_*.keras")):
        try:
            found[int(path.stem.split("_")[1])] = path
        except (IndexError, ValueError):
            continue
    return dict(sorted(found.items()))


class PeriodicCheckpoint(keras.callbacks.Callback):
    """Save the model after the given (1-based) epochs, atomically."""

    def __init__(self, folder: Path, epochs: list[int]) -> None:
        super().__init__()
        self.folder = Path(folder)
        self.epochs = set(epochs)

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        if epoch + 1 in self.epochs:
            with atomic_path(checkpoint_path(self.folder, epoch + 1)) as tmp:
                self.model.save(tmp)


@dataclass(frozen=True)
class TrainConfig:
    """What a training run needs, independent of where the params came from."""

    epochs: int
    batch_size: int
    checkpoint_epochs: list[int]
    seed: int
    depth: int
    base_filters: int
    max_filters: int | None
    batch_norm: bool
    learning_rate: float
    lr_schedule: str
    lr_decay: float
    dice_weight: float
    focal_weight: float
    focal_gamma: float
    mixed_precision: str = "off"
    jit_compile: str = "off"
    strategy: str = "one_device"
    class_weights: str | tuple[float, ...] = "none"
    jitter: Jitter = field(default_factory=Jitter)

    @classmethod
    def from_params(cls, params) -> "TrainConfig":
        """The training settings of a validated ``params.yaml`` (``aerialseg.params.Params``)."""
        return cls(
            epochs=params.epochs, batch_size=params.batch_size, checkpoint_epochs=params.checkpoint_epochs,
            seed=params.seed, depth=params.model.depth, base_filters=params.model.base_filters,
            max_filters=params.model.max_filters, batch_norm=params.model.batch_norm,
            learning_rate=params.train.learning_rate, lr_schedule=params.train.lr_schedule,
            lr_decay=params.train.lr_decay, dice_weight=params.train.dice_weight,
            focal_weight=params.train.focal_weight, focal_gamma=params.train.focal_gamma,
            mixed_precision=params.train.mixed_precision, jit_compile=params.train.jit_compile,
            strategy=params.train.strategy, class_weights=params.train.class_weights,
            jitter=Jitter(**params.train.jitter),
        )

    def resume_key(self) -> dict:
        """The settings a saved state depends on: all but the run length and checkpoint list.

        The strategy is left out on purpose, so that a run killed on one machine can be
        finished on another.
        """
        settings = asdict(self)
        for name in ("epochs", "checkpoint_epochs", "strategy"):
            settings.pop(name)
        return settings


def gpu_available() -> bool:
    """Whether TensorFlow sees a GPU."""
    return bool(tf.config.list_physical_devices("GPU"))


def resolve_switch(value: str) -> bool:
    """``auto`` means on with a GPU and off on CPU (where float16 and XLA only slow down)."""
    return gpu_available() if value == "auto" else value == "on"


def learning_rate(config: TrainConfig, steps_per_epoch: int):
    """The learning rate: constant, or multiplied by ``lr_decay`` after every epoch.

    The decay does not depend on the number of epochs, so a longer run repeats a shorter
    one's first epochs exactly (and can reuse their checkpoints' evaluations).
    """
    if config.lr_schedule == "constant":
        return config.learning_rate
    return keras.optimizers.schedules.ExponentialDecay(config.learning_rate, steps_per_epoch, config.lr_decay,
                                                       staircase=True)


def loss_class_weights(config: TrainConfig, store: TileStore) -> list[float] | None:
    """Per-class loss weights from the config; ``median_frequency`` counts the train tiles."""
    if config.class_weights == "none":
        return None
    if config.class_weights == "median_frequency":
        counts = store.manifest["class_pixels"].get("train", {})
        return median_frequency_weights([counts.get(name, 0) for name in CLASS_NAMES])
    return list(config.class_weights)


def compile_model(config: TrainConfig, steps_per_epoch: int, class_weights: list[float] | None = None) -> keras.Model:
    """Build and compile the U-Net with the seed's loss and metrics.

    Under mixed precision the layers compute in float16 (the head stays float32) and
    Keras wraps the optimizer in dynamic loss scaling. Call inside a strategy's scope to
    distribute it.
    """
    policy = "mixed_float16" if resolve_switch(config.mixed_precision) else "float32"
    keras.mixed_precision.set_global_policy(policy)
    model = build_unet(NUM_CLASSES, config.depth, config.base_filters,
                       max_filters=config.max_filters, batch_norm=config.batch_norm)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate(config, steps_per_epoch)),
        loss=DiceFocalLoss(NUM_CLASSES, config.dice_weight, config.focal_weight, config.focal_gamma,
                           class_weights=class_weights),
        metrics=training_metrics(NUM_CLASSES),
        jit_compile=resolve_switch(config.jit_compile),
    )
    return model


def store_digest(store: TileStore) -> str:
    """A digest of the tile index: a saved state only resumes on the same tiles."""
    return hashlib.sha256((store.folder / "index.csv").read_bytes()).hexdigest()[:16]


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


def _outputs_complete(config: TrainConfig, models: Path, epochs_done: int) -> bool:
    """Whether the checkpoints and history of the first ``epochs_done`` epochs are all there."""
    expected = [e for e in config.checkpoint_epochs if e <= epochs_done]
    return all(checkpoint_path(models, e).is_file() for e in expected) and (models / "history.csv").is_file()


def code_digest() -> str:
    """A digest of the modules that define training: states from other code are not resumed."""
    from aerialseg import input_pipeline, losses, model

    digest = hashlib.sha256()
    for source in (input_pipeline.__file__, losses.__file__, model.__file__, __file__):
        digest.update(Path(source).read_bytes())
    return digest.hexdigest()[:16]


def _resume_or_start(model: keras.Model, config: TrainConfig, run: dict, models: Path, live_dir: Path,
                     state_dir: Path) -> int:
    """Restore the newest usable state of this run into ``model`` and cut the logs back to it.

    Returns the number of completed epochs to continue from; 0 means start afresh, in which
    case the output folders are emptied and the state folder is claimed for this run.
    A run that already reached ``epochs`` (or more) is retrained, not reused.
    """
    states = resume.saved_states(state_dir)
    start = 0
    same_run = resume.read_run(state_dir) == json.loads(json.dumps(run))
    if same_run and states and max(states) < config.epochs:
        start = resume.restore_latest(model, state_dir, below=config.epochs)
    if start and _outputs_complete(config, models, start):
        _prune_checkpoints(models, config.checkpoint_epochs, start)
        resume.trim_history(models / "history.csv", start)
        resume.trim_live(live_dir, start)
        return start
    _clear(models, live_dir)
    resume.start_run(state_dir, run)
    return 0


def train(config: TrainConfig, store: TileStore, models: Path, live_dir: Path, state_dir: Path,
          verbose: int = 2) -> tuple[keras.callbacks.History, int]:
    """Train, resuming from ``state_dir`` when it holds a state of this run; return (history, resumed epoch).

    Leaves checkpoints and ``history.csv`` in ``models``, dvclive logs in ``live_dir``, and
    the latest training state in ``state_dir``. Only the chief process of a multi-worker
    run writes them; the other workers write to a throw-away folder.
    """
    from dvclive import Live
    from dvclive.keras import DVCLiveCallback

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    strategy = make_strategy(config.strategy)
    replica_batch(strategy, config.batch_size)
    scratch = None
    if not is_chief(strategy):
        scratch = Path(tempfile.mkdtemp(prefix="aerialseg-worker-"))
        models, live_dir, state_dir = scratch / "models", scratch / "live", scratch / "state"
    run = {"config": config.resume_key(), "tiles": store_digest(store), "code": code_digest()}
    steps = steps_per_epoch(store, "train", config.batch_size)
    class_weights = loss_class_weights(config, store)
    try:
        make_deterministic(config.seed)
        had_states = bool(resume.saved_states(state_dir))
        with strategy.scope():
            model = compile_model(config, steps, class_weights)
            start = _resume_or_start(model, config, run, models, live_dir, state_dir)
        if start == 0 and had_states:  # a state may have been loaded, then rejected: start from clean weights
            make_deterministic(config.seed)
            with strategy.scope():
                model = compile_model(config, steps, class_weights)

        train_ds = tile_dataset(store, "train", config.batch_size, seed=config.seed, training=True,
                                first_epoch=start, epochs=config.epochs, jitter=config.jitter)
        val_ds = tile_dataset(store, "val", config.batch_size, seed=config.seed, training=False)
        build_before_fit(model, strategy, next(iter(val_ds)))
        live = Live(str(live_dir), dvcyaml=False, save_dvc_exp=False, report=None, resume=start > 0)
        live.step = start
        callbacks = [
            PeriodicCheckpoint(models, config.checkpoint_epochs),
            keras.callbacks.CSVLogger(str(models / "history.csv"), append=start > 0),
            DVCLiveCallback(live=live),
            resume.EpochState(state_dir),  # last: logs may run one epoch ahead of the state, never behind
        ]
        history = model.fit(train_ds, steps_per_epoch=steps, validation_data=val_ds, epochs=config.epochs,
                            initial_epoch=start, callbacks=callbacks, verbose=verbose,
                            shuffle=False)  # tile_dataset orders each epoch, seeded
        return history, start
    finally:
        keras.mixed_precision.set_global_policy("float32")
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
