"""The experimental design: the cells every property trains, how the pool is split, how a cell is scored.

One home for what pipeline, results, report, findings and the leaderboard validator must agree on
(Pawelczyk et al. 2025, Sec. 4: weak and ceiling baselines, with and without the trust regularizer;
one strong model per strategy; the same test rows for every cell and seed), and what the findings'
comparison list knows of each strategy (``StrategyDesign``: the phases regularized, plain transfer or not).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from w2sbench.errors import W2SBenchError
from w2sbench.finite import require_finite_probabilities
from w2sbench.interfaces import Examples, Strategy, TrustProperty

__all__ = [
    "BASELINE_CELLS", "REG_CEILING", "split_pool", "split_sizes", "task_scores", "call_plugin",
    "StrategyDesign", "design_of", "design_from_cell", "binary_auroc",
]

BASELINE_CELLS = ("weak", "weak-reg", "ceiling", "ceiling-reg")
REG_CEILING = "ceiling-reg"  # the ceiling trained with the trust regularizer


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
        scores["auroc"] = binary_auroc(labels, probabilities[:, 1]) if len(set(labels.tolist())) == 2 else None
    return scores


def binary_auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` (n,) for ``labels`` (n,) holding exactly two classes, the larger
    one positive: scikit-learn's ``roc_auc_score`` arithmetic step for step (``roc_curve`` with
    ``drop_intermediate``, then the trapezoidal rule), so the value is bit-identical (tests/test_design_auroc.py
    pins it), without its input validation, which costs ~20 ms a call: the bootstrap calls it ~10^4 times a run.
    Inputs are the caller's to check (``task_scores`` checks finiteness and the two classes)."""
    positive = (labels == labels.max()).astype(np.float64)
    order = np.argsort(scores, stable=True)[::-1]  # descending scores; ties collapse into one threshold below
    ranked = scores[order]
    thresholds = np.r_[np.nonzero(np.diff(ranked))[0], ranked.size - 1]
    tps = np.cumsum(positive[order], dtype=np.float64)[thresholds]
    fps = 1 + thresholds.astype(np.float64) - tps
    if fps.shape[0] > 2:  # drop collinear points, as roc_curve(drop_intermediate=True) does
        keep = np.nonzero(np.r_[True, np.logical_or(np.diff(fps, 2), np.diff(tps, 2)), True])[0]
        fps, tps = fps[keep], tps[keep]
    tps, fps = np.r_[0.0, tps], np.r_[0.0, fps]
    return float(np.trapezoid(tps / tps[-1], fps / fps[-1]))  # scipy's trapezoid, the same arithmetic


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


@dataclass(frozen=True)
class StrategyDesign:
    """What the comparison list knows of a strategy (``w2sbench.interfaces.Strategy``).

    ``regularize_weak`` / ``regularize_strong``: which phases get the trust regularizer. ``plain``: plain
    transfer, i.e. the run's weak model alone teaches and the strong model learns its soft labels with
    cross-entropy (a ``Strategy`` itself, not a subclass, ``transfer="soft"``, ``loss=None``). The paper's
    strategies (Pawelczyk et al. 2025, Sec. 4) are the plain ones with no phase, the weak phase, and both
    phases regularized."""

    name: str
    regularize_weak: bool
    regularize_strong: bool
    plain: bool

    def as_dict(self) -> dict[str, bool]:
        """The form recorded in results.json (``cells[strategy].design``)."""
        return {"regularize_weak": self.regularize_weak, "regularize_strong": self.regularize_strong, "plain": self.plain}


def design_of(strategy: Strategy) -> StrategyDesign:
    """The design of a registered strategy, read from its attributes."""
    teachers = strategy.teacher_list()
    plain = (
        type(strategy) is Strategy and strategy.transfer == "soft" and strategy.loss is None
        and len(teachers) == 1 and teachers[0].is_default() and teachers[0].regularized == strategy.regularize_weak
    )
    return StrategyDesign(strategy.name, strategy.regularize_weak, strategy.regularize_strong, plain)


def design_from_cell(name: str, cell: Mapping[str, Any]) -> StrategyDesign:
    """A strategy's design from its results.json cell (the recorded ``design``) or, for older results and
    leaderboard submissions, which do not record it, from its reference cells, taking any strategy taught by
    the run's weak model alone as plain."""
    recorded = cell.get("design")
    if isinstance(recorded, Mapping):
        return StrategyDesign(name, bool(recorded.get("regularize_weak")), bool(recorded.get("regularize_strong")), bool(recorded.get("plain")))
    refs = cell.get("references") or {}
    weak = refs.get("weak")
    return StrategyDesign(name, weak == "weak-reg", refs.get("ceiling") == REG_CEILING, weak in ("weak", "weak-reg"))
