"""Training settings and reports: the fine-tune modes, their documented defaults, and what a training returns."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import torch

from w2sbench.training.precision import check_precision

__all__ = ["FINETUNE_MODES", "TrainConfig", "TrainReport", "default_train_config", "ProgressFn", "TransferLossFn"]

FINETUNE_MODES = ("head", "lora", "full")
ProgressFn = Callable[[int, int], None]  # (done steps, total steps)
TransferLossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, float], torch.Tensor]


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings; every field is part of the trained model's cache key."""
    epochs: int
    lr: float
    batch_size: int
    weight_decay: float = 0.0
    warmup_fraction: float = 0.1
    grad_accumulation: int = 1
    gradient_checkpointing: bool = False
    # torch.compile of the trained module. Partial fine-tuning on cached frozen-layer states (trainable_layers with
    # the prefix cache, training/prefix.py) never calls that module, so there it changes nothing. Compiling those top
    # layers on a CPU was measured not to pay (2026-11-30): >= 14 CPU-s per graph plus a recompile for dynamic lengths,
    # against trainings where matmuls already take ~80% of the time.
    compile: bool = False
    lora_rank: int = 8
    lora_alpha: int = 16
    lora_targets: tuple[str, ...] | None = None  # None: peft's defaults for the architecture
    # full mode: train only the top k transformer layers (+ head); 0 means all layers and embeddings.
    trainable_layers: int = 0
    # auto | bf16 | fp32: bf16 autocast with fp32 master weights (w2sbench/training/precision.py)
    precision: str = "auto"
    # Dropout while training. Off by default, as in the reference implementation (openai/weak-to-strong,
    # weak_to_strong/train.py, train_with_dropout=False: "we purposefully turn off dropout, for determinism").
    # Off also lets CPUs run attention with torch's fused kernel instead of drawing a B x heads x L x L mask.
    dropout: bool = False

    def __post_init__(self) -> None:
        check_precision(self.precision)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def default_train_config(mode: str, **overrides: Any) -> TrainConfig:
    """Documented defaults per mode (docs/design.md explains the choices)."""
    base = {
        "head": TrainConfig(epochs=40, lr=3e-3, batch_size=128, weight_decay=1e-4, warmup_fraction=0.0),
        "lora": TrainConfig(epochs=2, lr=5e-4, batch_size=32, weight_decay=0.0),
        "full": TrainConfig(epochs=2, lr=5e-5, batch_size=32, weight_decay=0.01),
    }[mode]
    return replace(base, **{k: v for k, v in overrides.items() if v is not None})


@dataclass
class TrainReport:
    seconds: float
    steps: int
    final_loss: float
    epsilon: float | None = None
    delta: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
