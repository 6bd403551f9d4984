"""The prepared-data cache (w2sbench/prepared_data.py): a property's loaded data kept between runs, reloaded when
a file it read, its options or its code change; never stored when the data fail the core's checks."""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from w2sbench.data import dataset_file, recorded_dataset_files
from w2sbench.errors import W2SBenchError
from w2sbench.interfaces import DataContext, Examples, NoRegularizer, PropertyData, TrustProperty
from w2sbench.plugin_manager import get_plugins
from w2sbench.prepared_data import PreparedDataCache


class CsvProperty(TrustProperty):
    """A third-party-style property: one labelled CSV file from the data folder, loads counted."""

    name = "csvprop"
    primary = "accuracy"
    prepared_data_cache = True
    default_options = {"rows": 3}

    def __init__(self) -> None:
        self.loads = 0

    def load_data(self, ctx: DataContext, options: Any) -> PropertyData:
        self.loads += 1
        path = dataset_file(ctx, "csvprop/rows.csv", None)
        rows = [line.split(",") for line in path.read_text().splitlines()][: int(options["rows"])]
        if any(not text for text, _ in rows):
            warnings.warn("csvprop: an empty text", UserWarning, stacklevel=1)
        examples = Examples([f"r{i}" for i in range(len(rows))], [t for t, _ in rows], np.array([int(y) for _, y in rows]))
        return PropertyData(train=examples, tests={"test": examples}, main_test="test", sources={"rows.csv": "x"})

    def regularizer(self, options: Any) -> NoRegularizer:
        return NoRegularizer()

    def evaluate(self, data: PropertyData, probabilities: Any, options: Any) -> dict[str, float]:
        return {}


def _setup(tmp_path: Path, text: str = "good,1\nbad,0\nfine,1\nmeh,0\n") -> tuple[DataContext, Path]:
    data = tmp_path / "data"
    (data / "csvprop").mkdir(parents=True)
    _write_settled(data / "csvprop" / "rows.csv", text)
    return DataContext(data, tmp_path / "downloads"), data / "csvprop" / "rows.csv"


def _write_settled(path: Path, text: str) -> None:
    """Write ``path`` dated ten seconds back: a file modified within RACY_SECONDS is never trusted (tested below)."""
    path.write_text(text)
    past = time.time_ns() - 10**10
    os.utime(path, ns=(past, past))


def _load(cache: PreparedDataCache, prop: CsvProperty, ctx: DataContext, options: dict[str, Any] | None = None,
          check: Any = lambda data: None) -> PropertyData:
    opts = prop.options(options)
    return cache.load(prop, opts, ctx, lambda: prop.load_data(ctx, opts), check)


def test_a_second_load_is_served_from_the_cache_with_the_same_data(tmp_path: Path) -> None:
    ctx, _ = _setup(tmp_path)
    prop, cache = CsvProperty(), PreparedDataCache(tmp_path / "cache")
    first = _load(cache, prop, ctx)
    second = _load(PreparedDataCache(tmp_path / "cache"), prop, ctx)  # a new process's cache object
    assert prop.loads == 1 and (cache.hits, cache.misses) == (0, 1)
    assert second.train.texts == ["good", "bad", "fine"] and second.train.labels.tolist() == [1, 0, 1]
    assert second.train.fingerprint() == first.train.fingerprint() and second.sources == {"rows.csv": "x"}
    assert [p.name for p in (tmp_path / "cache" / "prepared-data").iterdir()] == [
        f"csvprop-{cache.key(prop, prop.options(), ctx)[:24]}.json"]


def test_a_changed_file_options_or_data_folder_reload(tmp_path: Path) -> None:
    ctx, rows = _setup(tmp_path)
    prop, cache = CsvProperty(), PreparedDataCache(tmp_path / "cache")
    _load(cache, prop, ctx)
    _write_settled(rows, "good,1\nworse,0\nfine,1\nmeh,0\n")  # same length: only the file's times tell
    assert _load(cache, prop, ctx).train.texts == ["good", "worse", "fine"] and prop.loads == 2
    assert _load(cache, prop, ctx, {"rows": 2}).train.texts == ["good", "worse"] and prop.loads == 3
    other, _ = _setup(tmp_path / "other", "x,0\ny,1\nz,0\n")
    assert _load(cache, prop, other).train.texts == ["x", "y", "z"] and prop.loads == 4
    _load(cache, prop, ctx, {"rows": 2})
    assert prop.loads == 4  # each of those is now cached


def test_data_that_fail_the_check_are_never_stored(tmp_path: Path) -> None:
    ctx, _ = _setup(tmp_path)
    prop, cache = CsvProperty(), PreparedDataCache(tmp_path / "cache")

    def refuse(data: PropertyData) -> None:
        raise W2SBenchError("bad data", "fix it")

    with pytest.raises(W2SBenchError, match="bad data"):
        _load(cache, prop, ctx, check=refuse)
    assert not (tmp_path / "cache" / "prepared-data").exists()
    _load(cache, prop, ctx)
    assert prop.loads == 2


def test_an_unreadable_entry_is_reloaded_and_replaced(tmp_path: Path) -> None:
    ctx, _ = _setup(tmp_path)
    prop, cache = CsvProperty(), PreparedDataCache(tmp_path / "cache")
    _load(cache, prop, ctx)
    (entry,) = (tmp_path / "cache" / "prepared-data").iterdir()
    entry.write_bytes(entry.read_bytes()[:50])  # truncated
    assert _load(cache, prop, ctx).train.texts == ["good", "bad", "fine"] and prop.loads == 2
    _load(cache, prop, ctx)
    assert prop.loads == 2


