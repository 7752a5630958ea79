"""The data layer: IDX reading and validation, finding folders, downloading, splitting.

Small IDX files are written by the tests; the download path runs against an HTTP server on 127.0.0.1.
"""

from __future__ import annotations

import gzip
import hashlib
import http.server
import struct
import threading
from pathlib import Path

import numpy as np
import pytest

from model import data
from model.data import DataError


# ---------------------------------------------------------------------------------------------
# Helpers: write small IDX files

def idx_images(images: np.ndarray) -> bytes:
    n, h, w = images.shape
    return struct.pack(">IIII", data.IDX_IMAGES_MAGIC, n, h, w) + images.astype(np.uint8).tobytes()


def idx_labels(labels: np.ndarray) -> bytes:
    return struct.pack(">II", data.IDX_LABELS_MAGIC, len(labels)) + labels.astype(np.uint8).tobytes()


def write(path: Path, raw: bytes, compress: bool = True) -> Path:
    path.write_bytes(gzip.compress(raw) if compress else raw)
    return path


@pytest.fixture
def small_images():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(20, 28, 28), dtype=np.uint8)


@pytest.fixture
def small_dataset(tmp_path, monkeypatch):
    """A folder of four tiny IDX files (30 train, 10 test), with FILES patched to their MD5s."""
    rng = np.random.default_rng(1)
    contents = {
        "train_images": idx_images(rng.integers(0, 256, (30, 28, 28))),
        "train_labels": idx_labels(np.arange(30) % 10),
        "test_images": idx_images(rng.integers(0, 256, (10, 28, 28))),
        "test_labels": idx_labels(np.arange(10)),
    }
    files = {}
    for key, raw in contents.items():
        spec = data.FILES[key]
        path = write(tmp_path / spec.name, raw)
        count = 30 if key.startswith("train") else 10
        files[key] = data.IdxFile(spec.name, hashlib.md5(path.read_bytes()).hexdigest(), spec.magic, count)
    monkeypatch.setattr(data, "FILES", files)
    monkeypatch.delenv(data.ENV_VAR, raising=False)
    return tmp_path


# ---------------------------------------------------------------------------------------------
# Reading

@pytest.mark.parametrize("compress", [True, False])
def test_read_idx_round_trips_images(tmp_path, small_images, compress):
    path = write(tmp_path / "images.idx", idx_images(small_images), compress)
    out = data.read_idx(path, data.IDX_IMAGES_MAGIC, 20)
    assert out.dtype == np.uint8 and out.shape == (20, 28, 28)
    np.testing.assert_array_equal(out, small_images)


def test_read_idx_round_trips_labels(tmp_path):
    labels = np.array([9, 0, 0, 3, 0, 2, 7], dtype=np.uint8)
    out = data.read_idx(write(tmp_path / "labels.gz", idx_labels(labels)), data.IDX_LABELS_MAGIC, 7)
    np.testing.assert_array_equal(out, labels)


def test_missing_file_names_it(tmp_path):
    with pytest.raises(DataError, match=r"nope\.gz: file not found"):
        data.read_idx(tmp_path / "nope.gz")


def test_truncated_gzip_is_reported(tmp_path, small_images):
    blob = gzip.compress(idx_images(small_images))
    path = tmp_path / "cut.gz"
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DataError, match=r"cut\.gz: cannot decompress.*truncated or corrupt"):
        data.read_idx(path)


def test_wrong_magic_is_reported(tmp_path, small_images):
    raw = bytearray(idx_images(small_images))
    raw[0:4] = struct.pack(">I", 1234)
    with pytest.raises(DataError, match=r"wrong magic number 1234"):
        data.read_idx(write(tmp_path / "bad.gz", bytes(raw)))


def test_labels_where_images_expected(tmp_path):
    path = write(tmp_path / "labels.gz", idx_labels(np.zeros(5)))
    with pytest.raises(DataError, match=r"magic number 2049, expected 2051"):
        data.read_idx(path, data.IDX_IMAGES_MAGIC)


def test_wrong_count_is_reported(tmp_path, small_images):
    path = write(tmp_path / "images.gz", idx_images(small_images))
    with pytest.raises(DataError, match=r"header says 20 items, expected 60000"):
        data.read_idx(path, data.IDX_IMAGES_MAGIC, 60000)


def test_short_payload_is_reported(tmp_path, small_images):
    raw = idx_images(small_images)[:-100]
    with pytest.raises(DataError, match=r"bytes of data, expected"):
        data.read_idx(write(tmp_path / "short.gz", raw))


def test_wrong_image_size_is_reported(tmp_path):
    raw = struct.pack(">IIII", data.IDX_IMAGES_MAGIC, 2, 32, 32) + bytes(2 * 32 * 32)
    with pytest.raises(DataError, match=r"32x32, expected 28x28"):
        data.read_idx(write(tmp_path / "big.gz", raw))


# ---------------------------------------------------------------------------------------------
# Finding and verifying folders

def test_checksum_mismatch_names_file(small_dataset, monkeypatch):
    spec = data.FILES["test_labels"]
    monkeypatch.setitem(data.FILES, "test_labels", data.IdxFile(spec.name, "0" * 32, spec.magic, spec.count))
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\.gz: checksum mismatch"):
        data.ensure_data(small_dataset)


