"""Atomic files and directories, the stable hash of cache keys, and where machine-wide caches live.

A reader never sees a half-written file: everything is written to a temporary sibling, flushed,
and moved into place with ``os.replace``; a directory is built under a temporary name and renamed.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import importlib.util
import inspect
import json
import os
import shutil
import socket
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from w2sbench.errors import W2SBenchError
from w2sbench.faults import fault_point
from w2sbench.finite import first_non_finite

__all__ = [
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_json",
    "atomic_directory",
    "stable_hash",
    "source_hash",
    "package_source_hash",
    "remove_stale_temporaries",
    "global_cache_dir",
    "ensure_dir",
    "file_error",
]


def global_cache_dir() -> Path:
    """Where w2sbench keeps caches shared by all runs (dequantized GGUF weights, file hashes, remote stages)."""
    return Path(os.environ.get("W2SBENCH_CACHE", Path.home() / ".cache" / "w2sbench"))



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
    ensure_dir(path.parent)
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
    where = first_non_finite(obj)
    if where is not None:
        raise W2SBenchError(
            f"Refusing to write {Path(path).name}: the value at {where} is not finite (NaN or Infinity is not JSON).",
            "This is a fault of the settings that produced it (a learning rate or weight too large) or a bug; "
            "nothing was written.",
        )
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, ensure_ascii=False, allow_nan=False) + "\n")


def ensure_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise file_error(path, exc) from None


def file_error(path: Path, exc: OSError) -> W2SBenchError:
    if exc.errno == errno.ENOSPC:
        return W2SBenchError(f"No space left on the device holding {path}.", "Free disk space or pass another --out.")
    if exc.errno in (errno.EACCES, errno.EROFS, errno.EPERM):
        return W2SBenchError(f"Cannot write to {path} ({exc.strerror}).", "Pass a writable directory with --out.")
    return W2SBenchError(f"Cannot write to {path}: {exc}.", "Pass a writable directory with --out.")


@contextlib.contextmanager
def atomic_directory(target: Path) -> Iterator[Path]:
    """Yield a temporary directory; on success it becomes ``target`` in one rename (existing target wins)."""
    target = Path(target)
    ensure_dir(target.parent)
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
                raise file_error(target, exc) from None
        _fsync_dir(target.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def stable_hash(obj: Any) -> str:
    """A short hash of a JSON-able object; dict order does not matter."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def source_hash(modules: Sequence[str]) -> str:
    """A short hash of the source files of the imported ``modules``: a cache key part that editing the code
    changes (a module without a source file counts by its name)."""
    h = hashlib.sha256()
    for name in modules:
        path = inspect.getsourcefile(sys.modules[name])
        h.update(Path(path).read_bytes() if path else name.encode())
    return h.hexdigest()[:20]


@functools.cache
def package_source_hash(package: str) -> str:
    """A short hash of a package's Python source, every ``*.py`` below it with its relative path (or of a single
    module's file; "" when it has no file, e.g. ``__main__``): a cache key part that editing or upgrading the
    package's code changes, whichever of its modules are imported. Computed once per process."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        return ""
    roots = [Path(r) for r in spec.submodule_search_locations or []]
    files = sorted((p, p.relative_to(root)) for root in roots for p in root.rglob("*.py"))
    if not roots and spec.origin and Path(spec.origin).is_file():
        files = [(Path(spec.origin), Path(Path(spec.origin).name))]
    h = hashlib.sha256()
    for path, relative in files:
        h.update(str(relative).encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:20]
