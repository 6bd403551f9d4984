"""Atomic files and directories, the content-addressed stage cache, and the run-directory lock.

A reader never sees a half-written file: everything is written to a temporary sibling, flushed,
and moved into place with ``os.replace``. A cached stage counts as done only when its directory
exists under its final name, which happens in one rename after all of its files are complete.
A stage cache on an fsspec URL keeps a local working copy and mirrors it (w2sbench/_remote_cache.py).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from w2sbench.errors import W2SBenchError
from w2sbench.faults import fault_point

__all__ = [
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_json",
    "atomic_directory",
    "stable_hash",
    "is_url",
    "cache_location",
    "remove_stale_temporaries",
    "refuse_non_finite_stage",
    "StageCache",
    "RunLock",
]


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _owner() -> str:
    """Host and process in temporary names, so cleanup never removes a live writer's files."""
    return f"{socket.gethostname()}-{os.getpid()}"


def remove_stale_temporaries(root: Path) -> int:
    """Delete temporary files and folders under ``root`` left by dead processes of this host; return how many."""
    root = Path(root)
    if not root.is_dir():
        return 0
    host = socket.gethostname()
    removed = 0
    for tmp in sorted(root.rglob(".*.tmp"), key=lambda p: len(p.parts), reverse=True):
        parts = tmp.name.split(".")
        owner = next((p for p in parts if p.startswith(host + "-")), None)
        if owner is None:
            continue  # another machine's writer on shared storage: not ours to judge
        try:
            os.kill(int(owner.rsplit("-", 1)[1]), 0)
            continue  # still running
        except (ProcessLookupError, ValueError):
            pass
        except PermissionError:
            continue
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        removed += 1
    return removed


def _umask() -> int:
    """The process umask (read by setting and restoring it; Python offers no read-only call)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    _ensure_dir(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{_owner()}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes owner-only files; results are for collaborators too
        with os.fdopen(fd, "wb") as f:
            half = len(data) // 2
            f.write(data[:half])
            f.flush()
            fault_point("mid-write")  # half the bytes are on disk, under the temporary name
            f.write(data[half:])
            f.flush()
            os.fsync(f.fileno())
        fault_point("before-rename")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as strict JSON; NaN/Infinity (not JSON) is refused with the path of the value."""
    from w2sbench.finite import first_non_finite

    where = first_non_finite(obj)
    if where is not None:
        raise W2SBenchError(
            f"Refusing to write {Path(path).name}: the value at {where} is not finite (NaN or Infinity is not JSON).",
            "This is a fault of the settings that produced it (a learning rate or weight too large) or a bug; "
            "nothing was written.",
        )
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, ensure_ascii=False, allow_nan=False) + "\n")


def refuse_non_finite_stage(folder: Path, kind: str) -> None:
    """Raise when a stage's JSON or .npy files hold NaN/Infinity: such a stage is never cached."""
    import numpy as np

    from w2sbench.finite import first_non_finite

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


def _ensure_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _storage_error(path, exc) from None


def _storage_error(path: Path, exc: OSError) -> W2SBenchError:
    if exc.errno == errno.ENOSPC:
        return W2SBenchError(f"No space left on the device holding {path}.", "Free disk space or pass another --out.")
    if exc.errno in (errno.EACCES, errno.EROFS, errno.EPERM):
        return W2SBenchError(f"Cannot write to {path} ({exc.strerror}).", "Pass a writable directory with --out.")
    return W2SBenchError(f"Cannot write to {path}: {exc}.", "Pass a writable directory with --out.")


@contextlib.contextmanager
def atomic_directory(target: Path) -> Iterator[Path]:
    """Yield a temporary directory; on success it becomes ``target`` in one rename (existing target wins)."""
    target = Path(target)
    _ensure_dir(target.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.{_owner()}.", suffix=".tmp", dir=target.parent))
    try:
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes owner-only folders
        yield tmp
        fault_point("stage-before-rename")
        for child in tmp.rglob("*"):
            if child.is_file():
                with child.open("rb") as f:
                    os.fsync(f.fileno())
        try:
            os.replace(tmp, target)
        except OSError as exc:
            if target.is_dir():  # someone finished the same stage first: keep theirs
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                raise _storage_error(target, exc) from None
        _fsync_dir(target.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def stable_hash(obj: Any) -> str:
    """A short hash of a JSON-able object; dict order does not matter."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def is_url(location: str | Path) -> bool:
    """Whether a cache location is an fsspec URL (``s3://...``, ``file:///...``) rather than a folder."""
    return isinstance(location, str) and "://" in location


def cache_location(location: str | Path) -> str | Path:
    """A ``--cache-dir`` / ``cache_dir`` value as StageCache takes it: URLs stay strings, folders become Paths."""
    return str(location) if is_url(location) else Path(location)


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
            from w2sbench._remote_cache import RemoteMirror, default_local_root

            self._mirror = RemoteMirror(str(root))
            self.remote = self._mirror.url
            root = Path(local) if local is not None else default_local_root()
        self.root = Path(root)
        self.hits = 0
        self.misses = 0
        self.downloads = 0  # hits served by downloading from the remote

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

    def compute(self, kind: str, key: Any, produce: Callable[[Path], None]) -> Path:
        """Return the cached directory for ``key``, running ``produce(tmp_dir)`` only when it is missing."""
        found = self.get(kind, key)
        if found is not None:
            return found
        self.misses += 1
        path = self.path(kind, key)
        fault_point(f"stage-start-{kind}")
        with atomic_directory(path) as tmp:
            produce(tmp)
            refuse_non_finite_stage(tmp, kind)
            # written last: its presence inside the final directory marks the stage complete
            (tmp / "key.json").write_text(json.dumps(key, sort_keys=True, indent=1, default=str, allow_nan=False))
        self._log(kind, path.name)
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


class RunLock:
    """An exclusive lock on a run directory, so two runs never write into the same place."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / ".lock"
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
        import fcntl

        _ensure_dir(self.path.parent)
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise _storage_error(self.path.parent, exc) from None
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
        import fcntl

        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
