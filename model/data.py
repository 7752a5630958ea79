"""Fashion-MNIST data layer: find, download, read and validate the official IDX files.

Where the data is looked for, in order:
  1. an explicit folder (`--data-dir` on the command line),
  2. the `FASHION_MNIST_DIR` environment variable,
  3. a per-user cache folder (`~/.cache/fashion-workbench/fashion-mnist`, or under `XDG_CACHE_HOME`);
when the files are in none of them, they are downloaded into the cache folder from the official
mirror, each checked against its official MD5 before it is moved into place.

Every problem raises `DataError` with the file's path and what is wrong with it.

    from model.data import load_splits
    splits = load_splits()                # train / val / test, uint8 images and labels
    splits.train.images.shape             # (55000, 28, 28)
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import struct
import tempfile
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model.errors import DataError

CLASS_NAMES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
NUM_CLASSES = len(CLASS_NAMES)   # 10: every model's output width and every probability table's
IMAGE_SIZE = 28                  # px: the side of every Fashion-MNIST image and of every model input
ENV_VAR = "FASHION_MNIST_DIR"
MIRROR_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"

IDX_IMAGES_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions
IDX_LABELS_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension


@dataclass(frozen=True)
class IdxFile:
    """One official file: its name, official MD5 (of the .gz), magic and expected count."""
    name: str
    md5: str
    magic: int
    count: int


# Official MD5s as published by zalandoresearch/fashion-mnist (README, "Get the Data").
FILES = {
    "train_images": IdxFile("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d", IDX_IMAGES_MAGIC, 60000),
    "train_labels": IdxFile("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe", IDX_LABELS_MAGIC, 60000),
    "test_images": IdxFile("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79", IDX_IMAGES_MAGIC, 10000),
    "test_labels": IdxFile("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310", IDX_LABELS_MAGIC, 10000),
}
TEST_IMAGES = FILES["test_images"].count  # the official test split: image numbers 0..9,999


@dataclass(frozen=True)
class Split:
    """Images (N, 28, 28) uint8 and labels (N,) uint8, plus their positions in the source file."""
    images: np.ndarray
    labels: np.ndarray
    indices: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class Splits:
    train: Split
    val: Split
    test: Split
    data_dir: Path


# ---------------------------------------------------------------------------------------------
# Reading and validating IDX files

def md5_of(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_idx(path: Path | str, expected_magic: int | None = None,
             expected_count: int | None = None) -> np.ndarray:
    """Read an IDX file (gzipped or raw) into a uint8 array, checking magic, shape and length."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        opener = gzip.open if _is_gzip(path) else open
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: cannot decompress ({exc}); the file is truncated or corrupt") from exc
    return parse_idx(raw, path, expected_magic, expected_count)


