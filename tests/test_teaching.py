"""The teaching view's data on a tiny trained run: feature maps per conv block, class pictures once."""

from __future__ import annotations

import numpy as np

from model import runs
from test_explain import build_tiny_run
from workbench import teaching, trust


def test_feature_maps_per_block_and_class_pictures_computed_once(tmp_path, data_dir, monkeypatch):
    from workbench.artifacts import test_images

    build_tiny_run(tmp_path / "tiny", data_dir, epochs=1)
    image = test_images(data_dir)[0]
    layers = teaching.feature_maps(tmp_path, "tiny", image)
    assert [label for label, _ in layers] == ["conv1 · 28×28", "conv2 · 14×14", "conv3 · 7×7"]
    for _, maps in layers:
        assert len(maps) == teaching.DEFAULT.channels and maps[0].dtype == np.uint8 and maps[0].max() == 255
    monkeypatch.setattr(teaching, "DEFAULT", teaching.TeachingConfig(steps=5))
    first = teaching.class_images(tmp_path, "tiny")
    assert first.shape == (10, 28, 28) and first.dtype == np.uint8
    assert len({img.tobytes() for img in first}) == 10  # one picture per class, not ten copies
    stored = tmp_path / "tiny" / runs.CLASS_IMAGES
    assert str(np.load(stored)["model_digest"]) == trust.model_digest(tmp_path, "tiny")
    monkeypatch.setattr(teaching, "compute_class_images", lambda *_: (_ for _ in ()).throw(AssertionError))
    assert np.array_equal(teaching.class_images(tmp_path, "tiny"), first)  # read back, not recomputed
    stored.write_bytes(stored.read_bytes()[:200])  # truncated (a full disk): computed again and rewritten
    monkeypatch.setattr(teaching, "compute_class_images", lambda *_: first[::-1].copy())
    assert np.array_equal(teaching.class_images(tmp_path, "tiny"), first[::-1])
    assert np.array_equal(np.load(stored)["images"], first[::-1])
