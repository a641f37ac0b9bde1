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
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from aerialseg import resume
from aerialseg.distribute import build_before_fit, is_chief, make_strategy, replica_batch
from aerialseg.encoders import build_encoder_unet
from aerialseg.fingerprint import code_digest
from aerialseg.framework import keras, tf
from aerialseg.input_pipeline import steps_per_epoch, tile_dataset
from aerialseg.io import atomic_path, sha256_of
from aerialseg.losses import DiceFocalLoss, median_frequency_weights, training_metrics
from aerialseg.model import build_unet
from aerialseg.names import HISTORY_FILE, checkpoint_path, list_checkpoints
from aerialseg.palette import CLASS_NAMES, NUM_CLASSES
from aerialseg.params import ModelParams, Params, TrainParams
from aerialseg.tile_reader import TileStore

# Modules that only carry values or name files: their code does not change what training
# computes (the values themselves are part of the run's settings), so editing them keeps
# saved states valid.
NOT_TRAINING_CODE = ("aerialseg", "aerialseg.errors", "aerialseg.fingerprint", "aerialseg.framework", "aerialseg.io",
                     "aerialseg.names", "aerialseg.params")


def training_code_digest() -> str:
    """What the training code does (docstrings and comments aside): states of other code are not reused."""
    return code_digest([__name__], exclude=NOT_TRAINING_CODE)


def make_deterministic(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow and ask TF for deterministic kernels."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


class PeriodicCheckpoint(keras.callbacks.Callback):
    """Save the model after the given (1-based) epochs, atomically."""

    def __init__(self, folder: Path, epochs: list[int]) -> None:
        super().__init__()
        self.folder = Path(folder)
        self.epochs = set(epochs)

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        if epoch + 1 in self.epochs:
            save_checkpoint(self.model, self.folder, epoch + 1)


def save_checkpoint(model: keras.Model, folder: Path, epoch: int) -> None:
    """Write the checkpoint of ``epoch`` so that it appears whole or not at all.

    The same weights always give the same bytes, so DVC's hash of the models folder says
    whether a retrained run really reproduced the previous one.
    """
    with atomic_path(checkpoint_path(folder, epoch)) as tmp:
        model.save(tmp)
        _make_reproducible(tmp)


def _make_reproducible(path: Path) -> None:
    """Rewrite a ``.keras`` archive without what changes from save to save of the same model.

    That is the save time (archive entry times, ``date_saved``) and the memory addresses
    Keras uses as ids of shared objects in ``config.json``, renumbered in order of appearance.
    """
    with zipfile.ZipFile(path) as archive:
        entries = [(info, archive.read(info)) for info in archive.infolist()]
    with zipfile.ZipFile(path, "w") as archive:
        for info, data in entries:
            if info.filename == "metadata.json":
                metadata = json.loads(data)
                metadata.pop("date_saved", None)
                data = json.dumps(metadata).encode()
            elif info.filename == "config.json":
                data = json.dumps(_renumber_shared_objects(json.loads(data), {})).encode()
            fixed = zipfile.ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0))
            fixed.compress_type, fixed.external_attr = info.compress_type, info.external_attr
            archive.writestr(fixed, data)


def _renumber_shared_objects(node, ids: dict):
    """``node`` with every ``shared_object_id`` replaced by 1, 2, ... in order of first appearance."""
    if isinstance(node, dict):
        return {key: (ids.setdefault(value, len(ids) + 1) if key == "shared_object_id"
                      else _renumber_shared_objects(value, ids)) for key, value in node.items()}
    if isinstance(node, list):
        return [_renumber_shared_objects(value, ids) for value in node]
    return node