def test_swapped_files_are_named_as_swapped(data_dir, tmp_path):
    import shutil

    for spec in data.FILES.values():
        shutil.copy(Path(data_dir) / spec.name, tmp_path / spec.name)
    train, test = (tmp_path / data.FILES[k].name for k in ("train_labels", "test_labels"))
    train.rename(tmp_path / "swap")
    test.rename(train)
    (tmp_path / "swap").rename(test)
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte\.gz: this is the official "
                                        r"t10k-labels-idx1-ubyte\.gz, not train-labels"):
        data.ensure_data(tmp_path)


def test_missing_folder(tmp_path):
    with pytest.raises(DataError, match=r"from --data-dir\): folder not found"):
        data.find_data_dir(tmp_path / "absent")


def test_folder_missing_a_file(small_dataset):
    (small_dataset / data.FILES["test_images"].name).unlink()
    with pytest.raises(DataError, match=r"missing t10k-images-idx3-ubyte\.gz"):
        data.ensure_data(small_dataset)


def test_env_var_is_used(small_dataset, monkeypatch):
    monkeypatch.setenv(data.ENV_VAR, str(small_dataset))
    folder, source = data.find_data_dir(None)
    assert folder == small_dataset and source == data.ENV_VAR


def test_data_dir_wins_over_env(small_dataset, tmp_path, monkeypatch):
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path / "elsewhere"))
    assert data.find_data_dir(small_dataset) == (small_dataset, "--data-dir")


def test_cache_dir_follows_xdg(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert data.cache_dir() == tmp_path / "fashion-workbench" / "fashion-mnist"


# ---------------------------------------------------------------------------------------------
# Splits

def test_splits_are_stratified_and_reproducible(small_dataset):
    a = data.load_splits(small_dataset, val_size=10, seed=3, progress=False)
    b = data.load_splits(small_dataset, val_size=10, seed=3, progress=False)
    c = data.load_splits(small_dataset, val_size=10, seed=4, progress=False)
    assert len(a.train) == 20 and len(a.val) == 10 and len(a.test) == 10
    assert data.class_counts(a.val.labels) == [1] * 10
    np.testing.assert_array_equal(a.val.indices, b.val.indices)
    assert not np.array_equal(a.val.indices, c.val.indices)
    assert not set(a.train.indices) & set(a.val.indices)


def test_real_data_counts(data_dir):
    splits = data.load_splits(data_dir, progress=False)
    assert data.class_counts(splits.test.labels) == [1000] * 10
    assert data.class_counts(splits.val.labels) == [500] * 10
    assert data.class_counts(splits.train.labels) == [5500] * 10
    # The first labels published with the official files, in file order.
    labels = np.empty(60000, dtype=np.uint8)
    labels[splits.train.indices], labels[splits.val.indices] = splits.train.labels, splits.val.labels
    assert labels[:10].tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]
    assert splits.test.labels[:10].tolist() == [9, 2, 1, 1, 6, 1, 4, 6, 5, 7]


# ---------------------------------------------------------------------------------------------
# Downloading from a local HTTP server on 127.0.0.1

class _Handler(http.server.BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}
    truncate: set[str] = set()

    def do_GET(self):  # noqa: N802 (http.server's naming)
        name = self.path.rsplit("/", 1)[-1]
        if name not in self.files:
            self.send_error(500, "server error")
            return
        body = self.files[name]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2] if name in self.truncate else body)

    def log_message(self, *args):
        pass


@pytest.fixture
def mirror(small_dataset):
    """Serve the small dataset's files on 127.0.0.1; yields (url, handler class)."""
    handler = type("Handler", (_Handler,), {"files": {}, "truncate": set()})
    for spec in data.FILES.values():
        handler.files[spec.name] = (small_dataset / spec.name).read_bytes()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", handler
    server.shutdown()
    server.server_close()


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return data.cache_dir()


def test_download_fills_cache(mirror, empty_cache):
    url, _ = mirror
    folder = data.ensure_data(None, mirror=url, progress=False)
    assert folder == empty_cache
    assert sorted(p.name for p in folder.iterdir()) == sorted(s.name for s in data.FILES.values())
    assert len(data.load_raw(None, progress=False)["test_labels"]) == 10


def test_corrupt_download_leaves_nothing(mirror, empty_cache):
    url, handler = mirror
    name = data.FILES["train_labels"].name
    handler.files[name] = gzip.compress(b"not the file")
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte\.gz: downloaded file fails its checksum"):
        data.ensure_data(None, mirror=url, progress=False)
    assert not (empty_cache / name).exists()
    assert not list(empty_cache.glob("*.part"))


def test_server_error_is_reported(mirror, empty_cache):
    url, handler = mirror
    del handler.files[data.FILES["test_images"].name]
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte\.gz: download failed.*500"):
        data.ensure_data(None, mirror=url, progress=False)
    assert not (empty_cache / data.FILES["test_images"].name).exists()


def test_interrupted_download_leaves_nothing(mirror, empty_cache):
    url, handler = mirror
    name = data.FILES["train_images"].name
    handler.truncate.add(name)
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz"):
        data.ensure_data(None, mirror=url, progress=False)
    assert not (empty_cache / name).exists()
    assert not list(empty_cache.glob("*.part"))
