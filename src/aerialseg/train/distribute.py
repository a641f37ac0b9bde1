"""tf.distribute strategies for the train stage: one device, all local GPUs, or many machines.

``batch_size`` is always the global batch: each step consumes ``batch_size`` tiles split
evenly across replicas, and gradients are averaged over all of them. The learning rate
therefore applies to the global batch unchanged; adding GPUs speeds a step up without
changing what an epoch computes (up to float summation order, and the Dice term, which is
computed per replica's share of the batch).
"""

from __future__ import annotations

import os

from aerialseg.core.config.params import STRATEGIES
from aerialseg.core.errors import ParamsError
from aerialseg.core.framework import tf


def make_strategy(name: str) -> tf.distribute.Strategy:
    """The strategy named by ``train.strategy``.

    ``auto``: all local GPUs when there are several, else one device. ``one_device``:
    TensorFlow's default strategy, which runs on the first GPU, else the CPU; not
    ``OneDeviceStrategy``, whose distributed input iterator made every CPU epoch take twice
    as long (bench/train.py). ``mirrored``: every local GPU, or every logical CPU when
    there is no GPU. ``multi_worker``: one process per machine, the cluster read from
    ``TF_CONFIG``.
    """
    if name == "multi_worker":  # first: it must be created before TensorFlow starts its runtime
        if "TF_CONFIG" not in os.environ:
            raise ParamsError("train.strategy: multi_worker needs the TF_CONFIG environment variable "
                              "(cluster and task of this process); see docs/training.md, 'Several machines'")
        _patch_keras_for_multi_worker()
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if name == "auto":
        name = "mirrored" if len(gpus) > 1 else "one_device"
    if name == "one_device":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        devices = [d.name for d in gpus or tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    raise ParamsError(f"train.strategy: {name!r} is not one of {', '.join(STRATEGIES)}")


def replica_batch(strategy: tf.distribute.Strategy, batch_size: int) -> int:
    """Tiles per replica per step; the global batch must split evenly."""
    replicas = strategy.num_replicas_in_sync
    if batch_size % replicas:
        raise ParamsError(f"batch_size: {batch_size} does not split evenly over {replicas} replicas; "
                          f"use a multiple of {replicas}")
    return batch_size // replicas


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes outputs (always, except for non-chief workers)."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True
    resolver = strategy.cluster_resolver
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return not has_chief and resolver.task_type == "worker" and resolver.task_id == 0


def build_before_fit(model, strategy: tf.distribute.Strategy, sample_batch) -> None:
    """Create the optimizer and metric variables from a local batch before ``fit``.

    Needed under MultiWorkerMirroredStrategy only: Keras 3's ``fit`` otherwise reduces a
    distributed data batch across workers to learn its shapes, which fails
    (keras-team/keras#20585). Building here makes that step unnecessary.
    """
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return
    with strategy.scope():
        model._symbolic_build(data_batch=sample_batch)
    model._maybe_symbolic_build = lambda *args, **kwargs: None


_PATCHED = False


def _patch_keras_for_multi_worker() -> None:
    """Average per-replica scalar logs across workers without an axis.

    Keras 3's TensorFlow trainer reduces the scalar loss and metric values of a
    multi-worker step with ``axis=0``, which TensorFlow rejects for scalars
    (keras-team/keras#20585, tensorflow/tensorflow#72388). Only that reduction changes.
    """
    global _PATCHED
    if _PATCHED:
        return
    from keras.src.backend.tensorflow import trainer as tf_trainer

    original = tf_trainer.reduce_per_replica

    def reduce_per_replica(values, strategy, reduction):
        if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and reduction in ("auto", "mean"):
            return tf.nest.map_structure(lambda value: strategy.reduce("MEAN", value, axis=None), values)
        return original(values, strategy, reduction)

    tf_trainer.reduce_per_replica = reduce_per_replica
    _PATCHED = True
