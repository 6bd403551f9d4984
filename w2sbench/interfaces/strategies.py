"""A weak-to-strong training strategy (``Strategy``): its weak supervisors (``Teacher``), how their labels
become targets, the strong model's loss (``TransferLoss``), and the cells it is compared with."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch

__all__ = ["Teacher", "TransferLoss", "Strategy", "reference_cells", "with_regularization"]


@dataclass(frozen=True)
class Teacher:
    """One weak supervisor: the weak model trained on part ``part[0]`` of ``part[1]`` equal parts of split A,
    with the run's seed plus ``seed_offset``; ``regularized`` None follows the strategy's ``regularize_weak``.
    ``Teacher()`` is the run's plain (or regularized) weak model itself, trained once for every strategy."""

    seed_offset: int = 0
    part: tuple[int, int] = (0, 1)
    regularized: bool | None = None

    def is_default(self) -> bool:
        return self.seed_offset == 0 and tuple(self.part) == (0, 1)


class TransferLoss:
    """The strong model's loss per batch: ``loss(logits, targets, weights, progress)``.

    logits (batch, num_labels) float32; targets (batch, num_labels) rows of probabilities; weights (batch,)
    non-negative row weights; progress in [0, 1], the fraction of training done (for warm-ups). Returns a
    scalar tensor. ``config`` (class name and fields) is part of the strong model's cache key.
    """

    name: str = "custom"

    def config(self) -> dict[str, Any]:
        fields = asdict(self) if hasattr(self, "__dataclass_fields__") else dict(vars(self))  # type: ignore[call-overload]
        return {"loss": f"{type(self).__module__}.{type(self).__qualname__}", **fields}

    def __call__(self, logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor, progress: float) -> torch.Tensor:
        raise NotImplementedError


@dataclass(frozen=True)
class Strategy:
    """A weak-to-strong training strategy: who teaches, what the strong model learns from, how, and which
    phases get the trust regularizer (docs/strategies.md).

    The defaults are the paper's strategies: one weak model teaches, its soft labels are the targets, the loss is
    cross-entropy. ``teachers`` names several weak supervisors; ``curate`` turns their probabilities on split B
    into targets and row weights (rows of weight 0 are left out of training); ``loss`` replaces cross-entropy.
    """

    name: str
    description: str
    regularize_weak: bool
    regularize_strong: bool
    # "soft": train towards the weak model's probabilities; "hard": towards its argmax labels.
    transfer: Literal["soft", "hard"] = "soft"
    teachers: tuple[Teacher, ...] = ()  # () means (Teacher(),): the run's weak model
    loss: TransferLoss | None = None  # None: cross-entropy towards the targets
    in_default_run: bool = True  # run when the user names no --strategies

    def __post_init__(self) -> None:
        """Reject a malformed strategy where it is made, so the plugin that made it is named (plugin_manager).

        Raises TypeError or ValueError naming the strategy, the wrong field and the fix."""
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(f"Strategy name must be a non-empty string, got {self.name!r}.")
        if self.transfer not in ("soft", "hard"):
            raise ValueError(f'Strategy "{self.name}": transfer must be "soft" or "hard", got {self.transfer!r}.')
        if self.loss is not None and not isinstance(self.loss, TransferLoss):
            what = f"the function {getattr(self.loss, '__qualname__', '')}" if callable(self.loss) else repr(self.loss)
            raise TypeError(
                f'Strategy "{self.name}": loss must be a TransferLoss, got {what}. Subclass '
                "w2sbench.plugin_api.TransferLoss (a frozen dataclass whose fields are its settings) and implement "
                "__call__(logits, targets, weights, progress) -> scalar tensor (CONTRIBUTING.md)."
            )
        for teacher in self.teachers:
            if not isinstance(teacher, Teacher):
                raise TypeError(f'Strategy "{self.name}": teachers must be Teacher objects, got {teacher!r}.')

    def teacher_list(self) -> tuple[Teacher, ...]:
        """The weak supervisors, with ``regularized`` resolved."""
        return tuple(replace(t, regularized=self.regularize_weak if t.regularized is None else t.regularized) for t in self.teachers or (Teacher(),))

    def transfer_targets(self, weak_probabilities: np.ndarray) -> np.ndarray:
        """Turn the weak model's probabilities on split B into the strong model's training targets."""
        if self.transfer == "hard":
            hard = np.zeros_like(weak_probabilities)
            hard[np.arange(len(hard)), weak_probabilities.argmax(1)] = 1.0
            return hard
        return weak_probabilities

    def combine(self, teacher_probabilities: Sequence[np.ndarray]) -> np.ndarray:
        """The teachers' joint prediction (n, num_labels): their mean; one teacher's own array unchanged. It is
        also the reference weak model of the strategy's gap recovered on the test sets."""
        if len(teacher_probabilities) == 1:
            return teacher_probabilities[0]
        return np.mean(np.stack(teacher_probabilities), axis=0)

    def curate(self, teacher_probabilities: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Targets (n, num_labels) and row weights (n,) for the strong model from the teachers' probabilities
        on split B (one (n, num_labels) array per teacher, in ``teacher_list`` order)."""
        targets = self.transfer_targets(self.combine(teacher_probabilities))
        return targets, np.ones(len(targets))


def reference_cells(strategy: Strategy) -> tuple[str, str]:
    """The weak cell and the ceiling cell that a strategy's gap recovered is measured against.

    A strategy taught by the run's weak model alone refers to ``weak`` or ``weak-reg``; any other teacher set
    refers to its own cell ``<strategy>:teachers`` (the teachers' ``combine`` on the test sets). The ceiling is
    ``ceiling-reg`` when the strong phase is regularized, else ``ceiling``."""
    teachers = strategy.teacher_list()
    if len(teachers) == 1 and teachers[0].is_default():
        weak = "weak-reg" if teachers[0].regularized else "weak"
    else:
        weak = f"{strategy.name}:teachers"
    return weak, "ceiling-reg" if strategy.regularize_strong else "ceiling"


_PHASES = {"weak": "weak-tft", "both": "weak-wts-tft"}


def with_regularization(strategy: Strategy, phases: str) -> Strategy:
    """``strategy`` with the paper's regularization choice ``phases``: "weak" (the regularized weak model
    teaches: named ``<name>+weak-tft``) or "both" (the strong model is regularized too: ``<name>+weak-wts-tft``);
    its teachers follow the weak phase unless they say otherwise. Raises ValueError for other ``phases``.
    Source: the paper's Weak TFT and Weak+WTS TFT (Pawelczyk et al. 2025, arXiv 2501.00418)."""
    if phases not in _PHASES:
        raise ValueError(f'phases is "{phases}"; use "weak" (+weak-tft) or "both" (+weak-wts-tft)')
    suffix = _PHASES[phases]
    return replace(
        strategy,
        name=f"{strategy.name}+{suffix}",
        description=f"{strategy.description}; regularized as {suffix}",
        regularize_weak=True,
        regularize_strong=phases == "both",
    )
