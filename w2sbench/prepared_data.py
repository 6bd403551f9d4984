"""The prepared-data cache: a trust property's loaded data (``PropertyData``), kept between runs so that a
re-run does not parse and clean its source files again (about 3 s of a cached re-run of the default's four
properties went to that).

An entry is keyed by everything its loading read besides the files: the property's name and class, its
options, the data folder, and the source code of the plugin's package and of w2sbench (an edited or
upgraded loader gets a new key). It stays valid while every dataset file the load resolved through
``dataset_file`` has the size and modification time it had (the rule make uses); a changed file reloads
the property. Warnings the load issued are stored with the entry and issued again on every hit.

Only properties that declare ``prepared_data_cache = True`` are cached: their ``load_data`` reads files
only through ``dataset_file`` (all built-in ones do). Entries are JSON (``<cache>/prepared-data/``; nothing
read from a run is unpickled): examples, test sets, sources and ``auxiliary``, which must therefore be
JSON-shaped. Data that do not come back from JSON exactly (same fingerprints, equal auxiliary; a tuple or a
non-finite number in ``auxiliary``, say) are not cached, only loaded each time. Delete the folder to drop
the entries; an unreadable one is reloaded and replaced.
"""

from __future__ import annotations

import builtins
import functools
import hashlib
import importlib.util
import json
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from w2sbench.data import recorded_dataset_files
from w2sbench.files import atomic_write_text, stable_hash
from w2sbench.interfaces import DataContext, Examples, PropertyData, TrustProperty
from w2sbench.jsonio import loads_strict

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


def _file_state(path: Path) -> list[Any]:
    stat = path.stat()
    return [str(path), stat.st_size, stat.st_mtime_ns]


def _encode_examples(examples: Examples) -> dict[str, Any]:
    attributes = {k: np.asarray(v) for k, v in examples.attributes.items()}
    return {"ids": examples.ids, "texts": examples.texts, "labels": examples.labels.tolist(),
            "attributes": {k: {"dtype": v.dtype.str, "values": v.tolist()} for k, v in attributes.items()}}


def _decode_examples(doc: Mapping[str, Any]) -> Examples:
    return Examples(list(doc["ids"]), list(doc["texts"]), np.asarray(doc["labels"], dtype=np.int64),
                    {k: np.asarray(a["values"], dtype=np.dtype(a["dtype"])) for k, a in doc["attributes"].items()})


def _encode(data: PropertyData) -> dict[str, Any]:
    return {"train": _encode_examples(data.train), "tests": {k: _encode_examples(v) for k, v in data.tests.items()},
            "main_test": data.main_test, "num_labels": data.num_labels, "label_names": list(data.label_names),
            "sources": data.sources, "auxiliary": data.auxiliary}


def _decode(doc: Mapping[str, Any]) -> PropertyData:
    return PropertyData(train=_decode_examples(doc["train"]), tests={k: _decode_examples(v) for k, v in doc["tests"].items()},
                        main_test=doc["main_test"], num_labels=int(doc["num_labels"]), label_names=tuple(doc["label_names"]),
                        sources=dict(doc["sources"]), auxiliary=dict(doc["auxiliary"]))


def _same(a: PropertyData, b: PropertyData) -> bool:
    """Whether ``b`` (decoded from JSON) is ``a`` as every stage sees it: the same example fingerprints and fields."""
    return (a.train.fingerprint() == b.train.fingerprint() and list(a.tests) == list(b.tests)
            and all(a.tests[k].fingerprint() == b.tests[k].fingerprint() for k in a.tests)
            and (a.main_test, a.num_labels, tuple(a.label_names), a.sources, a.auxiliary)
            == (b.main_test, b.num_labels, tuple(b.label_names), b.sources, b.auxiliary))


def _warning_category(name: str) -> type[Warning]:
    """A stored warning's category: a built-in one by name, else UserWarning (nothing is imported)."""
    category = getattr(builtins, name, None)
    return category if isinstance(category, type) and issubclass(category, Warning) else UserWarning


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
        path = self.folder / f"{metric.name}-{self.key(metric, options, ctx)[:24]}.json"
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
        self._write(path, data, {"files": [_file_state(p) for p in dict.fromkeys(files)],
                                 "warnings": [[str(w.message), w.category.__name__, w.filename, w.lineno] for w in caught]})
        return data

    @staticmethod
    def _write(path: Path, data: PropertyData, meta: dict[str, Any]) -> None:
        """Store ``data`` when it comes back from JSON unchanged; otherwise (or when the folder is not writable) skip."""
        try:
            text = json.dumps({**meta, "data": _encode(data)}, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
            if not _same(data, _decode(loads_strict(text)["data"])):
                return
            atomic_write_text(path, text)
        except (TypeError, ValueError):  # auxiliary not JSON-shaped, or not finite: loaded each time instead
            return
        except OSError as exc:  # a read-only or full cache folder costs the next run a reload, nothing more
            warnings.warn(f"The prepared data were not cached ({exc}).", RuntimeWarning, stacklevel=3)

    @staticmethod
    def _read(path: Path) -> PropertyData | None:
        """The entry's data when every file it was loaded from is unchanged; None when absent, stale or unreadable."""
        try:
            doc = loads_strict(path.read_bytes())
            if any(_file_state(Path(name)) != [name, size, mtime] for name, size, mtime in doc["files"]):
                return None
            data = _decode(doc["data"])
            replay = [(str(m), _warning_category(str(c)), str(f), int(n)) for m, c, f, n in doc["warnings"]]
        except Exception:  # noqa: BLE001 - absent, truncated, or of another layout: reload and replace
            return None
        for message, category, filename, lineno in replay:
            warnings.warn_explicit(message, category, filename, lineno)
        return data
