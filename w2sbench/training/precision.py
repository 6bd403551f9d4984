"""Arithmetic precision of training and frozen-layer extraction: bf16 autocast where the hardware has it.

``--train MODE.precision=auto|bf16|fp32`` (``TrainConfig.precision``). Master weights, optimizer state,
the loss and the trust penalties stay float32 in every case; ``bf16`` only runs the matrix products
of the forward and backward passes in bfloat16 under ``torch.autocast`` (Micikevicius et al. 2018,
"Mixed Precision Training"; Kalamkar et al. 2019 for bfloat16). ``auto`` means:

- CUDA: bf16 when the GPU supports it (the behaviour before this option existed);
- CPU: bf16 for ``full`` and ``lora`` when the CPU has native bf16 dot products (AVX512-BF16, AMX), else
  fp32. Measured with benchmarks/stage_throughput.py --rows 256 on an idle 2-core AVX512-BF16 machine (two
  torch threads, load average 0.0, 2026-11-30; ceilings fp32 191 / bf16 430 GFLOP/s): top-two-layer
  training of the offline default's strong model ran 1.82x (plain), 1.67x (fairness), 1.63x
  (adversarial) and 1.82x (DP-SGD, same epsilon) faster under bf16 autocast than in fp32, and the
  frozen-layer extraction 1.64x. (An earlier 0.9-1.1x came from two threads spin-waiting on a machine
  other jobs kept busy.) Parity (benchmarks/precision_parity.py --rows 500 --test-rows 500): accuracy
  bf16 - fp32 -0.002, +0.000, +0.000 on seeds 0-2 (seeds spread 0.774-0.804). ``fp32`` forces the old
  arithmetic; ``CPU_AUTO_BF16 = False`` turns the CPU default off.

A stage's cache key names its precision only when it differs from the behaviour before this option
(``legacy_precision``), so stages cached before it stay valid.

Inference of a partial fine-tune (``inference_weights``): on CPUs, unless ``precision=fp32``, the frozen
bottom layers and the trained top layers predict and are attacked with bfloat16 *copies of their weights*
(pure bf16, no per-op autocast casts; the head, pooling and softmax stay float32, the classifier's own
weights stay float32). Measured with benchmarks/stage_throughput.py (CPU-time clock, 2026-11-30, load ~11 on
2 cores), speed-up over fp32 with 2 threads / 1 thread: frozen-layer extraction 1.34x / 1.9x, cached
predictions 1.33x / 2.2x; live attacks (1 thread) DeepWordBug 1.45x, Pruthi 1.64x. bf16 *autocast* gave
0.90-1.07x with 2 threads on the same rows: the per-op casts eat the gain, bf16 weights do not cast. Parity (benchmarks/inference_parity.py on the trained strong
models of a three-seed run): labels agree on >= 99% of test rows, accuracy differences of at most a few
rows, far inside the accuracy's standard error. Training reads the states extracted at its own precision
(bf16 autocast by default on such CPUs, float32 with ``precision=fp32``) from its own store; the states
extracted with bf16 weights live in a second store (run_models.RunModels.inference_prefix), so neither
is ever served as the other. Predict and live stages name ``inference_weights: bf16`` in their
cache keys when it is used; ``--train full.precision=fp32`` restores the old path and its cached stages.
``CPU_AUTO_BF16_INFERENCE = False`` turns it off for ``auto``.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from w2sbench.errors import W2SBenchError

__all__ = [
    "PRECISIONS",
    "CPU_AUTO_BF16",
    "CPU_AUTO_BF16_INFERENCE",
    "cpu_has_bf16",
    "resolve_precision",
    "inference_weights",
    "legacy_precision",
    "autocast",
    "training_autocast",
    "Float32Attention",
    "check_precision",
]

PRECISIONS = ("auto", "bf16", "fp32")
CPU_AUTO_BF16 = True  # 1.6-1.8x on CPU training with accuracy parity: see the module docstring
CPU_AUTO_BF16_INFERENCE = True  # bf16 weights at inference: see the module docstring


@functools.lru_cache(maxsize=1)
def cpu_has_bf16() -> bool:
    """True when this CPU has native bfloat16 dot products (AVX512-BF16 or AMX-BF16)."""
    capability = ""
    try:
        capability = str(torch.backends.cpu.get_cpu_capability())
    except AttributeError:  # pragma: no cover - older torch
        pass
    if "AMX" in capability.upper():
        return True
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return "avx512_bf16" in flags or "amx_bf16" in flags
    except OSError:
        return False
    return False


def _device_type(device: Any) -> str:
    return torch.device(device).type


def legacy_precision(device: Any) -> str:
    """The precision training used before ``precision`` existed: bf16 autocast on bf16-capable GPUs only."""
    return "bf16" if _device_type(device) == "cuda" and torch.cuda.is_bf16_supported() else "fp32"


def check_precision(precision: str) -> None:
    """Raise ``W2SBenchError`` for a value outside ``PRECISIONS``."""
    if precision not in PRECISIONS:
        raise W2SBenchError(
            f'Unknown training precision "{precision}".', f"Use --train MODE.precision={'|'.join(PRECISIONS)}."
        )


def resolve_precision(precision: str, device: Any, mode: str) -> str:
    """``"bf16"`` or ``"fp32"``: what ``precision`` (one of ``PRECISIONS``) means for ``mode`` on ``device``."""
    check_precision(precision)
    kind = _device_type(device)
    if precision == "fp32":
        return "fp32"
    if precision == "bf16":
        return "bf16" if kind in {"cuda", "cpu"} else "fp32"
    if kind == "cuda":
        return legacy_precision(device)
    if kind == "cpu" and CPU_AUTO_BF16 and mode in {"full", "lora"} and cpu_has_bf16():
        return "bf16"
    return "fp32"


def inference_weights(precision: str, device: Any, mode: str) -> str:
    """``"bf16"`` or ``"fp32"``: the dtype of the frozen and the trained top layers' weights when a partial
    fine-tune (``full`` mode on cached frozen-layer states) predicts and is attacked on ``device``.

    ``"bf16"`` only on CPUs, for ``full`` mode, unless ``precision`` is ``"fp32"``: with ``"auto"`` when
    ``CPU_AUTO_BF16_INFERENCE`` is on and the CPU has native bf16 dot products. ``"fp32"`` is the behaviour
    before this option (float32 weights, with bf16 autocast where ``resolve_precision`` says so)."""
    check_precision(precision)
    if _device_type(device) != "cpu" or mode != "full" or precision == "fp32":
        return "fp32"
    if precision == "bf16" or (CPU_AUTO_BF16_INFERENCE and cpu_has_bf16()):
        return "bf16"
    return "fp32"


def autocast(device: Any, precision: str) -> contextlib.AbstractContextManager[Any]:
    """``torch.autocast`` to bfloat16 on ``device`` when the resolved ``precision`` is ``"bf16"``, else a no-op."""
    if precision != "bf16":
        return contextlib.nullcontext()
    return torch.autocast(_device_type(device), dtype=torch.bfloat16)


class Float32Attention(TorchFunctionMode):
    """Runs ``F.scaled_dot_product_attention`` in float32 (the output cast back to the query's bfloat16) while
    CPU bf16 autocast runs everything else in bfloat16; CPU training only (it switches off CPU autocast for
    the call). torch's fused CPU attention kernel computes its backward pass 3.3-4.3x slower in bfloat16 than
    in float32 (B=128, 12 heads, 128 tokens, head size 32: 0.40-0.52 s against 0.12 s, torch 2.13,
    2026-12-02; ``benchmarks/stage_throughput.py`` rows "bf16 bf16 attn" and "bf16"), while its float32
    forward costs 0.04 s: in training the float32 attention is both faster and more exact. Only bfloat16
    tensor arguments are cast; other functions and other dtypes pass through unchanged."""

    def __torch_function__(self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        query = args[0] if args else kwargs.get("query")
        if func is not F.scaled_dot_product_attention or not isinstance(query, torch.Tensor) or query.dtype != torch.bfloat16:
            return func(*args, **kwargs)
        args = tuple(_float32(a) for a in args)
        kwargs = {k: _float32(v) for k, v in kwargs.items()}
        with torch.autocast("cpu", enabled=False):
            return func(*args, **kwargs).to(torch.bfloat16)


def _float32(value: Any) -> Any:
    return value.float() if isinstance(value, torch.Tensor) and value.dtype == torch.bfloat16 else value


class _CpuBf16Training:
    """bf16 autocast plus float32 attention (``Float32Attention``), entered afresh at every training step
    (reusable and nestable: each entry keeps its own pair of contexts)."""

    def __init__(self) -> None:
        self._entered: list[tuple[Any, Any]] = []

    def __enter__(self) -> None:
        contexts = (torch.autocast("cpu", dtype=torch.bfloat16), Float32Attention())
        for context in contexts:
            context.__enter__()
        self._entered.append(contexts)

    def __exit__(self, *exc: Any) -> None:
        for context in reversed(self._entered.pop()):
            context.__exit__(*exc)


def training_autocast(device: Any, precision: str) -> Any:
    """The context a training step's forward pass runs in: None for float32; on a CPU in bf16, autocast with
    float32 attention (``Float32Attention``); elsewhere ``autocast``."""
    if precision != "bf16":
        return None
    if _device_type(device) == "cpu":
        return _CpuBf16Training()
    return autocast(device, precision)
