"""Atomic writes, the stage cache and the run lock."""

from __future__ import annotations

import pytest

from w2sbench.errors import W2SBenchError
from w2sbench.files import atomic_write_json, stable_hash
from w2sbench.stage_cache import RunLock, StageCache


def test_stage_is_computed_once(tmp_path):
    cache = StageCache(tmp_path)
    calls = []

    def produce(d):
        calls.append(1)
        (d / "out.txt").write_text("x")

    p1 = cache.compute("train", {"a": 1}, produce)
    p2 = cache.compute("train", {"a": 1}, produce)
    assert p1 == p2 and len(calls) == 1 and (p1 / "out.txt").read_text() == "x"
    assert cache.hits == 1 and cache.misses == 1
    # computed stages are counted and timed per kind; a hit and derived data (record=False) are not
    cache.compute("predict", {"a": 1}, produce)
    cache.compute("predict", {"a": 2}, produce)
    cache.compute("findings", {"a": 3}, produce, record=False)
    assert dict(cache.computed_by_kind) == {"train": 1, "predict": 2}
    assert cache.seconds_by_kind["predict"] > 0 and "findings" not in cache.seconds_by_kind


def test_stage_seconds_are_the_time_to_produce_and_write(tmp_path, monkeypatch):
    import w2sbench.stage_cache as stage_cache

    ticks = iter([10.0, 12.5, 20.0, 20.25])
    monkeypatch.setattr(stage_cache.time, "perf_counter", lambda: next(ticks))
    cache = StageCache(tmp_path)
    cache.compute("live", {"a": 1}, lambda d: (d / "x").write_text("1"))
    cache.compute("live", {"a": 2}, lambda d: (d / "x").write_text("2"))
    assert cache.computed_by_kind["live"] == 2 and cache.seconds_by_kind["live"] == 2.75


def test_failed_stage_leaves_nothing_that_reads_as_done(tmp_path):
    cache = StageCache(tmp_path)

    def boom(d):
        (d / "half.bin").write_bytes(b"12")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        cache.compute("train", {"a": 2}, boom)
    assert cache.get("train", {"a": 2}) is None
    assert not list((tmp_path / "train").glob(".*.tmp"))


def test_partial_files_of_dead_writers_are_cleaned_but_live_writers_are_left_alone(tmp_path):
    import os
    import socket

    cache = StageCache(tmp_path)
    host = socket.gethostname()
    dead = tmp_path / "train" / f".abc.{host}-999999999.x1.tmp"  # no such process
    dead.mkdir(parents=True)
    (dead / "trainable.safetensors").write_bytes(b"partial")
    dead_file = tmp_path / "features" / "m" / f".chunk-1.safetensors.{host}-999999999.x2.tmp"
    dead_file.parent.mkdir(parents=True)
    dead_file.write_bytes(b"half")
    live = tmp_path / "train" / f".def.{host}-{os.getpid()}.x3.tmp"
    live.mkdir()
    foreign = tmp_path / "train" / ".ghi.otherhost-1.x4.tmp"  # another machine on shared storage
    foreign.mkdir()
    assert cache.clean_partial() == 2
    assert not dead.exists() and not dead_file.exists() and live.exists() and foreign.exists()
    assert cache.get("train", {"a": 1}) is None


def test_key_order_does_not_matter():
    assert stable_hash({"a": 1, "b": [1, 2]}) == stable_hash({"b": [1, 2], "a": 1})


def test_atomic_json_replaces_whole_file(tmp_path):
    path = tmp_path / "r.json"
    atomic_write_json(path, {"v": 1})
    atomic_write_json(path, {"v": 2})
    assert path.read_text().strip().endswith("}") and '"v": 2' in path.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_run_lock_is_exclusive(tmp_path):
    with RunLock(tmp_path):
        with pytest.raises(W2SBenchError, match="in use by another w2sbench process"):
            with RunLock(tmp_path):
                pass
    with RunLock(tmp_path):
        pass
