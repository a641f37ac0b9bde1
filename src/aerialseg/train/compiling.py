"""A run's settings and its compiled model: the network of the model section with the seed's loss,
metrics, optimiser and precision, frozen or thawed encoder, seeded and deterministic.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from aerialseg.core.config.params import ModelParams, Params, TrainParams
from aerialseg.core.framework import keras, tf
from aerialseg.core.input_spec import RGB_UINT8, InputSpec
from aerialseg.train.encoders import build_encoder_unet
from aerialseg.train.losses import DiceFocalLoss, median_frequency_weights, training_metrics
from aerialseg.train.model import build_unet
from aerialseg.train.schedules import EncoderScaledAdam, learning_rate
from aerialseg.train.tile_reader import TileStore


@dataclass(frozen=True)
class TrainConfig:
    """What a training run needs: the run's length and seed, and the model and train sections."""

    epochs: int
    batch_size: int
    checkpoint_epochs: list[int]
    seed: int
    model: ModelParams
    train: TrainParams
    class_names: tuple[str, ...]  # the class table's, in output order: the model has one output per class
    inputs: InputSpec = RGB_UINT8  # the tiles' bands (their manifest's): the model's input

    @classmethod
    def from_params(cls, params: Params, inputs: InputSpec = RGB_UINT8) -> TrainConfig:
        """The training settings of a validated ``params.yaml`` for tiles of ``inputs``."""
        return cls(epochs=params.epochs, batch_size=params.batch_size, checkpoint_epochs=params.checkpoint_epochs,
                   seed=params.seed, model=params.model, train=params.train, class_names=params.classes.names,
                   inputs=inputs)

    def resume_key(self) -> dict:
        """The settings a saved state depends on: all but the run length and checkpoint list.

        The strategy is left out on purpose, so that a run killed on one machine can be
        finished on another.
        """
        train = asdict(self.train)
        train.pop("strategy")
        model = asdict(self.model)
        if self.model.encoder == "none":  # shapes no layer of the plain U-Net
            model.pop("extra_bands")
        return {"batch_size": self.batch_size, "seed": self.seed, "model": model, "train": train,
                "classes": list(self.class_names)}


def make_deterministic(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow and ask TF for deterministic kernels."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def gpu_available() -> bool:
    """Whether TensorFlow sees a GPU."""
    return bool(tf.config.list_physical_devices("GPU"))


def resolve_switch(value: str) -> bool:
    """``auto`` means on with a GPU and off on CPU (where float16 and XLA only slow down)."""
    return gpu_available() if value == "auto" else value == "on"


def loss_class_weights(train: TrainParams, store: TileStore, class_names: tuple[str, ...]) -> list[float] | None:
    """Per-class loss weights, in the order of ``class_names``; ``median_frequency`` counts the train tiles."""
    if train.class_weights == "none":
        return None
    if train.class_weights == "median_frequency":
        counts = store.manifest["class_pixels"].get("train", {})
        return median_frequency_weights([counts.get(name, 0) for name in class_names])
    if isinstance(train.class_weights, str):
        raise ValueError(f"train.class_weights: unknown weighting {train.class_weights!r}")
    weights = dict(train.class_weights)
    return [weights[name] for name in class_names]


def build_model(model: ModelParams, num_classes: int, inputs: InputSpec = RGB_UINT8) -> keras.Model:
    """The model section's network with ``num_classes`` outputs for ``inputs``' bands: the seed's U-Net,
    or a U-Net on a pretrained encoder."""
    if model.encoder == "none":
        return build_unet(num_classes, model.depth, model.base_filters,
                          max_filters=model.max_filters, batch_norm=model.batch_norm, inputs_spec=inputs)
    return build_encoder_unet(model.encoder, model.encoder_weights, num_classes, model.base_filters,
                              model.max_filters, model.batch_norm, inputs_spec=inputs, extra_bands=model.extra_bands)


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
        loss=DiceFocalLoss(len(config.class_names), train.dice_weight, train.focal_weight, train.focal_gamma,
                           class_weights=class_weights),
        metrics=training_metrics(len(config.class_names)),
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
    model = build_model(config.model, len(config.class_names), config.inputs)
    _compile(model, config, steps_per_epoch, class_weights, frozen)
    return model


def unfreeze_encoder(model: keras.Model, config: TrainConfig, steps_per_epoch: int,
                     class_weights: list[float] | None, epoch: int) -> None:
    """Make the encoder trainable after ``epoch`` epochs: a new optimizer, the schedule carried on.

    Adam starts afresh (its moments and bias correction from step 1, so the first steps
    after the thaw are not inflated); the learning-rate schedule continues where it was.
    """
    _compile(model, config, steps_per_epoch, class_weights, frozen=False, first_epoch=epoch)
