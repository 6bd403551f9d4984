"""DP-SGD details the trainer needs beyond opacus: the default delta and the step of an empty batch."""

from __future__ import annotations

from typing import Any

import torch

from w2sbench.errors import W2SBenchError

__all__ = ["dp_delta", "empty_private_step"]



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
