"""Finding dataset files: the local mirror (``--data-dir`` / ``W2SBENCH_DATA_DIR``) or an upstream download.

Trust-metric plugins call ``dataset_file`` with the file's path inside the mirror and its upstream
URL. With a mirror, the file must be there (nothing is downloaded); without one, the file is
downloaded once into the run's download cache, atomically.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextvars import ContextVar
from pathlib import Path

from w2sbench.errors import W2SBenchError
from w2sbench.files import atomic_write_bytes
from w2sbench.interfaces import DataContext, Examples

__all__ = ["DATA_DIR_ENV", "dataset_file", "file_sha256", "default_data_dir", "drop_empty_texts", "recorded_dataset_files",
           "file_state"]

DATA_DIR_ENV = "W2SBENCH_DATA_DIR"

# The files ``dataset_file`` resolved inside ``recorded_dataset_files`` (None outside it), with their state then.
_RESOLVED: ContextVar[dict[str, list[int]] | None] = ContextVar("w2sbench_resolved_dataset_files", default=None)


def file_state(path: Path) -> list[int]:
    """What tells a file's versions apart without reading it: [inode, size, modification time (ns), change time
    (ns)] (a copy that keeps the modification time still gets a new change time). Raises OSError when absent."""
    status = Path(path).stat()
    return [status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns]


@contextlib.contextmanager
def recorded_dataset_files() -> Iterator[dict[str, list[int]]]:
    """A dict that collects every path ``dataset_file`` returns while the block runs, with its ``file_state`` at
    that moment: the files a trust property's ``load_data`` read (the prepared-data cache checks them for
    changes)."""
    files: dict[str, list[int]] = {}
    token = _RESOLVED.set(files)
    try:
        yield files
    finally:
        _RESOLVED.reset(token)


def _resolved(path: Path) -> Path:
    files = _RESOLVED.get()
    if files is not None:
        files.setdefault(str(path), file_state(path))
    return path


def default_data_dir() -> str | None:
    """The mirror named by W2SBENCH_DATA_DIR, or None (download from upstream)."""
    return os.environ.get(DATA_DIR_ENV) or None


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def dataset_file(ctx: DataContext, relative: str, url: str | None) -> Path:
    """The local path of a dataset file, from the mirror or downloaded from ``url``."""
    if ctx.data_dir is not None:
        path = ctx.data_dir / relative
        if not path.is_file():
            raise W2SBenchError(
                f"The dataset file {relative} is missing from the data directory {ctx.data_dir}.",
                f"Put the file at {path}, point --data-dir (or {DATA_DIR_ENV}) at a complete mirror, "
                "or leave both unset to download from upstream.",
            )
        if not os.access(path, os.R_OK):
            raise W2SBenchError(f"The dataset file {path} is not readable.", "Fix its permissions.")
        return _resolved(path)
    target = ctx.cache_dir / relative
    if target.is_file():
        return _resolved(target)
    if url is None:
        raise W2SBenchError(
            f"The dataset file {relative} has no public download address.",
            f"Obtain it and pass a data directory holding it with --data-dir (or {DATA_DIR_ENV}).",
        )
    try:
        with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 - fixed https URLs from plugins
            blob = response.read()
    except (urllib.error.URLError, OSError) as exc:
        raise W2SBenchError(
            f"Could not download {relative} from {url} ({exc}).",
            f"Check the network, or pass a local mirror with --data-dir (or {DATA_DIR_ENV}).",
        ) from None
    atomic_write_bytes(target, blob)
    return _resolved(target)


def drop_empty_texts(examples: Examples, source: str | Path) -> Examples:
    """``examples`` without rows whose text is empty or whitespace only (no model can read them), with a
    warning naming ``source`` (the file) and how many rows were dropped. Ids are kept, so they still
    point at the file's rows."""
    keep = [i for i, t in enumerate(examples.texts) if t.strip()]
    dropped = len(examples) - len(keep)
    if dropped:
        import warnings

        warnings.warn(
            f"{source}: dropped {dropped} of {len(examples)} rows whose text is empty or whitespace only.", stacklevel=2
        )
        return examples.subset(keep)
    return examples