@dataclass(frozen=True)
class TrainConfig:
    """What a training run needs: the run's length and seed, and the model and train sections."""

    epochs: int
    batch_size: int
    checkpoint_epochs: list[int]
    seed: int
    model: ModelParams
    train: TrainParams

    @classmethod
    def from_params(cls, params: Params) -> "TrainConfig":
        """The training settings of a validated ``params.yaml``."""
        return cls(epochs=params.epochs, batch_size=params.batch_size, checkpoint_epochs=params.checkpoint_epochs,
                   seed=params.seed, model=params.model, train=params.train)

    def resume_key(self) -> dict:
        """The settings a saved state depends on: all but the run length and checkpoint list.

        The strategy is left out on purpose, so that a run killed on one machine can be
        finished on another.
        """
        train = asdict(self.train)
        train.pop("strategy")
        return {"batch_size": self.batch_size, "seed": self.seed, "model": asdict(self.model), "train": train}


@dataclass(frozen=True)
class TrainOutcome:
    """What a call of ``train`` did: epochs taken over from a saved state, epochs trained now."""

    reused: int
    trained: int
    history: dict[str, list[float]] = field(default_factory=dict)


def gpu_available() -> bool:
    """Whether TensorFlow sees a GPU."""
    return bool(tf.config.list_physical_devices("GPU"))


def resolve_switch(value: str) -> bool:
    """``auto`` means on with a GPU and off on CPU (where float16 and XLA only slow down)."""
    return gpu_available() if value == "auto" else value == "on"


@keras.saving.register_keras_serializable(package="aerialseg")
class FlooredExponentialDecay(keras.optimizers.schedules.ExponentialDecay):
    """Keras' staircase exponential decay, held at ``floor * initial_learning_rate`` once it gets there.

    ``offset`` steps are added to the optimizer's: an optimizer started afresh part-way
    through a run (when the encoder thaws) carries on the run's schedule.
    """

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, floor=0.0, staircase=True, name=None,
                 offset=0):
        super().__init__(initial_learning_rate, decay_steps, decay_rate, staircase=staircase,
                         name=name or "FlooredExponentialDecay")
        self.floor = floor
        self.offset = offset

    def __call__(self, step):
        decayed = super().__call__(step + self.offset if self.offset else step)
        return keras.ops.maximum(decayed, keras.ops.cast(self.initial_learning_rate * self.floor, decayed.dtype))

    def get_config(self) -> dict:
        config = {**super().get_config(), "floor": self.floor}
        return {**config, "offset": self.offset} if self.offset else config


def learning_rate(train: TrainParams, steps_per_epoch: int, first_epoch: int = 0):
    """The learning rate: constant, or multiplied by ``lr_decay`` after every epoch down to a floor.

    The schedule does not depend on the number of epochs, so a longer run repeats a shorter
    one's first epochs exactly (and can reuse their checkpoints' evaluations); the floor
    (``lr_floor`` of the initial rate) keeps a long run learning to its last epoch.
    ``first_epoch`` is where an optimizer created part-way through the run starts.
    """
    if train.lr_schedule == "constant":
        return train.learning_rate
    return FlooredExponentialDecay(train.learning_rate, steps_per_epoch, train.lr_decay, floor=train.lr_floor,
                                   offset=first_epoch * steps_per_epoch)


def loss_class_weights(train: TrainParams, store: TileStore) -> list[float] | None:
    """Per-class loss weights from the config; ``median_frequency`` counts the train tiles."""
    if train.class_weights == "none":
        return None
    if train.class_weights == "median_frequency":
        counts = store.manifest["class_pixels"].get("train", {})
        return median_frequency_weights([counts.get(name, 0) for name in CLASS_NAMES])
    return list(train.class_weights)


