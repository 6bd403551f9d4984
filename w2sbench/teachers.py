"""A strategy's stages: its weak supervisors (teachers), the strong model trained on their curated labels,
and the reference cell of a strategy taught by anything but the run's weak model alone (docs/strategies.md).

Every teacher is an ordinary weak training stage, so a teacher identical to the run's weak model (``Teacher()``)
is that very stage, and a teacher shared by several strategies or runs is trained once (cache keys).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from w2sbench.design import call_plugin, split_pool, split_sizes, task_scores
from w2sbench.errors import W2SBenchError
from w2sbench.files import source_hash
from w2sbench.interfaces import (
    Examples,
    NoRegularizer,
    PropertyData,
    Regularizer,
    Strategy,
    Teacher,
    TransferLoss,
    TrustProperty,
)
from w2sbench.training.losses import CrossEntropyLoss

__all__ = ["teacher_label", "train_teacher", "strategy_teachers", "train_strategy", "teacher_reference", "GuardedLoss", "default_strategies", "strategy_columns", "strategy_definition", "transfer_loss_config"]

Stage = tuple[dict[str, Any], Path]


def teacher_label(teacher: Teacher) -> str:
    """``weak`` / ``weak-reg`` for the run's weak model, else e.g. ``weak-reg seed+1 A 2/2``."""
    base = "weak-reg" if teacher.regularized else "weak"
    if teacher.is_default():
        return base
    part, parts = teacher.part
    return f"{base} seed+{teacher.seed_offset}" + (f" A {part + 1}/{parts}" if parts > 1 else "")


def train_teacher(pipeline: Any, metric: TrustProperty, data: PropertyData, seed: int, teacher: Teacher) -> Stage:
    """Train (or read from cache) one weak supervisor on its part of split A; ``teacher.regularized`` resolved."""
    options = pipeline.settings.options[metric.name]
    a, _b, _val = split_pool(data.train, seed, split_sizes(options))
    part, parts = teacher.part
    if not 0 <= part < parts:
        raise W2SBenchError(f"A teacher asks for part {part} of {parts} of split A.", "Use 0 <= part < parts.")
    if parts > 1:
        a = a.subset(np.array_split(np.arange(len(a)), parts)[part])
    reg: Regularizer = metric.regularizer(options) if teacher.regularized else NoRegularizer()
    onehot = np.eye(data.num_labels)[a.labels]
    label = f"{metric.name} s{seed} {teacher_label(teacher)}"
    return pipeline.train_stage("weak", a, onehot, reg, seed + teacher.seed_offset, data.num_labels, int(options["max_length"]), label)


def strategy_teachers(pipeline: Any, metric: TrustProperty, data: PropertyData, seed: int, strategy: Strategy) -> list[Stage]:
    """The trained teachers of ``strategy``, in ``teacher_list`` order."""
    return [train_teacher(pipeline, metric, data, seed, t) for t in strategy.teacher_list()]


def train_strategy(
    pipeline: Any, metric: TrustProperty, data: PropertyData, seed: int, strategy: Strategy, b: Examples, regularizer: Regularizer
) -> tuple[Stage, list[Stage]]:
    """The strong model of one strategy and its teachers: teachers' labels on split B, curated into targets and
    row weights (rows of weight 0 left out), trained with the strategy's loss (or cross-entropy)."""
    teachers = strategy_teachers(pipeline, metric, data, seed, strategy)
    probs = [pipeline.predict_stage(k, p, "weak", b) for k, p in teachers]
    targets, weights = strategy.curate(probs)
    _check_curation(strategy, targets, weights, len(b), data.num_labels)
    kept = np.flatnonzero(weights > 0)
    if len(kept) < len(b):
        b, targets, weights = b.subset(kept), targets[kept], weights[kept]
    uniform = bool(np.all(weights == 1.0))
    options = pipeline.settings.options[metric.name]
    owner, info = _registration(pipeline.plugins, strategy)
    package = f"{info.package} {info.version}" if info is not None and info.version else ""  # entry-point plugins
    # row weights other than 1 need a loss that reads them: the row-weighted cross-entropy by default
    loss = strategy.loss if strategy.loss is not None or uniform else CrossEntropyLoss()
    stage = pipeline.train_stage(
        "strong", b, targets, regularizer, seed, data.num_labels, int(options["max_length"]), f"{metric.name} s{seed} {strategy.name}",
        transfer_loss=None if loss is None else GuardedLoss(strategy, owner, loss, package),
        weights=None if uniform else weights,
    )
    return stage, teachers


def teacher_reference(
    pipeline: Any, metric: TrustProperty, data: PropertyData, strategy: Strategy, teachers: Sequence[Stage], options: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, np.ndarray], dict[str, Any]]:
    """Scores, test-set probabilities and training reports of ``<strategy>:teachers``: the teachers' ``combine``d
    prediction. Metrics that need a live model (``evaluate_model``) are not defined for it."""

    probs = {
        name: strategy.combine([pipeline.predict_stage(k, p, "weak", test) for k, p in teachers])
        for name, test in data.tests.items()
    }
    scores: dict[str, Any] = dict(task_scores(data.tests[data.main_test].labels, probs[data.main_test]))
    scores.update(call_plugin(metric, "evaluate", lambda: metric.evaluate(data, probs, options)))
    reports = [json.loads((p / "report.json").read_text()) for _k, p in teachers]
    report = {"teachers": reports, "seconds": sum(r["seconds"] for r in reports), "steps": sum(r["steps"] for r in reports)}
    return scores, probs, report


