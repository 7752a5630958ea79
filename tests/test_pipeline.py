"""The input pipeline: seeded augmentations (pure tensor functions) and the tf.data stream."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from model.pipeline import make_dataset, random_erase, random_flip, random_shift
from model.recipes import Augment

SEED = tf.constant(0, tf.int64)


def blob_batch(n: int = 8) -> tf.Tensor:
    images = np.zeros((n, 28, 28, 1), dtype="float32")
    images[:, 10:18, 8:14] = 200.0  # an off-centre blob, well inside the 2 px margin
    return tf.constant(images)


def test_random_shift_moves_without_losing_the_blob():
    images = blob_batch(32)
    shifted = random_shift(images, padding=2, seed=SEED).numpy()
    np.testing.assert_allclose(shifted.sum(axis=(1, 2, 3)), images.numpy().sum(axis=(1, 2, 3)))
    rows = [np.nonzero(s[..., 0].any(axis=1))[0][0] for s in shifted]
    assert set(rows) <= {8, 9, 10, 11, 12} and len(set(rows)) > 1


def test_random_flip_mirrors_some_images():
    images = blob_batch(32)
    flipped = random_flip(images, seed=SEED).numpy()
    mirrored = [np.array_equal(f, images.numpy()[0, :, ::-1]) for f in flipped]
    same = [np.array_equal(f, images.numpy()[0]) for f in flipped]
    assert all(m or s for m, s in zip(mirrored, same)) and 0 < sum(mirrored) < 32


def test_random_erase_changes_a_bounded_rectangle():
    images = tf.zeros((64, 28, 28, 1))
    erased = random_erase(images, probability=1.0, area=(0.1, 0.2), seed=SEED).numpy()
    changed = (erased != 0).reshape(64, -1).mean(axis=1)
    assert (changed > 0.03).all() and (changed < 0.35).all()
    assert (random_erase(images, probability=0.0, area=(0.1, 0.2), seed=SEED).numpy() == 0).all()


def test_augmented_batches_repeat_with_the_seed():
    images = np.random.default_rng(0).integers(0, 255, (64, 28, 28), dtype=np.uint8)
    labels = np.arange(64) % 10
    augment = Augment(crop_padding=2, flip=True, erase_probability=0.5)

    def first_batch(seed):
        keras.utils.set_random_seed(seed)
        return next(iter(make_dataset(images, labels, 32, augment, seed=seed)))[0].numpy()

    np.testing.assert_array_equal(first_batch(5), first_batch(5))
    assert not np.array_equal(first_batch(5), first_batch(6))


def test_repeated_training_data_reshuffles_and_reaugments_every_pass():
    images = np.random.default_rng(0).integers(0, 255, (64, 28, 28), dtype=np.uint8)
    labels = np.arange(64) % 10
    keras.utils.set_random_seed(3)
    batches = list(make_dataset(images, labels, 24, Augment(crop_padding=2, flip=True), seed=3,
                                repeat=True).take(6))  # two passes of 24 + 24 + 16 images
    assert [len(y) for _, y in batches] == [24, 24, 16, 24, 24, 16]  # batches never straddle passes
    first, second = (np.concatenate([y.numpy() for _, y in batches[i:i + 3]]) for i in (0, 3))
    assert sorted(first) == sorted(second) == sorted(labels)  # each pass is every image once
    assert not np.array_equal(first, second)  # in a new order
    assert not np.array_equal(batches[0][0].numpy(), batches[3][0].numpy())