def test_warnings_of_the_load_are_issued_again_on_a_hit(tmp_path: Path) -> None:
    ctx, _ = _setup(tmp_path, ",1\nbad,0\n")
    prop, cache = CsvProperty(), PreparedDataCache(tmp_path / "cache")
    for expected_loads in (1, 1):
        with pytest.warns(UserWarning, match="csvprop: an empty text"):
            _load(cache, prop, ctx)
        assert prop.loads == expected_loads


def test_a_property_that_does_not_declare_it_is_loaded_every_time(tmp_path: Path) -> None:
    ctx, _ = _setup(tmp_path)
    prop, cache = CsvProperty(), PreparedDataCache(tmp_path / "cache")
    prop.prepared_data_cache = False
    _load(cache, prop, ctx)
    _load(cache, prop, ctx)
    assert prop.loads == 2 and not (tmp_path / "cache" / "prepared-data").exists()


def test_the_files_a_load_resolves_are_recorded(tmp_path: Path) -> None:
    ctx, rows = _setup(tmp_path)
    with recorded_dataset_files() as files:
        CsvProperty().load_data(ctx, CsvProperty().options())
    assert list(files) == [str(rows)] and files[str(rows)][1] == rows.stat().st_size
    assert dataset_file(ctx, "csvprop/rows.csv", None) == rows  # outside the block: nothing recorded, no error


def test_the_built_in_properties_declare_it() -> None:
    plugins = get_plugins()
    plugins.collect_all()
    assert {name: plugins.trust_properties.get(name).prepared_data_cache
            for name in ("fairness", "ood", "adversarial", "privacy")} == dict.fromkeys(
        ("fairness", "ood", "adversarial", "privacy"), True)


class TupleAuxiliaryProperty(CsvProperty):
    """Its auxiliary holds a tuple, which JSON gives back as a list: not kept, loaded each time."""

    def load_data(self, ctx: DataContext, options: Any) -> PropertyData:
        data = super().load_data(ctx, options)
        data.auxiliary = {"pair": (1, 2)}
        return data


def test_data_that_do_not_survive_json_are_loaded_every_time(tmp_path: Path) -> None:
    ctx, _ = _setup(tmp_path)
    prop, cache = TupleAuxiliaryProperty(), PreparedDataCache(tmp_path / "cache")
    assert _load(cache, prop, ctx).auxiliary == {"pair": (1, 2)}
    assert _load(cache, prop, ctx).auxiliary == {"pair": (1, 2)}
    assert prop.loads == 2 and not (tmp_path / "cache" / "prepared-data").exists()


def test_privacy_keeps_its_name_prompts_as_json(data_dir: Path, tmp_path: Path) -> None:
    """The built-in property with an auxiliary beyond hygiene counts: its entry is written and read back equal."""
    plugins = get_plugins()
    plugins.collect_all()
    privacy = plugins.trust_properties.get("privacy")
    ctx, options = DataContext(data_dir, tmp_path / "downloads"), privacy.options()
    first = PreparedDataCache(tmp_path / "cache").load(privacy, options, ctx, lambda: privacy.load_data(ctx, options), lambda d: None)
    cache = PreparedDataCache(tmp_path / "cache")
    second = cache.load(privacy, options, ctx, lambda: pytest.fail("loaded again"), lambda d: None)
    assert cache.hits == 1 and second.auxiliary == first.auxiliary
    assert second.train.fingerprint() == first.train.fingerprint() and second.sources == first.sources


def test_a_file_modified_just_now_is_not_trusted(tmp_path: Path) -> None:
    """A write in the same clock tick as the load would leave the file's times unchanged: not stored until settled."""
    ctx, rows = _setup(tmp_path)
    rows.write_text("good,1\nbad,0\nfine,1\n")  # modified now
    prop, cache = CsvProperty(), PreparedDataCache(tmp_path / "cache")
    _load(cache, prop, ctx)
    _load(cache, prop, ctx)
    assert prop.loads == 2 and not (tmp_path / "cache" / "prepared-data").exists()


def test_a_hit_runs_the_check_too(tmp_path: Path) -> None:
    """An entry written by a caller with a weaker check (``w2sbench report``) still meets the pipeline's."""
    ctx, _ = _setup(tmp_path)
    prop = CsvProperty()
    _load(PreparedDataCache(tmp_path / "cache"), prop, ctx)

    def refuse(data: PropertyData) -> None:
        raise W2SBenchError("bad data", "fix it")

    with pytest.raises(W2SBenchError, match="bad data"):
        _load(PreparedDataCache(tmp_path / "cache"), prop, ctx, check=refuse)
    assert prop.loads == 1


def test_attribute_shapes_survive_or_the_data_are_not_kept(tmp_path: Path) -> None:
    """The fingerprint sees an attribute's values only; its dtype and shape must come back too."""
    ctx, _ = _setup(tmp_path)

    class WithAttributes(CsvProperty):
        pairs = False

        def load_data(self, ctx: DataContext, options: Any) -> PropertyData:
            data = super().load_data(ctx, options)
            data.train.attributes = {"group": np.array([True, False, True])}
            if self.pairs:
                pairs = np.empty(3, dtype=object)
                pairs[:] = [[1, 2], [3, 4], [5, 6]]  # a 1-D object array of lists: JSON would give back (3, 2)
                data.train.attributes["pairs"] = pairs
            return data

    prop, cache = WithAttributes(), PreparedDataCache(tmp_path / "cache")
    _load(cache, prop, ctx)
    group = _load(cache, prop, ctx).train.attributes["group"]
    assert prop.loads == 1 and group.dtype == np.bool_ and group.tolist() == [True, False, True]
    prop.pairs = True
    prop.name = "csvprop-pairs"  # another entry
    _load(cache, prop, ctx)
    _load(cache, prop, ctx)
    assert prop.loads == 3  # not kept
