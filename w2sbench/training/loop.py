"""The training loop shared by every fine-tune mode: batches, the loss (transfer loss + the trust regularizer's
penalty + the adversarial term), backward, finite checks and optimizer steps."""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

import w2sbench.training.finite_checks as finite
from w2sbench.faults import fault_point
from w2sbench.interfaces import PenaltyContext, Regularizer
from w2sbench.training.adversarial import LogitsOf, adversarial_loss
from w2sbench.training.config import ProgressFn, TrainConfig, TransferLossFn
from w2sbench.training.distributed import CollectiveTraining
from w2sbench.training.dp import empty_private_step
from w2sbench.training.losses import soft_cross_entropy

__all__ = ["TrainingLoop", "LengthGroupedBatches", "ForwardFn", "InputsFn"]

InputsFn = Callable[[nn.Module, torch.Tensor], tuple[torch.Tensor, torch.Tensor, LogitsOf]]
ForwardFn = Callable[[nn.Module, torch.Tensor], tuple[torch.Tensor, list[torch.Tensor]]]



class LengthGroupedBatches(torch.utils.data.Sampler[list[int]]):
    """Shuffled batches of similar-length examples: sort within random mega-batches of 50 batches,
    cut into batches, shuffle the batch order. Deterministic given (seed, epoch)."""

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int, group: int = 50) -> None:
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.seed = seed
        self.group = group
        self.epoch = 0

    def __len__(self) -> int:
        return math.ceil(len(self.lengths) / self.batch_size)

    def __iter__(self):  # noqa: ANN204
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(len(self.lengths))
        mega = self.batch_size * self.group
        batches = []
        for start in range(0, len(order), mega):
            chunk = sorted(order[start : start + mega].tolist(), key=lambda i: self.lengths[i])
            batches += [chunk[i : i + self.batch_size] for i in range(0, len(chunk), self.batch_size)]
        for b in rng.permutation(len(batches)):
            yield batches[b]



@dataclass
class TrainingLoop:
    """The training loop's state: one instance per ``train_classifier`` call."""

    module: nn.Module
    optimizer: Any
    loader: Any
    scheduler: Any
    engine: Any
    forward: ForwardFn
    adversarial_inputs: InputsFn | None
    regularizer: Regularizer
    transfer_loss: TransferLossFn | None
    y: torch.Tensor
    row_weights: torch.Tensor
    attrs: dict[str, torch.Tensor]
    params: list[torch.Tensor]
    mode: str
    config: TrainConfig
    device: torch.device
    total: int
    progress: ProgressFn | None
    distributed: CollectiveTraining | None
    autocast: Any  # a bf16 autocast context, or None for fp32 (training/precision.py)

    def epochs(self) -> tuple[int, float]:
        """Run every epoch; returns (optimizer steps, last loss)."""
        self.module.train()
        step, loss_value = 0, float("nan")
        autocast = self.autocast
        for epoch in range(self.config.epochs):
            if isinstance(getattr(self.loader, "batch_sampler", None), LengthGroupedBatches):
                self.loader.batch_sampler.epoch = epoch
            self.optimizer.zero_grad(set_to_none=True)
            for micro, (idx,) in enumerate(self.loader):
                if len(idx) == 0:  # Poisson sampling under DP-SGD can draw an empty batch: still a step (noise, accounting)
                    if self.engine is not None:
                        step = empty_private_step(self.optimizer, self.scheduler, self.progress, step, self.total)
                    continue
                loss, has_penalty = self.loss(idx, step, autocast)
                self.backward(loss)
                loss_value = finite.check_finite_loss(float(loss.detach()), self.mode, self.config, epoch, step, has_penalty)
                if (micro + 1) % self.config.grad_accumulation == 0 or micro + 1 == len(self.loader):
                    step = self.optimizer_step(epoch, step)
        return step, loss_value

    def loss(self, idx: torch.Tensor, step: int, autocast: Any) -> tuple[torch.Tensor, bool]:
        """The batch's transfer loss (cross-entropy to the targets, or the strategy's), plus the regularizer's
        penalty and, with an adversary, the loss on worst-case perturbed inputs."""
        with autocast if autocast is not None else contextlib.nullcontext():
            logits, view_logits = self.forward(self.module, idx)
        batch_targets = self.y[idx].to(self.device)
        if self.transfer_loss is None:
            loss = soft_cross_entropy(logits, batch_targets)
        else:
            loss = self.transfer_loss(logits.float(), batch_targets, self.row_weights[idx].to(self.device), step / self.total)
        penalty = self.regularizer.penalty(
            PenaltyContext(
                logits=logits.float(),
                targets=batch_targets,
                attributes={k: v[idx].to(self.device) for k, v in self.attrs.items()},
                view_logits=[v.float() for v in view_logits],
            )
        )
        if penalty is not None:
            loss = loss + penalty
        adversary = self.regularizer.adversary
        if adversary is not None and self.adversarial_inputs is not None:
            # per-example perturbations: under a multi-process launch each rank handles its slice of the batch
            rows, share = self.distributed.local_rows(idx) if self.distributed is not None else (idx, 1.0)
            with autocast if autocast is not None else contextlib.nullcontext():
                inputs, mask, logits_of = self.adversarial_inputs(self.module, rows)
                loss = loss + share * adversarial_loss(logits_of, inputs, mask, self.y[rows].to(self.device), adversary)
        return loss, penalty is not None

    def backward(self, loss: torch.Tensor) -> None:
        with warnings.catch_warnings():
            # opacus' hooks on a layer whose input needs no gradient (frozen layers below it): expected here
            warnings.filterwarnings("ignore", message="Full backward hook is firing")
            if self.distributed is not None:
                self.distributed.backward(loss / self.config.grad_accumulation)
            else:
                (loss / self.config.grad_accumulation).backward()

    def optimizer_step(self, epoch: int, step: int) -> int:
        if self.engine is None:
            finite.check_finite_gradients(self.params, self.mode, self.config, epoch, step)
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        step += 1
        fault_point("train-step")
        if self.progress is not None:
            self.progress(step, self.total)
        return step
