"""The prepared-data cache: a trust property's loaded data (``PropertyData``), kept between runs so that a
re-run does not parse and clean its source files again (about 3 s of a cached re-run of the default's four
properties went to that).

An entry is keyed by everything its loading read besides the files: the property's name and class, its
options, the data folder, and the Python source of the plugin's package and of w2sbench (an edited or
upgraded loader gets a new key). It stays valid while every dataset file the load resolved through
``dataset_file`` has the inode, size, modification and change times it had when it was resolved; a changed
file reloads the property. A file modified within the last two seconds is not trusted (a write in the same
clock tick would go unseen: git's "racily clean" rule), so such a load is not stored. Warnings the load
issued are stored with the entry and issued again on every hit, and the core's checks run on every hit.

Only properties that declare ``prepared_data_cache = True`` are cached: their ``load_data`` reads files
only through ``dataset_file`` (all built-in ones do). Entries are JSON (``<cache>/prepared-data/``; nothing
read from a run is unpickled): examples, test sets, sources and ``auxiliary``, which must therefore be
JSON-shaped. Data that do not come back from JSON equal (the same example fingerprints, attribute dtypes and
shapes, an equal ``auxiliary``: not a tuple, bytes or a non-finite number in it, say) are not cached, only
loaded each time. Delete the folder to drop the entries; an unreadable one is reloaded and replaced.
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from w2sbench.data import file_state, recorded_dataset_files
from w2sbench.errors import W2SBenchError
from w2sbench.files import atomic_write_text, package_source_hash, stable_hash
from w2sbench.interfaces import DataContext, Examples, PropertyData, TrustProperty
from w2sbench.jsonio import loads_strict

__all__ = ["PreparedDataCache"]

FORMAT = 2  # the entry layout; a new layout is a new key
RACY_SECONDS = 2.0  # a file modified this recently may change again within the same clock tick


def _encode_examples(examples: Examples) -> dict[str, Any]:
    attributes = {k: np.asarray(v) for k, v in examples.attributes.items()}
    return {"ids": examples.ids, "texts": examples.texts, "labels": examples.labels.tolist(),
            "attributes": {k: {"dtype": v.dtype.str, "shape": list(v.shape), "values": v.tolist()} for k, v in attributes.items()}}


def _decode_examples(doc: Mapping[str, Any]) -> Examples:
    return Examples(list(doc["ids"]), list(doc["texts"]), np.asarray(doc["labels"], dtype=np.int64),
                    {k: np.asarray(a["values"], dtype=np.dtype(a["dtype"])).reshape(a["shape"]) for k, a in doc["attributes"].items()})


def _encode(data: PropertyData) -> dict[str, Any]:
    return {"train": _encode_examples(data.train), "tests": {k: _encode_examples(v) for k, v in data.tests.items()},
            "main_test": data.main_test, "num_labels": data.num_labels, "label_names": list(data.label_names),
            "sources": data.sources, "auxiliary": data.auxiliary}


def _decode(doc: Mapping[str, Any]) -> PropertyData:
    return PropertyData(train=_decode_examples(doc["train"]), tests={k: _decode_examples(v) for k, v in doc["tests"].items()},
                        main_test=doc["main_test"], num_labels=int(doc["num_labels"]), label_names=tuple(doc["label_names"]),
                        sources=dict(doc["sources"]), auxiliary=dict(doc["auxiliary"]))


def _same_examples(a: Examples, b: Examples) -> bool:
    """The same fingerprint, and attribute arrays of the same dtype and shape (the fingerprint sees only values)."""
    def layout(e: Examples) -> list[tuple[str, str, tuple[int, ...]]]:
        return [(k, np.asarray(v).dtype.str, np.asarray(v).shape) for k, v in sorted(e.attributes.items())]

    return a.fingerprint() == b.fingerprint() and layout(a) == layout(b)


def _same(a: PropertyData, b: PropertyData) -> bool:
    """Whether ``b`` (decoded from JSON) is ``a`` as every stage sees it."""
    return (_same_examples(a.train, b.train) and list(a.tests) == list(b.tests)
            and all(_same_examples(a.tests[k], b.tests[k]) for k in a.tests)
            and (a.main_test, a.num_labels, tuple(a.label_names), a.sources, a.auxiliary)
            == (b.main_test, b.num_labels, tuple(b.label_names), b.sources, b.auxiliary))


def _category_name(category: type[Warning]) -> str:
    return f"{category.__module__}:{category.__qualname__}"


def _warning_category(name: str) -> type[Warning]:
    """A stored warning's category, found among the modules already imported (nothing is imported on a file's
    say-so); UserWarning when it is not there."""
    module, _, qualname = name.partition(":")
    category: Any = sys.modules.get(module)
    for part in qualname.split("."):
        category = getattr(category, part, None)
    return category if isinstance(category, type) and issubclass(category, Warning) else UserWarning


class PreparedDataCache:
    """Loaded ``PropertyData`` per property and options, in ``root/prepared-data/`` (``root``: a local folder)."""

    def __init__(self, root: Path) -> None:
        self.folder = Path(root) / "prepared-data"
        self.hits = 0
        self.misses = 0

    def key(self, metric: TrustProperty, options: Mapping[str, Any], ctx: DataContext) -> str:
        """The entry's hash (``files.stable_hash``: 20 hex digits) for this property, options and data folder."""
        cls = type(metric)
        return stable_hash({
            "format": FORMAT,
            "property": metric.name,
            "class": f"{cls.__module__}.{cls.__qualname__}",
            "plugin_source": package_source_hash(cls.__module__.split(".")[0]),
            "w2sbench_source": package_source_hash("w2sbench"),
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
        if not metric.prepared_data_cache:
            data = load()
            check(data)
            return data
        path = self.folder / f"{metric.name}-{self.key(metric, options, ctx)}.json"
        cached = self._read(path)
        if cached is not None:
            check(cached)
            self.hits += 1
            return cached
        self.misses += 1
        with recorded_dataset_files() as files, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            data = load()
        for w in caught:  # issued again outside the recording, so the user's filters apply
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        check(data)
        if self._settled(files):
            self._write(path, data, {"files": [[name, *state] for name, state in files.items()],
                                     "warnings": [[str(w.message), _category_name(w.category), w.filename, w.lineno]
                                                  for w in caught]})
        return data

    @staticmethod
    def _settled(files: Mapping[str, list[int]]) -> bool:
        """Whether every file read is as it was when resolved, and not modified in the last RACY_SECONDS."""
        try:
            now = time.time_ns()
            return all(file_state(Path(name)) == state and now - state[2] > RACY_SECONDS * 1e9 for name, state in files.items())
        except OSError:
            return False

    @staticmethod
    def _write(path: Path, data: PropertyData, meta: dict[str, Any]) -> None:
        """Store ``data`` when it comes back from JSON equal; otherwise (or when the folder is not writable) skip."""
        try:
            text = json.dumps({**meta, "data": _encode(data)}, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
            if not _same(data, _decode(loads_strict(text)["data"])):
                return
            atomic_write_text(path, text)
        except (TypeError, ValueError):  # auxiliary not JSON-shaped, or not finite: loaded each time instead
            return
        except (OSError, W2SBenchError) as exc:  # a read-only or full cache folder costs the next run a reload
            warnings.warn(f"The prepared data were not cached ({exc}).", RuntimeWarning, stacklevel=3)

    @staticmethod
    def _read(path: Path) -> PropertyData | None:
        """The entry's data when every file it was loaded from is unchanged; None when absent, stale or unreadable."""
        try:
            doc = loads_strict(path.read_bytes())
            if any(file_state(Path(name)) != state for name, *state in doc["files"]):
                return None
            data = _decode(doc["data"])
            replay = [(str(m), _warning_category(str(c)), str(f), int(n)) for m, c, f, n in doc["warnings"]]
        except Exception:  # noqa: BLE001 - absent, truncated, or of another layout: reload and replace
            return None
        for message, category, filename, lineno in replay:
            warnings.warn_explicit(message, category, filename, lineno)
        return data
