"""tf.data input: tiles streamed from the memory-mapped shard store, augmented by epoch.

Every random choice (tile order, rotation, mirror, colour jitter) is a stateless function
of ``(seed, epoch, position)``. A run resumed at epoch ``k`` therefore sees exactly the
batches an uninterrupted run sees from epoch ``k`` on, without saving any RNG state.

Tiles of any bands (``input_spec``) are fed as their raw values (the model normalises them).
The D4 transforms move every band; brightness and contrast act on every band in the units of its
normalisation (a fraction of its ``low .. high``, so 0 .. 255 for 8 bits), saturation and hue only
on red, green and blue, and only when all three are there; values stay inside what the bands'
type can hold (8 and 16 bits; float bands are not clipped).
"""

from __future__ import annotations

import numpy as np

from aerialseg.core.config.params import JitterParams
from aerialseg.core.framework import tf
from aerialseg.core.input_spec import RGB, RGB_UINT8, InputSpec
from aerialseg.train.tile_reader import TileStore

# offsets that give each random decision its own stream under one seed
_ORDER, _ROTATION, _MIRROR, _BRIGHTNESS, _CONTRAST, _SATURATION, _HUE = range(7)


def steps_per_epoch(store: TileStore, split: str, batch_size: int) -> int:
    """Batches per pass over a split (the last batch may be short)."""
    return -(-store.count(split) // batch_size)


NO_JITTER = JitterParams()


def _stream_seed(seed: int, stream: int, counter):
    """A stateless-RNG seed pair for one decision on one sample."""
    return tf.stack([tf.constant(seed * 16 + stream, tf.int64), tf.cast(counter, tf.int64)])


def augment(image, mask, seed: int, counter, jitter: JitterParams = NO_JITTER, spec: InputSpec = RGB_UINT8):
    """One random D4 transform, applied identically to image and mask, then colour jitter (for bands
    of ``spec``).

    ``counter`` identifies the sample (epoch and position), so the same sample in the same
    epoch always gets the same transform.
    """
    k = tf.random.stateless_uniform([], _stream_seed(seed, _ROTATION, counter), 0, 4, tf.int32)
    mirror = tf.random.stateless_uniform([], _stream_seed(seed, _MIRROR, counter)) < 0.5
    mask = mask[..., None]
    image, mask = tf.image.rot90(image, k), tf.image.rot90(mask, k)
    image = tf.cond(mirror, lambda: tf.image.flip_left_right(image), lambda: image)
    mask = tf.cond(mirror, lambda: tf.image.flip_left_right(mask), lambda: mask)
    if jitter.active:
        image = _jitter(image, seed, counter, jitter, spec)
    return image, mask[..., 0]


def _jitter(image, seed: int, counter, jitter: JitterParams, spec: InputSpec):
    """Colour jitter of any bands (module docstring), in each band's normalised units (8-bit: x / 255)."""
    low, span = (tf.constant(v, tf.float32) for v in spec.unit_scale())
    unit = (image - low) / span
    if jitter.brightness:
        unit = tf.image.stateless_random_brightness(unit, jitter.brightness,
                                                    _stream_seed(seed, _BRIGHTNESS, counter))
    if jitter.contrast:
        unit = tf.image.stateless_random_contrast(unit, 1 - jitter.contrast, 1 + jitter.contrast,
                                                  _stream_seed(seed, _CONTRAST, counter))
    if set(RGB) <= set(spec.bands) and (jitter.saturation or jitter.hue):
        where = [spec.bands.index(colour) for colour in RGB]
        rgb = tf.gather(unit, where, axis=-1)
        if jitter.saturation:
            rgb = tf.image.stateless_random_saturation(rgb, 1 - jitter.saturation, 1 + jitter.saturation,
                                                       _stream_seed(seed, _SATURATION, counter))
        if jitter.hue:
            rgb = tf.image.stateless_random_hue(rgb, jitter.hue, _stream_seed(seed, _HUE, counter))
        others = [b for b in range(len(spec.bands)) if b not in where]
        if others:
            rgb = tf.concat([rgb, tf.gather(unit, np.array(others, np.int32), axis=-1)], axis=-1)
        unit = tf.gather(rgb, np.argsort(where + others).astype(np.int32), axis=-1)
    if spec.dtype != "float32":
        top = float(np.iinfo(spec.dtype).max)
        unit = tf.clip_by_value(unit, (0.0 - low) / span, (top - low) / span)
    return unit * span + low


def _tile_reader(store: TileStore, split: str):
    """A graph function mapping a tile's global index to (float32 image, uint8 mask)."""
    shards = store.shards(split)
    patch = store.manifest["patch_size"]
    bands = len(store.facts.input.bands)
    starts = np.cumsum([0] + [len(masks) for _, masks in shards])

    def load(index):
        shard = int(np.searchsorted(starts, index, side="right") - 1)
        images, masks = shards[shard]
        row = int(index) - starts[shard]
        return np.asarray(images[row], np.float32), np.asarray(masks[row])

    def read(index):
        image, mask = tf.numpy_function(load, [index], (tf.float32, tf.uint8), stateful=False)
        image.set_shape((patch, patch, bands))
        mask.set_shape((patch, patch))
        return image, mask

    return read


def tile_dataset(store: TileStore, split: str, batch_size: int, *, seed: int, training: bool,
                 first_epoch: int = 0, epochs: int = 1, jitter: JitterParams = NO_JITTER) -> tf.data.Dataset:
    """Batches of (float32 image: the band values, 0..255 for 8 bits; uint8 mask) from a split's
    memory-mapped shards.

    Training data covers epochs ``first_epoch .. epochs - 1`` back to back, each epoch a
    seeded permutation of the tiles with seeded augmentation and batches that never
    straddle two epochs; pass ``steps_per_epoch`` to ``fit``. Evaluation data is one pass
    in store order. Only the tiles being batched are ever read into memory.
    """
    count = store.count(split)
    read = _tile_reader(store, split)
    spec = store.facts.input
    options = tf.data.Options()
    # every worker reads its own share of each batch; tiles are not files, so shard by data
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    options.deterministic = True
    if not training:
        ds = tf.data.Dataset.range(count).map(read, num_parallel_calls=tf.data.AUTOTUNE)
        return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE).with_options(options)

    def one_epoch(epoch):
        order = tf.random.experimental.stateless_shuffle(tf.range(count, dtype=tf.int64),
                                                         _stream_seed(seed, _ORDER, epoch))
        counters = epoch * count + tf.range(count, dtype=tf.int64)

        def load_and_augment(index, counter):
            image, mask = read(index)
            return augment(image, mask, seed, counter, jitter, spec)

        pairs = tf.data.Dataset.from_tensor_slices((order, counters))
        return pairs.map(load_and_augment, num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size)

    ds = tf.data.Dataset.range(first_epoch, epochs).flat_map(one_epoch)
    return ds.prefetch(tf.data.AUTOTUNE).with_options(options)
