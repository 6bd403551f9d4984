"""Which device a run uses: the one place that asks torch whether a CUDA GPU is visible."""

from __future__ import annotations

import torch

from w2sbench.errors import W2SBenchError

__all__ = ["resolve_device", "cuda_available"]


def cuda_available() -> bool:
    """Whether this process sees a CUDA GPU."""
    return torch.cuda.is_available()


def resolve_device(choice: str) -> str:
    """``auto`` -> cuda when a GPU is visible, else cpu; refuses a device that is not there.

    Raises W2SBenchError for an unknown name or a CUDA device on a machine without one.
    """
    if choice == "auto":
        return "cuda" if cuda_available() else "cpu"
    if choice.startswith("cuda") and not cuda_available():
        raise W2SBenchError(f'Device "{choice}" was asked for but no CUDA GPU is visible.', "Use --device cpu or auto.")
    if choice not in {"cpu", "mps"} and not choice.startswith("cuda"):
        raise W2SBenchError(f'Unknown device "{choice}".', "Use auto, cpu, cuda or cuda:N.")
    return choice
