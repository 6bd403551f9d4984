"""What a trust regularizer is: a loss term (``penalty`` on a ``PenaltyContext``), extra input views, DP-SGD
(``PrivacySpec``) or input-space adversarial training (``EmbeddingAdversary``)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch

__all__ = ["PenaltyContext", "PrivacySpec", "EmbeddingAdversary", "Regularizer", "NoRegularizer"]


@dataclass
class PenaltyContext:
    """What a regularizer sees for one training batch."""

    logits: torch.Tensor  # (batch, num_labels) on the clean inputs
    targets: torch.Tensor  # (batch, num_labels) probabilities the model is trained towards
    attributes: dict[str, torch.Tensor]  # per-example attributes of the batch, as tensors
    view_logits: list[torch.Tensor]  # logits on each extra view the regularizer asked for (see ``views``)


@dataclass(frozen=True)
class PrivacySpec:
    """Train with DP-SGD (opacus) to this privacy budget; delta None means 1/(100 N) (trainer.dp_delta)."""

    target_epsilon: float
    delta: float | None = None
    max_grad_norm: float = 1.0
    # Part of the trained model's cache key: stages trained before empty Poisson batches counted as steps
    # (and before the 1/(100 N) default delta) report a lower epsilon than their mechanism's, so never reuse them.
    accounting: str = "every-poisson-batch"
    # DP-SGD's own optimisation when it fine-tunes a model (lora, full); a linear head (head mode) trains with
    # its usual settings. DP-SGD wants larger batches, a higher learning rate and far fewer trained parameters
    # than plain training (Ponomareva et al. 2023, How to DP-fy ML, JAIR 77, section 5.4; Bu et al. 2022,
    # Differentially Private Bias-Term Fine-tuning of Foundation Models). None keeps the mode's setting.
    parameters: str = "all"  # "all", or "biases": the trained layers' bias vectors (and the head) only
    batch_size: int | None = None
    lr: float | None = None
    epochs: int | None = None

    def key(self) -> dict[str, Any]:
        """The cache-key part: every field, except fine-tuning settings left at their defaults (so stages
        trained before they existed keep their keys)."""
        out = dict(vars(self))
        for name, default in (("parameters", "all"), ("batch_size", None), ("lr", None), ("epochs", None)):
            if out[name] == default:
                del out[name]
        return out


@dataclass(frozen=True, init=False)
class EmbeddingAdversary:
    """Adversarial training in input space (Miyato et al. 2017; Madry et al. 2018): each batch also trains on
    its worst-case perturbation, found by ``steps`` normalised gradient-ascent steps on the loss.

    The perturbation acts on the input embeddings (``lora``, ``full``) or, for partial fine-tuning on
    cached states, on the hidden states entering the trained top layers. Its L2 norm per token is at most
    ``radius`` times that token's own vector norm, so one value fits every model's embedding scale.
    (``radius`` was called ``epsilon`` before; that name now means only the DP budget, ``PrivacySpec``.)
    """

    radius: float
    steps: int = 1
    weight: float = 1.0  # the loss adds weight x cross-entropy on the perturbed inputs

    def __init__(self, radius: float | None = None, steps: int = 1, weight: float = 1.0, *, epsilon: float | None = None) -> None:
        """``epsilon=`` is the deprecated name of ``radius`` (one release), with a DeprecationWarning."""
        if epsilon is not None:
            warnings.warn("EmbeddingAdversary(epsilon=...) is renamed radius=...; the old name works for one more release.",
                          DeprecationWarning, stacklevel=2)
            radius = epsilon if radius is None else radius
        if radius is None:
            raise TypeError("EmbeddingAdversary needs a radius")
        object.__setattr__(self, "radius", radius)
        object.__setattr__(self, "steps", steps)
        object.__setattr__(self, "weight", weight)

    def cache_key(self) -> dict[str, Any]:
        """The trained model's cache-key part. The radius is hashed under its old name "epsilon", so that models
        trained before the rename keep their keys (and are not retrained)."""
        return {"epsilon": self.radius, "steps": self.steps, "weight": self.weight}


class Regularizer:
    """A trust regularizer. Override ``penalty`` (a loss term), ``views`` (extra input views), or set
    ``privacy`` (DP-SGD) or ``adversary`` (input-space adversarial training)."""

    name: str = "none"
    weight: float = 0.0
    privacy: PrivacySpec | None = None
    adversary: EmbeddingAdversary | None = None

    def config(self) -> dict[str, Any]:
        """Everything that changes training; it becomes part of the trained model's cache key."""
        out = {"name": self.name, "weight": self.weight, "privacy": self.privacy and self.privacy.key()}
        if self.adversary is not None:  # only when set, so keys of regularizers without one stay as they were
            out["adversary"] = self.adversary.cache_key()
        return out

    def for_training(self, role: str, mode: str) -> Regularizer:
        """The regularizer to train ``role`` ("weak" or "strong") in fine-tune ``mode`` ("head", "lora",
        "full") with; override to vary it by phase or mode (default: this one, unchanged)."""
        return self

    def views(self, texts: Sequence[str], seed: int) -> list[list[str]]:
        """Extra versions of the training texts (e.g. perturbed copies) whose logits reach ``penalty``."""
        return []

    def penalty(self, ctx: PenaltyContext) -> torch.Tensor | None:
        """A loss term added to the training loss (already weighted), or None."""
        return None


class NoRegularizer(Regularizer):
    """Plain training."""
