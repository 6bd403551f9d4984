"""Finite-value checks of one training run: targets before the first step, gradients before each
optimizer step, parameters after the last one (w2sbench/finite.py explains why)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from w2sbench.finite import NonFiniteTraining

__all__ = ["check_finite_gradients", "check_finite_loss", "check_finite_parameters", "check_finite_targets"]


def check_finite_targets(y: torch.Tensor, mode: str, config: Any) -> None:
    """Targets are one-hot labels or the weak model's soft labels; a NaN among them poisons every step."""
    bad = ~torch.isfinite(y).all(dim=-1) if y.ndim > 1 else ~torch.isfinite(y)
    if bool(bad.any()):
        raise NonFiniteTraining(f"target ({int(bad.sum())} of {len(y)} rows)", mode, config.lr, "before the first step")


def check_finite_gradients(params: Sequence[torch.Tensor], mode: str, config: Any, epoch: int, step: int) -> None:
    """One fused norm over every gradient (torch's foreach kernels): NaN/Infinity anywhere makes it non-finite."""
    grads = [p.grad for p in params if p.grad is not None]
    if grads and not bool(torch.isfinite(torch.nn.utils.get_total_norm(grads))):
        raise NonFiniteTraining("gradient", mode, config.lr, f"at epoch {epoch + 1}, step {step + 1}")


def check_finite_parameters(module: nn.Module, mode: str, config: Any) -> None:
    """The trained parameters must be finite before anything caches them."""
    for name, p in module.named_parameters():
        if p.requires_grad and not bool(torch.isfinite(p.detach()).all()):
            raise NonFiniteTraining(f"parameter ({name})", mode, config.lr, "after the last step")


def check_finite_loss(value: float, mode: str, config: Any, epoch: int, step: int, regularized: bool) -> float:
    """``value`` (the batch's loss), or NonFiniteTraining naming the step and, when a trust regularizer's
    penalty is part of the loss, its weight as a setting to lower."""
    if not math.isfinite(value):
        raise NonFiniteTraining(f"loss ({value})", mode, config.lr, f"at epoch {epoch + 1}, step {step + 1}", regularized=regularized)
    return value