@keras.saving.register_keras_serializable(package="aerialseg")
class EncoderScaledAdam(keras.optimizers.Adam):
    """Adam that updates the pretrained encoder's variables at ``encoder_lr_factor`` x the learning rate.

    Fine-tuning moves a pretrained backbone less than a freshly initialised decoder; with
    Adam, scaling the gradients would change nothing, so the step size itself is scaled.
    """

    def __init__(self, *args, encoder_lr_factor: float = 1.0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.encoder_lr_factor = encoder_lr_factor
        self._encoder_keys: set = set()

    def scale_variables(self, variables) -> None:
        """Mark the variables (the encoder's) whose steps are scaled."""
        self._encoder_keys = {self._var_key(v) for v in variables}

    def update_step(self, gradient, variable, learning_rate):
        if self._var_key(variable) in self._encoder_keys:
            learning_rate = learning_rate * self.encoder_lr_factor
        return super().update_step(gradient, variable, learning_rate)

    def get_config(self) -> dict:
        return {**super().get_config(), "encoder_lr_factor": self.encoder_lr_factor}


def build_model(model: ModelParams) -> keras.Model:
    """The model section's network: the seed's U-Net, or a U-Net on a pretrained encoder."""
    if model.encoder == "none":
        return build_unet(NUM_CLASSES, model.depth, model.base_filters,
                          max_filters=model.max_filters, batch_norm=model.batch_norm)
    return build_encoder_unet(model.encoder, model.encoder_weights, NUM_CLASSES, model.base_filters,
                              model.max_filters, model.batch_norm)


def encoder_frozen(config: TrainConfig, epoch: int) -> bool:
    """Whether the encoder is frozen in the state after ``epoch`` epochs (0: at the start).

    The first ``freeze_encoder_epochs`` epochs train the decoder alone; the state saved at
    the end of the last of them still has the frozen optimizer.
    """
    frozen_epochs = config.train.freeze_encoder_epochs
    return frozen_epochs > 0 and epoch <= frozen_epochs


def _compile(model: keras.Model, config: TrainConfig, steps_per_epoch: int, class_weights: list[float] | None,
             frozen: bool, first_epoch: int = 0) -> None:
    train = config.train
    schedule = learning_rate(train, steps_per_epoch, first_epoch)
    if config.model.encoder == "none":
        optimizer = keras.optimizers.Adam(schedule, name="adam")  # not adam_1, ...
    else:
        encoder = model.get_layer("encoder")
        encoder.trainable = not frozen  # frozen, its batch normalisation runs in inference mode too
        optimizer = EncoderScaledAdam(schedule, encoder_lr_factor=train.encoder_lr_factor, name="adam")
        optimizer.scale_variables(encoder.trainable_variables)
    model.compile(
        optimizer=optimizer,
        loss=DiceFocalLoss(NUM_CLASSES, train.dice_weight, train.focal_weight, train.focal_gamma,
                           class_weights=class_weights),
        metrics=training_metrics(NUM_CLASSES),
        jit_compile=resolve_switch(train.jit_compile),
    )


def compile_model(config: TrainConfig, steps_per_epoch: int, class_weights: list[float] | None = None,
                  frozen: bool = False) -> keras.Model:
    """Build and compile the model with the seed's loss and metrics (``frozen``: the encoder frozen).

    Under mixed precision the layers compute in float16 (the head stays float32) and
    Keras wraps the optimizer in dynamic loss scaling. Call inside a strategy's scope to
    distribute it.
    """
    policy = "mixed_float16" if resolve_switch(config.train.mixed_precision) else "float32"
    keras.mixed_precision.set_global_policy(policy)
    model = build_model(config.model)
    _compile(model, config, steps_per_epoch, class_weights, frozen)
    return model


def unfreeze_encoder(model: keras.Model, config: TrainConfig, steps_per_epoch: int,
                     class_weights: list[float] | None, epoch: int) -> None:
    """Make the encoder trainable after ``epoch`` epochs: a new optimizer, the schedule carried on.

    Adam starts afresh (its moments and bias correction from step 1, so the first steps
    after the thaw are not inflated); the learning-rate schedule continues where it was.
    """
    _compile(model, config, steps_per_epoch, class_weights, frozen=False, first_epoch=epoch)


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
    class_weights = loss_class_weights(config.train, store)

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
