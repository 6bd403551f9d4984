"""The prepared-data cache: a trust property's loaded data (``PropertyData``), kept between runs so that a
re-run does not parse and clean its source files again (about 3 s of a cached re-run of the default's four
properties went to that).

An entry is keyed by everything its loading read besides the files: the property's name and class, its
options, the data folder, and the source code of the plugin's package and of w2sbench (an edited or
upgraded loader gets a new key). It stays valid while every dataset file the load resolved through
``dataset_file`` has the size and modification time it had (the rule make uses); a changed file reloads
the property. Warnings the load issued are stored with the entry and issued again on every hit.

Only properties that declare ``prepared_data_cache = True`` are cached: their ``load_data`` reads files
only through ``dataset_file`` (all built-in ones do). Entries are pickles in the local cache folder
(``<cache>/prepared-data/``), never mirrored to a remote stage cache: a pickle runs code when read, so only
this machine's own are read. Delete the folder to drop them; an unreadable entry is reloaded and replaced.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import io
import pickle
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from w2sbench.data import recorded_dataset_files
from w2sbench.files import atomic_write_bytes, stable_hash
from w2sbench.interfaces import DataContext, PropertyData, TrustProperty

__all__ = ["PreparedDataCache", "source_digest"]

FORMAT = 1  # the entry layout; a new layout is a new key


@functools.cache
def source_digest(package: str) -> str:
    """sha256 hex digest of a package's Python source (every ``*.py`` below it, paths included), or of a
    single module's file. Computed once per process."""
    spec = importlib.util.find_spec(package)
    if spec is None:
        return ""
    if spec.submodule_search_locations:
        files = sorted(p for root in spec.submodule_search_locations for p in Path(root).rglob("*.py"))
        base = [Path(root) for root in spec.submodule_search_locations][0]
    else:
        files = [Path(spec.origin)] if spec.origin else []
        base = files[0].parent if files else Path()
    h = hashlib.sha256()
    for path in files:
        h.update(str(path.relative_to(base) if path.is_relative_to(base) else path.name).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def _file_state(path: Path) -> tuple[str, int, int]:
    stat = path.stat()
    return str(path), stat.st_size, stat.st_mtime_ns


class PreparedDataCache:
    """Loaded ``PropertyData`` per property and options, in ``root/prepared-data/`` (``root``: a local folder)."""

    def __init__(self, root: Path) -> None:
        self.folder = Path(root) / "prepared-data"
        self.hits = 0
        self.misses = 0

    def key(self, metric: TrustProperty, options: Mapping[str, Any], ctx: DataContext) -> str:
        """The entry's hash (sha256 hex) for this property, options and data folder."""
        cls = type(metric)
        return stable_hash({
            "format": FORMAT,
            "property": metric.name,
            "class": f"{cls.__module__}.{cls.__qualname__}",
            "plugin_source": source_digest(cls.__module__.split(".")[0]),
            "w2sbench_source": source_digest("w2sbench"),
            "options": dict(options),
            "data_dir": str(ctx.data_dir) if ctx.data_dir is not None else None,
        })

    def load(
        self,
        metric: TrustProperty,
        options: Mapping[str, Any],
        ctx: DataContext,
        load: Callable[[], PropertyData],
        check: Callable[[PropertyData], None],
    ) -> PropertyData:
        """The property's data: from the cache when its entry is valid, else ``load()`` (then ``check``-ed
        and stored). ``check`` raises on data that must not be used (nothing is stored then); errors of
        ``load`` and ``check`` propagate unchanged."""
        if not getattr(metric, "prepared_data_cache", False):
            data = load()
            check(data)
            return data
        path = self.folder / f"{metric.name}-{self.key(metric, options, ctx)[:24]}.pickle"
        cached = self._read(path)
        if cached is not None:
            self.hits += 1
            return cached
        self.misses += 1
        with recorded_dataset_files() as files, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            data = load()
        for w in caught:  # issued again outside the recording, so the user's filters apply
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        check(data)
        meta = {"files": [_file_state(p) for p in dict.fromkeys(files)],
                "warnings": [(str(w.message), w.category, w.filename, w.lineno) for w in caught]}
        blob = io.BytesIO()
        pickle.dump(meta, blob, protocol=pickle.HIGHEST_PROTOCOL)
        pickle.dump(data, blob, protocol=pickle.HIGHEST_PROTOCOL)
        try:
            atomic_write_bytes(path, blob.getvalue())
        except OSError as exc:  # a read-only or full cache folder costs the next run a reload, nothing more
            warnings.warn(f"The prepared data of {metric.name} was not cached ({exc}).", RuntimeWarning, stacklevel=2)
        return data

    @staticmethod
    def _read(path: Path) -> PropertyData | None:
        """The entry's data when every file it was loaded from is unchanged; None when absent, stale or unreadable."""
        try:
            with path.open("rb") as f:
                meta = pickle.load(f)
                for name, size, mtime in meta["files"]:
                    if _file_state(Path(name)) != (name, size, mtime):
                        return None
                data = pickle.load(f)
        except Exception:  # noqa: BLE001 - absent, truncated, or written by other code: reload and replace
            return None
        if not isinstance(data, PropertyData):
            return None
        for message, category, filename, lineno in meta["warnings"]:
            warnings.warn_explicit(message, category, filename, lineno)
        return data
