"""Training losses: the soft cross-entropy of the trainer and adversarial training, and the strategies'
transfer losses (``TransferLoss``: called per batch with the strong model's logits, the targets, row weights
and training progress; docs/strategies.md).

Sources: Burns et al. 2023, "Weak-to-strong generalization", reference code openai/weak-to-strong
``weak_to_strong/loss.py`` (``xent_loss``, ``product_loss_fn``, ``logconf_loss_fn``); EleutherAI/w2s
``w2s/loss.py`` (``log_confidence_loss``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from w2sbench.errors import W2SBenchError
from w2sbench.interfaces import TransferLoss

__all__ = [
    "soft_cross_entropy",
    "weighted_cross_entropy",
    "CrossEntropyLoss",
    "AuxConfLoss",
    "ProductLoss",
    "LogConfLoss",
    "ramp",
    "prior_threshold_labels",
]


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy against target distributions (one-hot ground truth or a weak model's soft labels)."""
    return -(targets * torch.log_softmax(logits.float(), dim=-1)).sum(-1).mean()


def weighted_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Cross-entropy per row against target distributions, averaged with row weights (batch,):
    sum(w * ce) / sum(w); 0 for a batch whose weights are all 0."""
    per_row = -(targets * torch.log_softmax(logits.float(), dim=-1)).sum(-1)
    w = weights.to(per_row.dtype)
    return (w * per_row).sum() / w.sum().clamp_min(torch.finfo(per_row.dtype).tiny)


def ramp(progress: float, warmup: float, weight: float) -> float:
    """The auxiliary weight at ``progress`` in [0, 1]: linear from 0 to ``weight`` over the first ``warmup``
    fraction of training, then constant. (openai/weak-to-strong's ``logconf_loss_fn`` uses ``step_frac`` as the
    coefficient during the warm-up and jumps to 1 after it; EleutherAI/w2s ramps linearly, as here.)"""
    if warmup <= 0:
        return weight
    return weight * min(1.0, max(0.0, progress) / warmup)


def prior_threshold_labels(probabilities: torch.Tensor, prior_1: torch.Tensor | float) -> torch.Tensor:
    """The strong model's hardened predictions (batch, 2) with the threshold at a class prior: the rows whose
    p(class 0) is below its ``prior_1``-quantile become class 1, the rest class 0, so that about a ``prior_1``
    fraction of the batch is labelled 1 (Burns et al. 2023, ``logconf_loss_fn``)."""
    p0 = probabilities[:, 0]
    threshold = torch.quantile(p0, torch.as_tensor(prior_1, dtype=p0.dtype, device=p0.device))
    return torch.stack([(p0 >= threshold), (p0 < threshold)], dim=1).to(probabilities.dtype)


def _binary(logits: torch.Tensor, name: str) -> None:
    if logits.shape[-1] != 2:
        raise W2SBenchError(
            f'The transfer loss "{name}" thresholds at a class prior and needs two classes; this task has {logits.shape[-1]}.',
            "Use it on a binary task, or use a strategy with a cross-entropy or product loss.",
        )


@dataclass(frozen=True)
class CrossEntropyLoss(TransferLoss):
    """Row-weighted cross-entropy towards the targets (openai/weak-to-strong ``xent_loss`` with soft targets)."""

    name = "xent"

    def __call__(self, logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor, progress: float) -> torch.Tensor:
        return weighted_cross_entropy(logits, targets, weights)


@dataclass(frozen=True)
class AuxConfLoss(TransferLoss):
    """The auxiliary confidence loss of Burns et al. 2023 (openai/weak-to-strong ``logconf_loss_fn``).

    target = (1 - c) * weak targets + c * hardened strong predictions, the hardening thresholded so that the
    batch's share of class 1 equals the weak targets' class prior (their batch mean); c = ``ramp(progress,
    warmup, aux_weight)``. Deliberate difference to the reference: c ramps linearly to ``aux_weight`` over the
    warm-up instead of following ``progress`` and jumping to the full weight when the warm-up ends. Binary tasks.
    """

    aux_weight: float = 0.5
    warmup: float = 0.1  # fraction of training
    name = "aux-conf"

    def __call__(self, logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor, progress: float) -> torch.Tensor:
        _binary(logits, self.name)
        logits, targets = logits.float(), targets.float()
        coef = ramp(progress, self.warmup, self.aux_weight)
        w = weights.float()
        prior_1 = (w * targets[:, 1]).sum() / w.sum().clamp_min(1e-12)
        strong = prior_threshold_labels(torch.softmax(logits, -1), prior_1).detach()
        return weighted_cross_entropy(logits, targets * (1 - coef) + strong * coef, weights)


@dataclass(frozen=True)
class ProductLoss(TransferLoss):
    """Product of experts (Burns et al. 2023, openai/weak-to-strong ``product_loss_fn``): the target is
    p_strong^beta * p_weak^alpha, renormalised per row and detached. A row whose product is 0 in every class
    (both experts certain and opposed, in float32) gets a zero target instead of the reference's NaN."""

    alpha: float = 1.0  # weight of the weak model
    beta: float = 1.0  # weight of the strong model
    name = "product"

    def __call__(self, logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor, progress: float) -> torch.Tensor:
        logits = logits.float()
        target = torch.softmax(logits, -1).pow(self.beta) * targets.float().pow(self.alpha)
        target = target / target.sum(-1, keepdim=True).clamp_min(torch.finfo(target.dtype).tiny)
        return weighted_cross_entropy(logits, target.detach(), weights)


@dataclass(frozen=True)
class LogConfLoss(TransferLoss):
    """The log-confidence loss of EleutherAI/w2s (``w2s/loss.py``, ``log_confidence_loss``).

    Like ``AuxConfLoss`` (linear warm-up, strong predictions hardened at a class prior), but with
    ``balance_batch`` the weak labels' log-odds are centred on the batch (labels = sigmoid(logit(p) - mean),
    with 1e-7 inside the logs as in the reference) and the prior is then 0.5. The warm-up is a fraction of
    training here, not a number of steps. Binary tasks.
    """

    aux_weight: float = 0.5
    warmup: float = 0.1
    balance_batch: bool = True
    name = "log-conf"

    def __call__(self, logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor, progress: float) -> torch.Tensor:
        _binary(logits, self.name)
        logits = logits.float()
        labels = targets.float()[:, 1]
        if self.balance_batch:
            log_odds = torch.log(labels + 1e-7) - torch.log(1 - labels + 1e-7)
            labels = torch.sigmoid(log_odds - log_odds.mean())
            prior: torch.Tensor | float = 0.5
        else:
            prior = labels.mean()
        coef = ramp(progress, self.warmup, self.aux_weight)
        strong = prior_threshold_labels(torch.softmax(logits, -1), prior).detach()
        target = torch.stack([1 - labels, labels], dim=1) * (1 - coef) + strong * coef
        return weighted_cross_entropy(logits, target, weights)
