"""The one cache of the workbench: things built from a run's files, rebuilt when a file changes.

    config = cached("config", run_dir / "config.json", lambda: runs.read_config(run_dir))
    predictor = cached("predictor", run_dir / "model.keras", lambda: KerasPredictor(run_dir), "keras")

An entry is keyed by its kind, the file's resolved path, the file's (mtime, size) stamp and any
extra key; a retrained or re-evaluated run is read again without a restart, and the entry for the
file's previous content is dropped. Each entry is built once, by one thread, while the others wait
for it (the server answers a page's callbacks in parallel threads: two loads of one model.keras
would both pay for it). A build that raises is not cached. Least recently used entries go first.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import TypeVar

MAX_ENTRIES = 64  # a few runs' files, models, explainers and the test set: a few hundred MB at most

T = TypeVar("T")
_entries: OrderedDict[tuple, object] = OrderedDict()
_building: dict[tuple, threading.Lock] = {}
_lock = threading.Lock()


def file_stamp(path: Path) -> tuple[int, int]:
    """(mtime_ns, size) of a file, (0, 0) when it is missing: the cache key of its content."""
    try:
        stat = Path(path).stat()
    except OSError:
        return 0, 0
    return stat.st_mtime_ns, stat.st_size


def cached(kind: str, path: Path | str | None, build: Callable[[], T], *key: Hashable) -> T:
    """The entry for (kind, path's content, key), built by `build()` when missing or stale.
    `path` None keys on `key` alone (for things that do not come from one file)."""
    name = str(Path(path).resolve()) if path is not None else ""
    stamp = file_stamp(Path(path)) if path is not None else (0, 0)
    full = (kind, name, *key, stamp)
    with _lock:
        if full in _entries:
            _entries.move_to_end(full)
            return _entries[full]
        building = _building.setdefault(full, threading.Lock())
    with building:
        with _lock:
            if full in _entries:
                return _entries[full]
        try:
            value = build()
        except BaseException:
            with _lock:
                _building.pop(full, None)
            raise
        _store(full, value)
    return value


def _store(full: tuple, value) -> None:
    with _lock:
        for old in [k for k in _entries if k[:-1] == full[:-1]]:  # the same thing at an older stamp
            del _entries[old]
        _entries[full] = value
        _building.pop(full, None)
        while len(_entries) > MAX_ENTRIES:
            _entries.popitem(last=False)


def clear() -> None:
    """Forget every entry (tests; a long-running process never needs it)."""
    with _lock:
        _entries.clear()
