"""The experimental design: the cells every property trains, how the pool is split, how a cell is scored.

One home for what pipeline, results, report, findings and the leaderboard validator must agree on
(Pawelczyk et al. 2025, Sec. 4: weak and ceiling baselines, with and without the trust regularizer;
one strong model per strategy; the same test rows for every cell and seed).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from w2sbench.errors import W2SBenchError
from w2sbench.finite import require_finite_probabilities
from w2sbench.interfaces import Examples, TrustProperty

__all__ = ["BASELINE_CELLS", "split_pool", "split_sizes", "task_scores", "call_plugin"]

BASELINE_CELLS = ("weak", "weak-reg", "ceiling", "ceiling-reg")


def split_pool(pool: Examples, seed: int, sizes: tuple[int, int, int]) -> tuple[Examples, Examples, Examples]:
    """Shuffle the training pool with the seed and cut A (weak training), B (transfer) and validation."""
    n_a, n_b, n_val = sizes
    need = n_a + n_b + n_val
    if len(pool) < need:
        raise W2SBenchError(
            f"The training data has {len(pool)} rows but the splits need {need} (A={n_a}, B={n_b}, val={n_val}).",
            "Lower the split sizes with --option METRIC.weak_train_size=... / transfer_size=... / val_size=...",
        )
    order = np.random.default_rng(seed).permutation(len(pool))
    return pool.subset(order[:n_a]), pool.subset(order[n_a : n_a + n_b]), pool.subset(order[n_a + n_b : need])


def task_scores(labels: np.ndarray, probabilities: np.ndarray) -> dict[str, float | None]:
    """Accuracy, and AUROC for binary tasks (None when a test set holds one class only)."""
    probabilities = require_finite_probabilities(probabilities, "the main test set")
    scores: dict[str, float | None] = {"accuracy": float((probabilities.argmax(1) == labels).mean())}
    if probabilities.shape[1] == 2:
        scores["auroc"] = float(roc_auc_score(labels, probabilities[:, 1])) if len(set(labels.tolist())) == 2 else None
    return scores


def split_sizes(options: Mapping[str, Any]) -> tuple[int, int, int]:
    """A property's split sizes (A, B, validation) from its options."""
    return int(options["weak_train_size"]), int(options["transfer_size"]), int(options["val_size"])


def call_plugin(metric: TrustProperty, what: str, call: Any) -> Any:
    """Run a plugin call; turn a crash into a message that names the trust property and its package."""
    try:
        return call()
    except W2SBenchError:
        raise
    except (UnicodeDecodeError, ValueError, KeyError, IndexError, TypeError, OSError) as exc:
        module = type(metric).__module__
        raise W2SBenchError(
            f'Trust property "{metric.name}" ({module}) failed to {what}: {type(exc).__name__}: {exc}',
            "If it read a dataset file, check that the file is the original (docs/data.md lists them and their "
            "sources); otherwise report the bug to the plugin's authors (rerun with --debug for the traceback).",
        ) from exc
