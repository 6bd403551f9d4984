"""Input-space adversarial training: the worst-case perturbation of a batch's input vectors.

Used by the trainer when a regularizer sets ``adversary`` (``interfaces.EmbeddingAdversary``). The
inputs are the word embeddings (``lora``, ``full``) or the cached hidden states entering the trained
top layers (partial fine-tuning); the perturbation is found by normalised gradient ascent on the loss
(one step: the fast gradient method of Miyato et al. 2017; several: projected gradient descent,
Madry et al. 2018) inside a per-token L2 ball whose radius is relative to each token's own norm.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from w2sbench.interfaces import EmbeddingAdversary
from w2sbench.training.losses import soft_cross_entropy

__all__ = ["LogitsOf", "worst_case_perturbation", "adversarial_loss"]

LogitsOf = Callable[[torch.Tensor], torch.Tensor]  # input vectors (batch, tokens, dim) -> logits (batch, labels)
_TINY = 1e-12


def _per_token_normalised(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm(dim=-1, keepdim=True).clamp_min(_TINY)


def worst_case_perturbation(
    logits_of: LogitsOf, inputs: torch.Tensor, mask: torch.Tensor, targets: torch.Tensor, adversary: EmbeddingAdversary
) -> torch.Tensor:
    """A perturbation of ``inputs`` (detached) that raises the loss, each token's at most ``radius`` x its norm.

    Padding positions (``mask`` 0) are never perturbed. Gradients reach only the perturbation here;
    the model's parameters get theirs from the loss on ``inputs + perturbation`` (``adversarial_loss``).
    """
    base = inputs.detach()
    mask = mask.unsqueeze(-1).to(base.dtype)
    radius = adversary.radius * base.float().norm(dim=-1, keepdim=True).to(base.dtype) * mask
    step = radius / max(1, adversary.steps)
    delta = torch.zeros_like(base)
    for _ in range(max(1, adversary.steps)):
        delta.requires_grad_(True)
        loss = soft_cross_entropy(logits_of(base + delta), targets)
        (grad,) = torch.autograd.grad(loss, delta)
        with torch.no_grad():
            delta = delta + step * _per_token_normalised(grad.float()).to(base.dtype)
            # project back into each token's ball
            delta = delta * torch.clamp(radius / delta.norm(dim=-1, keepdim=True).clamp_min(_TINY), max=1.0)
    return delta.detach()


def adversarial_loss(
    logits_of: LogitsOf, inputs: torch.Tensor, mask: torch.Tensor, targets: torch.Tensor, adversary: EmbeddingAdversary
) -> torch.Tensor:
    """``weight`` x cross-entropy of the targets on the worst-case perturbed inputs (differentiable in the model)."""
    delta = worst_case_perturbation(logits_of, inputs, mask, targets, adversary)
    return adversary.weight * soft_cross_entropy(logits_of(inputs + delta), targets)
