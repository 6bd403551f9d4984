"""The findings' bootstrap is kept in the stage cache: a re-run reads it, identical, and never re-scores."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.test_findings import LEVELS, VANILLA, WEAK_TFT, WTS, Toy, _outcome
from w2sbench import findings_cache
from w2sbench.results import build_property_result
from w2sbench.stage_cache import StageCache


def _property(cache: StageCache | None, outcome: Any) -> str:
    prop = build_property_result(Toy(), [VANILLA, WEAK_TFT, WTS], outcome, resamples=50, cache=cache)
    return json.dumps(prop, sort_keys=True)  # NaN-safe exact comparison


@pytest.fixture
def outcome() -> Any:
    outcome = _outcome([VANILLA, WEAK_TFT, WTS], LEVELS)
    outcome.seeds[0].scores["vanilla"]["live_leak"] = None  # an undefined score: NaN in the bootstrap's arrays
    return outcome


def _no_rescoring(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("re-scored although the bootstrap was cached")


def test_a_rerun_reads_the_bootstrap_and_gets_the_same_findings(outcome: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    uncached = _property(None, outcome)
    assert _property(StageCache(tmp_path), outcome) == uncached
    monkeypatch.setattr(findings_cache, "resample_scores", _no_rescoring)
    assert _property(StageCache(tmp_path), outcome) == uncached
    (entry,) = (tmp_path / findings_cache.KIND).iterdir()
    assert (entry / "key.json").is_file()
    assert np.load(entry / "observed.undefined.npy").sum() == 1  # stored as a mask beside a zero
    assert all(np.isfinite(np.load(f)).all() for f in entry.glob("*.npy") if np.load(f).dtype.kind == "f")
    assert not (tmp_path / "computed.log").exists()  # derived data, not a stage


def test_changed_predictions_are_scored_afresh(outcome: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _property(StageCache(tmp_path), outcome)
    probs = outcome.seeds[1].predictions["ceiling"]["main"]
    probs[0] = probs[0][::-1].copy()
    calls: list[int] = []
    real = findings_cache.resample_scores
    monkeypatch.setattr(findings_cache, "resample_scores", lambda *a, **k: calls.append(1) or real(*a, **k))
    _property(StageCache(tmp_path), outcome)
    assert calls == [1]
    assert len(list((tmp_path / findings_cache.KIND).iterdir())) == 2


def test_a_rerun_keeps_an_unchanged_predictions_sidecar_and_replaces_a_damaged_one(outcome: Any, tmp_path: Path) -> None:
    from w2sbench.results import PREDICTIONS_FILE, build_results, check_sidecar, write_results

    prop = build_property_result(Toy(), [VANILLA], outcome, resamples=0)
    results = build_results({"seeds": [0, 1, 2], "weak": "w", "strong": "s"}, {}, {"toy": prop}, {})
    write_results(tmp_path, results, {"toy": outcome})
    sidecar = tmp_path / PREDICTIONS_FILE
    first, stat = sidecar.read_bytes(), sidecar.stat()
    write_results(tmp_path, results, {"toy": outcome})
    assert (sidecar.stat().st_ino, sidecar.stat().st_mtime_ns) == (stat.st_ino, stat.st_mtime_ns)  # not rewritten
    sidecar.write_bytes(first[:-20])  # truncated
    write_results(tmp_path, results, {"toy": outcome})
    assert sidecar.read_bytes() == first
    check_sidecar(tmp_path)
