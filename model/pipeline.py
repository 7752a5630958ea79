"""The input pipeline: uint8 images -> float32 pixels 0..255 (N, 28, 28, 1), batched, augmented per batch.

    ds = make_dataset(images, labels, batch_size=256, augment=recipe.augment, seed=0, repeat=True)

Augmentations are stateless and seeded per batch (random shift after padding, horizontal flip,
random erasing), and each epoch's order and batch seeds derive from (seed, epoch), so a run repeats
exactly and a resumed run continues the uninterrupted one's stream. (The study's rotations and zooms
are Keras layers with their own seeded generators: repeatable from the start, not across a resume.)
"""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf

from model.data import IMAGE_SIZE
from model.recipes import Augment


def uniform(shape, seed, salt: int, minval=0.0, maxval=1.0, dtype=tf.float32):
    """Stateless uniform noise: the same (seed, salt) always gives the same numbers (repeatable runs)."""
    return tf.random.stateless_uniform(shape, tf.stack([seed, tf.constant(salt, tf.int64)]), minval, maxval, dtype)


def random_shift(images, padding: int, seed):
    """Random crop after zero padding = a random integer shift of up to `padding` px each way."""
    n = tf.shape(images)[0]
    shifts = tf.cast(uniform([n, 2], seed, 1, -padding, padding + 1, tf.int32), tf.float32)
    ones, zeros = tf.ones([n, 1]), tf.zeros([n, 1])
    transforms = tf.concat([ones, zeros, -shifts[:, :1], zeros, ones, -shifts[:, 1:], zeros, zeros], axis=1)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=transforms, output_shape=[IMAGE_SIZE, IMAGE_SIZE], fill_value=0.0,
        interpolation="NEAREST", fill_mode="CONSTANT")


def random_flip(images, seed):
    flip = uniform([tf.shape(images)[0], 1, 1, 1], seed, 2) < 0.5
    return tf.where(flip, tf.reverse(images, axis=[2]), images)


def random_erase(images, probability: float, area: tuple[float, float], seed):
    """Random erasing: a rectangle of random size, aspect and place filled with noise, per image."""
    n, size = tf.shape(images)[0], float(IMAGE_SIZE)
    share = uniform([n], seed, 3, area[0], area[1])
    aspect = tf.exp(uniform([n], seed, 4, math.log(0.3), math.log(1 / 0.3)))
    h = tf.minimum(tf.sqrt(share * size * size * aspect), size)
    w = tf.minimum(tf.sqrt(share * size * size / aspect), size)
    top = uniform([n], seed, 5) * (size - h)
    left = uniform([n], seed, 6) * (size - w)
    grid = tf.range(size)
    rows = (grid[None, :] >= top[:, None]) & (grid[None, :] < (top + h)[:, None])
    cols = (grid[None, :] >= left[:, None]) & (grid[None, :] < (left + w)[:, None])
    chosen = uniform([n], seed, 7) < probability
    mask = rows[:, :, None] & cols[:, None, :] & chosen[:, None, None]
    noise = uniform(tf.shape(images), seed, 8, 0.0, 255.0)
    return tf.where(mask[..., None], noise, images)


def augment_fn(augment: Augment, seed: int):
    """A function (batch of float pixels, batch seed) -> augmented batch, from the recipe's settings."""
    extra = []  # the study's rotations and zooms: Keras layers with their own seeded generators
    if augment.rotation:
        extra.append(keras.layers.RandomRotation(augment.rotation, fill_mode="constant", seed=seed))
    if augment.zoom:
        extra.append(keras.layers.RandomZoom(augment.zoom, fill_mode="constant", seed=seed))

    def apply(images, batch_seed):
        if augment.crop_padding:
            images = random_shift(images, augment.crop_padding, batch_seed)
        if augment.flip:
            images = random_flip(images, batch_seed)
        for layer in extra:
            images = layer(images, training=True)
        if augment.erase_probability:
            images = random_erase(images, augment.erase_probability, augment.erase_area, batch_seed)
        return images
    return apply


def make_dataset(images: np.ndarray, labels: np.ndarray, batch_size: int, augment: Augment | None = None,
                 seed: int = 0, drop_remainder: bool = False, repeat: bool = False,
                 start_epoch: int = 0) -> tf.data.Dataset:
    """Batches of (float32 (B, 28, 28, 1) pixels, int labels); shuffled and augmented when training.

    drop_remainder leaves out the last, partial batch (multi-worker training: see model.train.train).
    repeat makes it endless, each pass (= one epoch) reshuffled and augmented anew: fit then reads one
    iterator for the whole run (with steps_per_epoch) instead of opening one per epoch, which on this
    machine stalled some epochs' start by 8-10 s (measured: 3 stalls in 8 epochs, none in 10).
    When training, epoch e's order and augmentation depend only on (seed, e), and the stream starts at
    start_epoch: a resumed run sees the batches the uninterrupted run saw from there on.
    """
    if augment is None:
        ds = tf.data.Dataset.from_tensor_slices((images[..., None], labels.astype(np.int32)))
        ds = ds.batch(batch_size, drop_remainder=drop_remainder).map(lambda x, y: (tf.cast(x, tf.float32), y))
        return (ds.repeat() if repeat else ds).prefetch(tf.data.AUTOTUNE)
    pixels, targets = tf.constant(images[..., None]), tf.constant(labels.astype(np.int32))
    apply, n = augment_fn(augment, seed), len(labels)

    def one_epoch(epoch):  # (batch of indices, batch seed) for every batch of epoch `epoch`
        order = tf.argsort(tf.random.stateless_uniform([n], tf.stack([tf.constant(seed, tf.int64), epoch])))
        batches = tf.data.Dataset.from_tensor_slices(order).batch(batch_size, drop_remainder=drop_remainder)
        first = (seed * 1_000_003 + epoch) * 1_000_003  # batch seeds unique per (seed, epoch, batch)
        return batches.enumerate().map(lambda i, idx: (idx, first + i))

    def load(idx, batch_seed):
        x = tf.cast(tf.gather(pixels, idx), tf.float32)
        return apply(x, batch_seed), tf.gather(targets, idx)

    epochs = tf.data.Dataset.counter(start_epoch) if repeat else tf.data.Dataset.range(start_epoch, start_epoch + 1)
    ds = epochs.flat_map(one_epoch).map(load, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)
