"""The training loss shared by the trainer and adversarial training."""

from __future__ import annotations

import torch

__all__ = ["soft_cross_entropy"]


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy against target distributions (one-hot ground truth or a weak model's soft labels)."""
    return -(targets * torch.log_softmax(logits.float(), dim=-1)).sum(-1).mean()
