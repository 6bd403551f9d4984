"""The findings' bootstrap, cached: a re-run of a finished run reads its resampled scores instead of re-scoring.

``findings.resample_scores`` scores every cell of every seed on 200 resamples of the test examples, which
is most of a cached re-run's time. Its output depends only on what its key below names: the predictions
(by content), the test sets (fingerprints), the property's options, the observed scores, the resampling
settings and the source of the scoring code (w2sbench's findings and design modules and the trust
property's module), so a change to any of them computes it afresh. The entry lives in the run's stage
cache under ``findings/<hash>/`` and is written like a stage (atomically, key.json last, never with a
non-finite value: undefined resamples are stored as a mask beside zeros), but it is derived data, not a
stage: it is not counted as one nor listed in ``computed.log``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from w2sbench.files import source_hash
from w2sbench.findings import DEFAULT_RESAMPLES, resample_scores
from w2sbench.stage_cache import StageCache

__all__ = ["KIND", "findings_key", "cached_resample_scores"]

KIND = "findings"
_ARRAYS = ("samples", "observed", "example_level", "weights")


def _predictions_hash(probabilities: Mapping[int, Mapping[str, Mapping[str, np.ndarray]]]) -> str:
    """A hash of every (seed, cell, test set) array: its name, dtype, shape and bytes."""
    h = hashlib.sha256()
    for seed in sorted(probabilities):
        for cell in sorted(probabilities[seed]):
            for test in sorted(probabilities[seed][cell]):
                array = np.ascontiguousarray(probabilities[seed][cell][test])
                h.update(json.dumps([seed, cell, test, array.dtype.str, array.shape]).encode())
                h.update(array.tobytes())
    return h.hexdigest()


def findings_key(
    metric: Any, data: Any, options: Mapping[str, Any], probabilities: Mapping[int, Mapping[str, Mapping[str, np.ndarray]]],
    observed: Mapping[int, Mapping[str, Mapping[str, float | None]]], names: Sequence[str], cells: Sequence[str],
    resamples: int, seed: int,
) -> dict[str, Any]:
    """Everything ``resample_scores`` reads, by value or by content hash (the cache key)."""
    return {
        "stage": KIND,
        "metric": metric.name,
        "code": source_hash(["w2sbench.findings", "w2sbench.design", type(metric).__module__]),
        "options": metric.cache_key_options(options),
        "tests": {n: t.fingerprint() for n, t in sorted(data.tests.items())},
        "main_test": data.main_test,
        "sources": dict(data.sources),
        "predictions": _predictions_hash(probabilities),
        "observed": {str(s): observed[s] for s in sorted(observed)},
        "names": list(names),
        "cells": list(cells),
        "resamples": resamples,
        "seed": seed,
    }


def _save(boot: Mapping[str, Any], folder: Path) -> None:
    """The bootstrap's arrays as .npy files, each NaN stored as 0 with its place in ``<name>.undefined.npy``."""
    for name in _ARRAYS:
        array = np.asarray(boot[name])
        if array.dtype.kind == "f":
            undefined = np.isnan(array)
            np.save(folder / f"{name}.undefined.npy", undefined, allow_pickle=False)
            array = np.where(undefined, 0.0, array)
        np.save(folder / f"{name}.npy", array, allow_pickle=False)
    (folder / "seeds.json").write_text(json.dumps([int(s) for s in boot["seeds"]]))


def _load(folder: Path) -> dict[str, Any]:
    boot: dict[str, Any] = {}
    for name in _ARRAYS:
        array = np.load(folder / f"{name}.npy", allow_pickle=False)
        if (folder / f"{name}.undefined.npy").is_file():
            array = np.where(np.load(folder / f"{name}.undefined.npy", allow_pickle=False), np.nan, array)
        boot[name] = array
    boot["seeds"] = json.loads((folder / "seeds.json").read_text())
    return boot


def cached_resample_scores(
    cache: StageCache | None, metric: Any, data: Any, options: Mapping[str, Any],
    probabilities: Mapping[int, Mapping[str, Mapping[str, np.ndarray]]],
    observed: Mapping[int, Mapping[str, Mapping[str, float | None]]], names: Sequence[str], cells: Sequence[str],
    resamples: int = DEFAULT_RESAMPLES, seed: int = 0, store: bool = True,
) -> dict[str, Any]:
    """``findings.resample_scores`` (same arguments and output), read from ``cache`` when it holds the entry
    and stored there otherwise; ``cache`` None computes it every time. ``store=False`` reads the cache but
    never writes into it (`w2sbench report` on a stage cache it may not change)."""
    if cache is None:
        return resample_scores(metric, data, options, probabilities, observed, names, cells, resamples, seed)
    key = findings_key(metric, data, options, probabilities, observed, names, cells, resamples, seed)
    found = cache.get(KIND, key)
    if found is not None:
        return _load(found)
    boot = resample_scores(metric, data, options, probabilities, observed, names, cells, resamples, seed)
    if store:
        cache.compute(KIND, key, lambda tmp: _save(boot, tmp), record=False)
    return boot
