"""Train/test near-duplicates: test images whose nearest training image, in the model's own feature
space, is (almost) the same picture.

    pairs = find_near_duplicates(model, test_images, test_labels, train_images, train_labels)

Cosine similarity of penultimate features (model/features.py) between every test image and every
training image, in chunks of test rows (a 1,000 x 60,000 float32 block is 240 MB at most), keeping
the top-1 training neighbour of each test image. A near-duplicate inflates test accuracy (the
model has seen the picture) and, when the two labels differ, one of them is probably wrong.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from model.features import penultimate_features

# Pairs at or above this cosine similarity are reported. The compact CNN's 96 features (ReLU, then
# average pooling) make every image of a class look alike: on fast-default, 5,351 of the 10,000 test
# images have a training neighbour at >= 0.99 and 1,743 at >= 0.995 (median pixel difference 13/255:
# similar garments, not copies); at >= 0.999 there are 25 pairs, 15 of them the same photo (mean
# absolute pixel difference < 5/255) and all 25 with the same label. The page shows the pixel
# difference beside each pair so an analyst tells a copy from a look-alike.
THRESHOLD = 0.999
CHUNK = 1000  # test rows per matrix product

DUPLICATE_COLUMNS = ["test_index", "train_index", "similarity", "pixel_difference", "test_label", "train_label"]


def top_neighbours(queries: np.ndarray, corpus: np.ndarray, chunk: int = CHUNK) -> tuple[np.ndarray, np.ndarray]:
    """For each query row, the index of its most cosine-similar corpus row and that similarity."""
    queries, corpus = _unit(queries), _unit(corpus)
    best = np.empty(len(queries), np.int64)
    similarity = np.empty(len(queries), np.float32)
    for start in range(0, len(queries), chunk):
        block = queries[start:start + chunk] @ corpus.T
        best[start:start + chunk] = block.argmax(axis=1)
        similarity[start:start + chunk] = block.max(axis=1)
    return best, similarity


def _unit(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def find_near_duplicates(model, test_images: np.ndarray, test_labels: np.ndarray, train_images: np.ndarray,
                         train_labels: np.ndarray, train_indices: np.ndarray | None = None,
                         threshold: float = THRESHOLD) -> pd.DataFrame:
    """Pairs (test image, its nearest training image) with similarity >= threshold, most similar first."""
    best, similarity = top_neighbours(penultimate_features(model, test_images),
                                      penultimate_features(model, train_images))
    hits = np.flatnonzero(similarity >= threshold)
    nearest = best[hits]
    difference = np.abs(test_images[hits].astype(np.float32) - train_images[nearest].astype(np.float32))
    train_indices = np.arange(len(train_labels)) if train_indices is None else np.asarray(train_indices)
    frame = pd.DataFrame({
        "test_index": hits.astype(np.int32), "train_index": train_indices[nearest].astype(np.int32),
        "similarity": similarity[hits], "pixel_difference": difference.reshape(len(hits), -1).mean(axis=1),
        "test_label": np.asarray(test_labels)[hits].astype(np.int8),
        "train_label": np.asarray(train_labels)[nearest].astype(np.int8)}, columns=DUPLICATE_COLUMNS)
    return frame.sort_values("similarity", ascending=False, kind="stable").reset_index(drop=True)
