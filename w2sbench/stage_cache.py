"""The content-addressed stage cache and the run-directory lock.

A cached stage counts as done only when its directory exists under its final name, which happens in
one rename after all of its files are complete; a stage holding a non-finite value is never cached.
A stage cache on an fsspec URL keeps a local working copy and mirrors it (w2sbench/_remote_cache.py).
Processes that share a cache folder (``--workers``, w2sbench/executors/_processes.py) compute each stage once: a
missing stage is computed under a lock file beside it, and a process that waited for the lock reads it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from w2sbench._remote_cache import RemoteMirror, default_local_root
from w2sbench.errors import W2SBenchError
from w2sbench.faults import fault_point
from w2sbench.files import (
    atomic_directory,
    ensure_dir,
    file_error,
    remove_stale_temporaries,
    stable_hash,
)
from w2sbench.finite import first_non_finite

__all__ = ["is_url", "cache_location", "refuse_non_finite_stage", "StageCache", "StageNotCached", "RunLock"]


def refuse_non_finite_stage(folder: Path, kind: str) -> None:
    """Raise when a stage's JSON or .npy files hold NaN/Infinity: such a stage is never cached."""
    for child in sorted(Path(folder).rglob("*")):
        where = None
        if child.suffix == ".json":
            where = first_non_finite(json.loads(child.read_text(), parse_constant=float))
        elif child.suffix == ".npy":
            where = first_non_finite(np.load(child, allow_pickle=False, mmap_mode="r")[...])
        if where is not None:
            raise W2SBenchError(
                f"Refusing to cache the {kind} stage: {child.name} holds a non-finite value (at {where}).",
                "Lower the learning rate (--train MODE.lr) or the trust regularizer's weight (--option METRIC.weight) "
                "and run again; nothing of this stage was cached.",
            )



def is_url(location: str | Path) -> bool:
    """Whether a cache location is an fsspec URL (``s3://...``, ``file:///...``) rather than a folder."""
    return isinstance(location, str) and "://" in location


def cache_location(location: str | Path) -> str | Path:
    """A ``--cache-dir`` / ``cache_dir`` value as StageCache takes it: URLs stay strings, folders become Paths."""
    return str(location) if is_url(location) else Path(location)


class StageNotCached(Exception):
    """Raised by a probing StageCache (``StageCache.probing``) at the first stage it would have to compute."""


class StageCache:
    """Stage outputs keyed by a hash of everything that determines them: ``root/<kind>/<hash>/``.

    ``root`` may be an fsspec URL (anything with ``://``, e.g. ``s3://bucket/prefix``). The stages then
    live in a local working cache (``local``, else ``$W2SBENCH_LOCAL_CACHE``, else the machine's
    ``~/.cache/w2sbench/stages``) that is mirrored to the URL: a local miss is downloaded from there when
    the remote has the entry complete, and a stage computed here is uploaded. ``self.root`` is always the
    local folder; ``self.remote`` the URL (None for a plain folder).
    """

    def __init__(self, root: str | Path, local: Path | None = None) -> None:
        self.remote: str | None = None
        self._mirror: Any = None
        if is_url(root):
            self._mirror = RemoteMirror(str(root))
            self.remote = self._mirror.url
            root = Path(local) if local is not None else default_local_root()
        self.root = Path(root)
        self.hits = 0
        self.misses = 0
        self.downloads = 0  # hits served by downloading from the remote
        # per stage kind ("train", "predict", "live"): stages computed here and their seconds, writing included
        self.computed_by_kind: Counter[str] = Counter()
        self.seconds_by_kind: defaultdict[str, float] = defaultdict(float)
        self._probing = False

    @contextlib.contextmanager
    def probing(self) -> Iterator[None]:
        """Within the block, a missing stage raises StageNotCached instead of being computed: whoever runs the
        work can tell, cheaply, whether it is all cached (w2sbench/executors/_processes.py)."""
        self._probing = True
        try:
            yield
        finally:
            self._probing = False

    @property
    def location(self) -> str:
        """The URL of a mirrored cache, else the local folder."""
        return self.remote or str(self.root)

    def path(self, kind: str, key: Any) -> Path:
        return self.root / kind / stable_hash(key)

    def get(self, kind: str, key: Any) -> Path | None:
        path = self.path(kind, key)
        if (path / "key.json").is_file():
            if self._mirror is not None:  # computed here by a run cut short before its upload finished
                self._mirror.upload(kind, path.name, path)
            self.hits += 1
            return path
        if self._mirror is not None and self._mirror.download(kind, path.name, path):
            self.hits += 1
            self.downloads += 1
            return path
        return None

    def compute(self, kind: str, key: Any, produce: Callable[[Path], None], record: bool = True) -> Path:
        """Return the cached directory for ``key``, running ``produce(tmp_dir)`` only when it is missing.

        ``record=False``: derived data rather than a stage (w2sbench/findings_cache.py), left out of computed.log."""
        found = self.get(kind, key)
        if found is not None:
            return found
        path = self.path(kind, key)
        if self._probing:
            raise StageNotCached(f"{kind}/{path.name}")
        with _stage_lock(path):
            found = self.get(kind, key)  # another process computed it while this one waited for the lock
            if found is not None:
                return found
            self.misses += 1
            fault_point(f"stage-start-{kind}")
            start = time.perf_counter()
            with atomic_directory(path) as tmp:
                produce(tmp)
                refuse_non_finite_stage(tmp, kind)
                # written last: its presence inside the final directory marks the stage complete
                (tmp / "key.json").write_text(json.dumps(key, sort_keys=True, indent=1, default=str, allow_nan=False))
            if record:
                self._log(kind, path.name)
                self.computed_by_kind[kind] += 1
                self.seconds_by_kind[kind] += time.perf_counter() - start
        if self._mirror is not None:
            self._mirror.upload(kind, path.name, path)
        return path

    def _log(self, kind: str, digest: str) -> None:
        """Append to ``computed.log``: which stages this cache ever computed (the resume tests read it)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / "computed.log").open("a") as f:
            f.write(f"{kind}/{digest}\n")
            f.flush()
            os.fsync(f.fileno())

    def clean_partial(self) -> int:
        """Remove temporary files and directories left by interrupted (dead) writers; return how many."""
        return remove_stale_temporaries(self.root)


@contextlib.contextmanager
def _stage_lock(path: Path) -> Iterator[None]:
    """Hold ``.<stage>.lock`` beside a stage's folder while computing it (released if the process dies).

    The holder removes the file when done; a process that was waiting on the removed file then finds the
    stage complete, and one that arrives later locks a new file and finds it complete too."""
    lock = path.parent / f".{path.name}.lock"
    ensure_dir(lock.parent)
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise file_error(lock.parent, exc) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        with contextlib.suppress(OSError):
            lock.unlink()
        os.close(fd)  # closing releases the lock


class RunLock:
    """An exclusive lock on a run directory, so two runs never write into the same place."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / ".lock"
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
        ensure_dir(self.path.parent)
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise file_error(self.path.parent, exc) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = ""
            with contextlib.suppress(OSError):
                holder = self.path.read_text().strip()
            raise W2SBenchError(
                f"The run directory {self.path.parent} is in use by another w2sbench process{f' ({holder})' if holder else ''}.",
                "Wait for it to finish, or pass a different --out.",
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()}".encode())
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