def transfer_loss_config(loss: TransferLoss) -> dict[str, Any]:
    """A transfer loss's cache-key part: its ``config()`` plus ``code``, a hash of its module's source file."""
    return {**loss.config(), "code": source_hash([type(loss).__module__])}


def _registration(plugins: Any, strategy: Strategy) -> tuple[str, Any]:
    """The plugin that registered ``strategy`` and its PluginInfo (None for a plugin without one)."""
    owner = plugins.strategies.owners.get(strategy.name, "?")
    return owner, getattr(plugins, "info", {}).get(owner)


class GuardedLoss:
    """A strategy's loss, stopped with a message naming the strategy and its package when it fails or returns
    anything but a finite scalar (nothing non-finite is trained on or cached).

    ``config`` (``transfer_loss_config``) enters the strong model's cache key, so editing a loss's code retrains the
    strong models it taught, as editing its fields does."""

    def __init__(self, strategy: Strategy, owner: str, loss: TransferLoss | None = None, package: str = "") -> None:
        chosen = loss or strategy.loss
        assert chosen is not None
        self.loss: TransferLoss = chosen
        self.config = transfer_loss_config(self.loss)
        self.package = package or type(self.loss).__module__.split(".")[0]
        self.where = f'Strategy "{strategy.name}" (plugin "{owner}", package {self.package})'
        self.fix = (
            f"Correct the transfer loss of {self.package} (run `w2sbench --debug run ...` for the traceback) or leave "
            f'"{strategy.name}" out of --strategies.'
        )

    def __call__(self, logits: Any, targets: Any, weights: Any, progress: float) -> Any:
        import torch

        try:
            value = self.loss(logits, targets, weights, progress)
        except W2SBenchError:
            raise
        except Exception as exc:  # a plugin's bug: name the plugin
            raise W2SBenchError(f"{self.where}: its transfer loss failed: {type(exc).__name__}: {exc}", self.fix) from exc
        if not isinstance(value, torch.Tensor) or value.numel() != 1:
            what = f"a tensor of shape {tuple(value.shape)}" if isinstance(value, torch.Tensor) else type(value).__name__
            raise W2SBenchError(
                f"{self.where}: its transfer loss returned {what}, not a scalar tensor; reduce the per-row losses, "
                "e.g. (weights * per_row).sum() / weights.sum().",
                self.fix,
            )
        if not bool(torch.isfinite(value.detach()).all()):
            raise W2SBenchError(f"{self.where}: its transfer loss returned {float(value.detach())} at {progress:.0%} of training.", self.fix)
        return value.reshape(())


def _check_curation(strategy: Strategy, targets: np.ndarray, weights: np.ndarray, n: int, num_labels: int) -> None:
    targets, weights = np.asarray(targets), np.asarray(weights)
    problem = None
    if targets.shape != (n, num_labels):
        problem = f"targets of shape {targets.shape}, expected ({n}, {num_labels})"
    elif weights.shape != (n,):
        problem = f"weights of shape {weights.shape}, expected ({n},)"
    elif not (np.isfinite(targets).all() and np.isfinite(weights).all()):
        problem = "non-finite targets or weights"
    elif (weights < 0).any() or not (weights > 0).any():
        problem = "negative row weights, or none above 0"
    if problem:
        raise W2SBenchError(
            f'Strategy "{strategy.name}" ({type(strategy).__module__}) curated {problem}.',
            "Fix the strategy's curate (see docs/strategies.md).",
        )


def default_strategies(plugins: Any) -> tuple[str, ...]:
    """The strategies a run without --strategies runs: every registered one with ``in_default_run``."""
    return tuple(name for name, s in plugins.strategies.items.items() if s.in_default_run)


def strategy_columns(strategy: Strategy) -> tuple[str, str, str, str]:
    """``w2sbench list strategies`` columns: regularized phases (none, weak, both, strong), number of teachers,
    targets and loss (with the curating class when ``curate`` is overridden), and whether it runs by default."""
    weak, strong = strategy.regularize_weak, strategy.regularize_strong
    phases = "both" if weak and strong else "weak" if weak else "strong" if strong else "none"
    curation = "" if type(strategy).curate is Strategy.curate else f", {type(strategy).__name__}"
    loss = strategy.loss.name if strategy.loss is not None else "xent"
    return phases, str(len(strategy.teacher_list())), f"{strategy.transfer} {loss}{curation}", "yes" if strategy.in_default_run else "no"


def strategy_definition(strategy: Strategy, plugins: Any) -> dict[str, Any]:
    """What results.json records of a strategy (``strategies``): the plugin, package and version that
    registered it, its regularized phases, teachers, targets, curating class and loss settings (``config`` with
    the hash of the loss's source; null for cross-entropy)."""
    owner, info = _registration(plugins, strategy)
    return {
        "plugin": owner,
        "package": info.package if info is not None else "?",
        "version": info.version if info is not None else "",
        "regularize_weak": strategy.regularize_weak,
        "regularize_strong": strategy.regularize_strong,
        "transfer": strategy.transfer,
        "teachers": [{"seed_offset": t.seed_offset, "part": list(t.part), "regularized": t.regularized} for t in strategy.teacher_list()],
        "curate": None if type(strategy).curate is Strategy.curate else f"{type(strategy).__module__}.{type(strategy).__qualname__}",
        "loss": None if strategy.loss is None else transfer_loss_config(strategy.loss),
    }
