"""DP-SGD details the trainer needs beyond opacus: the default delta and the step of an empty batch."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch
from torch import nn

from w2sbench.errors import W2SBenchError
from w2sbench.interfaces import PrivacySpec
from w2sbench.training.config import TrainConfig

__all__ = ["DP_PARAMETERS", "dp_delta", "dp_train_config", "empty_private_step", "freeze_for_dp"]

DP_PARAMETERS = ("all", "biases")



def dp_delta(requested: float | None, n: int) -> float:
    """DP-SGD's delta for ``n`` training rows: ``requested``, or by default 1 / (100 n).

    Rule: delta must be well below 1/n, since a mechanism with delta near 1/n may publish one
    record in the clear (Dwork and Roth 2014, The Algorithmic Foundations of Differential Privacy,
    section 2.3; Ponomareva et al. 2023, How to DP-fy ML, JAIR 77, section 5.2). With 1/(100 n) the
    expected number of records exposed by the delta event is 0.01. A requested delta >= 1/n is refused.
    """
    if requested is None or requested == 0:
        return 1.0 / (100 * n)
    if not 0 < requested < 1.0 / n:
        raise W2SBenchError(
            f"DP-SGD delta {requested:g} is not below 1/N = {1.0 / n:g} for the {n} training rows: "
            "it would allow publishing a record in the clear.",
            f"Pass a smaller delta (e.g. --option privacy.delta={1.0 / (100 * n):.1e}), or 0 for the default 1/(100 N).",
        )
    return float(requested)


def empty_private_step(optimizer: Any, scheduler: Any, progress: Any, step: int, total: int) -> int:
    """An empty Poisson batch under DP-SGD: no per-sample gradients, but the noise is added and the
    accountant counts the step (opacus' DPOptimizer clips an empty per-sample stack to a zero sum).
    Advances the learning-rate ``scheduler`` and ``progress`` like any step; returns the new step count."""
    for p in optimizer.params:
        p.grad_sample = torch.zeros((0, *p.shape), dtype=p.dtype, device=p.device)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    if scheduler is not None:
        scheduler.step()
    if progress is not None:
        progress(step + 1, total)
    return step + 1


def dp_train_config(config: TrainConfig, privacy: PrivacySpec, mode: str) -> TrainConfig:
    """``config`` with DP-SGD's own batch size, learning rate and epochs when DP-SGD fine-tunes (lora, full);
    a linear head (head mode) keeps its settings."""
    if mode == "head":
        return config
    overrides: dict[str, Any] = {"batch_size": privacy.batch_size, "lr": privacy.lr, "epochs": privacy.epochs}
    return replace(config, **{k: v for k, v in overrides.items() if v is not None})


def freeze_for_dp(module: nn.Module, head: nn.Module, privacy: PrivacySpec, mode: str) -> None:
    """With ``privacy.parameters == "biases"``, DP-SGD fine-tunes only the bias vectors of the trainable layers
    and the classification head (DP-BiTFiT: Bu et al. 2022, arXiv 2210.00036): a few thousand parameters, so
    the noise DP-SGD adds per step is small against the clipped gradients' sum, and opacus computes per-sample
    gradients for biases only. Raises W2SBenchError for an unknown choice."""
    if privacy.parameters not in DP_PARAMETERS:
        raise W2SBenchError(
            f'DP-SGD parameters "{privacy.parameters}" is not one of {", ".join(DP_PARAMETERS)}.',
            "Pass --option privacy.dp_parameters=biases (bias terms and head) or all.",
        )
    if privacy.parameters == "all" or mode == "head":
        return
    kept = {id(p) for p in head.parameters()}
    for name, p in module.named_parameters():
        if p.requires_grad and id(p) not in kept and not name.endswith("bias"):
            p.requires_grad_(False)
