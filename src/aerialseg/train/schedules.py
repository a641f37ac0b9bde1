"""Learning-rate schedules and the optimiser: what steps a run takes, epoch by epoch.

The schedule depends on the epoch only, never on the run's length, so a longer run repeats a
shorter one's first epochs exactly; fine-tuning scales the pretrained encoder's steps.
"""

from __future__ import annotations

from aerialseg.core.config.params import TrainParams
from aerialseg.core.framework import keras


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