def parse_idx(raw: bytes, path: Path, expected_magic: int | None = None,
              expected_count: int | None = None) -> np.ndarray:
    if len(raw) < 8:
        raise DataError(f"{path}: only {len(raw)} bytes, too short for an IDX header")
    magic = struct.unpack(">I", raw[:4])[0]
    if magic not in (IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC):
        raise DataError(f"{path}: wrong magic number {magic}; expected {IDX_IMAGES_MAGIC} (images) "
                        f"or {IDX_LABELS_MAGIC} (labels)")
    if expected_magic is not None and magic != expected_magic:
        raise DataError(f"{path}: magic number {magic}, expected {expected_magic}")
    ndim = magic & 0xFF
    header_size = 4 + 4 * ndim
    if len(raw) < header_size:
        raise DataError(f"{path}: header truncated ({len(raw)} bytes)")
    shape = struct.unpack(f">{ndim}I", raw[4:header_size])
    if ndim == 3 and shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise DataError(f"{path}: images are {shape[1]}x{shape[2]}, expected {IMAGE_SIZE}x{IMAGE_SIZE}")
    if expected_count is not None and shape[0] != expected_count:
        raise DataError(f"{path}: header says {shape[0]} items, expected {expected_count}")
    expected_bytes = header_size + int(np.prod(shape))
    if len(raw) != expected_bytes:
        raise DataError(f"{path}: {len(raw)} bytes of data, expected {expected_bytes} for shape {shape}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header_size).reshape(shape)


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


def verify_file(path: Path, spec: IdxFile) -> None:
    """Check a .gz file's MD5 against the official one."""
    actual = md5_of(path)
    if actual != spec.md5:
        other = next((f.name for f in FILES.values() if f.md5 == actual), None)
        if other:  # two files swapped or copied under the wrong name
            raise DataError(f"{path}: this is the official {other}, not {spec.name}: the files are swapped or "
                            "misnamed; give each its own name")
        raise DataError(f"{path}: checksum mismatch (MD5 {actual}, official {spec.md5}); "
                        "the file is damaged or not the official one: delete it and download again")


# ---------------------------------------------------------------------------------------------
# Finding and downloading

def cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "fashion-workbench" / "fashion-mnist"


def find_data_dir(data_dir: Path | str | None = None) -> tuple[Path, str]:
    """Return (folder, how it was chosen). An explicit or env folder must exist and hold the files."""
    for source, folder in (("--data-dir", data_dir), (ENV_VAR, os.environ.get(ENV_VAR))):
        if folder:
            folder = Path(folder).expanduser()
            if not folder.is_dir():
                raise DataError(f"{folder} (from {source}): folder not found")
            missing = [s.name for s in FILES.values() if _locate(folder, s) is None]
            if missing:
                raise DataError(f"{folder} (from {source}): missing {', '.join(missing)}")
            return folder, source
    return cache_dir(), "cache"


def _locate(folder: Path, spec: IdxFile) -> Path | None:
    """The .gz file, or its decompressed twin if only that is present."""
    for name in (spec.name, spec.name.removesuffix(".gz")):
        if (folder / name).is_file():
            return folder / name
    return None


def download_file(url: str, dest: Path, md5: str | None = None, timeout: float = 60.0,
                  progress: bool = True) -> Path:
    """Download url to dest atomically: into a temp file beside dest, check MD5, then rename."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            _fetch(url, out, timeout, progress)
        if md5 is not None and (actual := md5_of(tmp)) != md5:
            raise DataError(f"{url}: downloaded file fails its checksum (MD5 {actual}, official {md5})")
        os.replace(tmp, dest)
    except (urllib.error.URLError, http.client.HTTPException, OSError, TimeoutError) as exc:
        raise DataError(f"{url}: download failed ({exc}); nothing was saved to {dest}") from exc
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def _fetch(url: str, out, timeout: float, progress: bool) -> None:
    from tqdm import tqdm

    with urllib.request.urlopen(url, timeout=timeout) as response:
        total = int(response.headers.get("Content-Length") or 0) or None
        received = 0
        with tqdm(total=total, unit="B", unit_scale=True, desc=url.rsplit("/", 1)[-1],
                  disable=not progress, leave=False) as bar:
            while chunk := response.read(1 << 16):
                out.write(chunk)
                received += len(chunk)
                bar.update(len(chunk))
    if total is not None and received != total:
        raise DataError(f"{url}: download interrupted after {received} of {total} bytes")


def ensure_data(data_dir: Path | str | None = None, mirror: str = MIRROR_URL,
                progress: bool = True) -> Path:
    """Return a folder holding all four verified files, downloading into the cache if needed."""
    folder, source = find_data_dir(data_dir)
    for spec in FILES.values():
        path = _locate(folder, spec)
        if path is None:
            if source != "cache":  # find_data_dir already checked; kept for clarity
                raise DataError(f"{folder / spec.name}: file not found")
            path = download_file(mirror.rstrip("/") + "/" + spec.name, folder / spec.name,
                                 md5=spec.md5, progress=progress)
        if path.suffix == ".gz":
            verify_file(path, spec)
    return folder


# ---------------------------------------------------------------------------------------------
# Loading and splitting

def load_raw(data_dir: Path | str | None = None, progress: bool = True) -> dict[str, np.ndarray]:
    """The four arrays: train_images, train_labels, test_images, test_labels (validated)."""
    folder = ensure_data(data_dir, progress=progress)
    arrays = {key: read_idx(_locate(folder, spec), spec.magic, spec.count) for key, spec in FILES.items()}
    for split in ("train", "test"):
        labels = arrays[f"{split}_labels"]
        if labels.max() >= len(CLASS_NAMES):
            raise DataError(f"{folder / FILES[split + '_labels'].name}: label {labels.max()} out of range 0-9")
    return arrays


def stratified_split(labels: np.ndarray, val_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, val): val_size images, the same share of every class, reproducible by seed."""
    from sklearn.model_selection import train_test_split

    all_idx = np.arange(len(labels))
    if val_size <= 0:
        return all_idx, all_idx[:0]
    train_idx, val_idx = train_test_split(all_idx, test_size=val_size, stratify=labels, random_state=seed)
    return np.sort(train_idx), np.sort(val_idx)


def load_splits(data_dir: Path | str | None = None, val_size: int = 5000, seed: int = 0,
                progress: bool = True) -> Splits:
    """Train / validation (held out of the 60k training set) / test splits."""
    arrays = load_raw(data_dir, progress=progress)
    train_idx, val_idx = stratified_split(arrays["train_labels"], val_size, seed)
    x, y = arrays["train_images"], arrays["train_labels"]
    test_idx = np.arange(len(arrays["test_labels"]))
    return Splits(
        train=Split(x[train_idx], y[train_idx], train_idx),
        val=Split(x[val_idx], y[val_idx], val_idx),
        test=Split(arrays["test_images"], arrays["test_labels"], test_idx),
        data_dir=find_data_dir(data_dir)[0],
    )


def class_counts(labels: np.ndarray) -> list[int]:
    return np.bincount(labels, minlength=len(CLASS_NAMES)).tolist()
