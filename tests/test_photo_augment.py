"""Photo-like copies of Fashion-MNIST images (model/photo_augment.py): framed as the real-photo path
frames a find, seeded, and kept apart from the originals they are made from."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from model.data import load_raw
from model.photo_augment import PhotoAugment, expand, photo_like


@pytest.fixture(scope="module")
def samples(data_dir):
    raw = load_raw(data_dir, progress=False)
    return raw["train_images"][:200], raw["train_labels"][:200]


def extent(image: np.ndarray) -> tuple[int, int]:
    rows, cols = np.flatnonzero(image.max(axis=1) > 0), np.flatnonzero(image.max(axis=0) > 0)
    return rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1


def test_copies_are_framed_like_the_photo_path(samples):
    images, labels = samples
    rng = np.random.default_rng(0)
    for image, label in zip(images[:60], labels[:60]):
        copy = photo_like(image, rng, label=int(label))
        assert copy.shape == (28, 28) and copy.dtype == np.uint8
        assert max(extent(copy)) >= 27                      # the longest edge fills the frame
        assert copy.max() == 255 and int(copy[0].max()) + int(copy[-1].max()) + int(copy[:, 0].max()) < 3 * 255


def test_copies_differ_from_the_originals_but_keep_the_garment(samples):
    images, labels = samples
    rng = np.random.default_rng(1)
    copies = np.stack([photo_like(x, rng, label=int(y)) for x, y in zip(images[:60], labels[:60])])
    difference = np.abs(copies.astype(int) - images[:60]).mean(axis=(1, 2))
    assert np.median(difference) > 10                         # shading and outline really change
    silhouettes = [(c > 0).mean() for c in copies], [(x > 0).mean() for x in images[:60]]
    assert abs(np.median(silhouettes[0]) - np.median(silhouettes[1])) < 0.15   # same kind of shape


def test_footwear_pairs_are_two_parts_side_by_side(samples):
    images, labels = samples
    shoe = images[np.flatnonzero(labels == 7)[0]]
    always = PhotoAugment(pair_probability=1.0, outline_px=(0, 0), cut_probability=0, bite_probability=0,
                          rotate=0.0, stretch=(0.0, 0.0), perspective=0.0, close_probability=0.0)
    pair = photo_like(shoe, np.random.default_rng(2), always, label=7)
    columns = (pair > 0).sum(axis=0)
    middle = columns[10:18]
    assert middle.min() < 0.3 * columns.max()                  # a gap (or a deep valley) in the middle
    height, width = extent(pair)
    assert height >= 0.6 * width and height > extent(shoe)[0] + 6     # toe up: far taller than the side view
    never = photo_like(shoe, np.random.default_rng(2), PhotoAugment(pair_probability=0.0, side_pair_probability=0.0,
                                                                    above_probability=0.0), label=7)
    assert extent(never)[1] >= extent(never)[0]                # a single shoe lies flat


def test_expand_is_seeded_and_keeps_labels(samples):
    images, labels = samples
    first, first_labels = expand(images[:20], labels[:20], copies=2, seed=3)
    again, _ = expand(images[:20], labels[:20], copies=2, seed=3)
    other, _ = expand(images[:20], labels[:20], copies=2, seed=4)
    assert first.shape == (60, 28, 28) and np.array_equal(first[:20], images[:20])
    assert np.array_equal(first_labels, np.concatenate([labels[:20]] * 3))
    assert np.array_equal(first, again) and not np.array_equal(first, other)


def test_the_photo_recipe_fine_tunes_another_run_on_photo_like_copies(tmp_path, data_dir, default_run_dir):
    from model import runs
    from model.recipes import get_recipe
    from model.train import train

    shutil.copytree(default_run_dir, tmp_path / "fast-default")
    recipe = get_recipe("photo", epochs=1, batch_size=64, learning_rate=1e-4, val_size=200)
    run_dir = train(recipe, tmp_path, "photo-tiny", data_dir=data_dir, limit=300, progress=False)
    config, metrics = runs.read_config(run_dir), runs.read_metrics(run_dir)
    assert config["n_train"] == 300 * (1 + recipe.photo_copies) and config["settings"]["init_from"] == "fast-default"
    assert metrics["test_accuracy"] > 0.85   # 300 images and one epoch from scratch reach nowhere near this
