"""Training throughput and model FLOPs utilisation of w2sbench's trainer, against a plain reference loop.

Builds a randomly initialised model of a public Pythia shape (weights cannot be downloaded here, and
throughput does not depend on their values) and trains it as a sequence classifier on synthetic
variable-length batches, twice in one process:

  reference   fp32, random batches padded to the maximum length, plain AdamW
  w2sbench    the pipeline's settings: bf16 autocast where --precision resolves to it (auto: GPUs that
              support it and CPUs with native bf16; training/precision.py), with float32 attention
              on CPUs, length-grouped batches with dynamic padding, fused AdamW (optionally
              torch.compile); Pythia's configurations have no dropout, so neither side has any

It prints samples/s, real (non-padding) tokens/s, MFU for each, and the ratio. MFU counts 6 x params
FLOPs per real token (forward + backward) against the device's peak: bf16 dense peak for NVIDIA
GPUs by name, or a measured matmul rate on CPUs in the precision each side used.

    python benchmarks/train_throughput.py --shape pythia-160m --steps 20
    python benchmarks/train_throughput.py --shape pythia-1b --batch-size 16 --max-length 256 --compile

On CPUs seconds are CPU seconds / threads (``clock``), so other jobs on a shared machine hardly move the
ratio; the load average is printed beside it. ``--threads`` sets torch's thread count.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import time

import numpy as np
import torch

# hidden size, layers, heads from the public Pythia configs (EleutherAI/pythia-*/config.json).
SHAPES = {
    "pythia-14m": (128, 6, 4),
    "pythia-70m": (512, 6, 8),
    "pythia-160m": (768, 12, 12),
    "pythia-410m": (1024, 24, 16),
    "pythia-1b": (2048, 16, 8),
    "pythia-1.4b": (2048, 24, 16),
    "pythia-2.8b": (2560, 32, 32),
}
PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L4": 121e12, "A10": 125e12}


def build(shape: str, device: str):  # noqa: ANN201
    from transformers import GPTNeoXConfig, GPTNeoXModel

    from w2sbench.training.classifier import Classifier

    hidden, layers, heads = SHAPES[shape]
    config = GPTNeoXConfig(
        vocab_size=50304, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
        intermediate_size=4 * hidden, rotary_pct=0.25, max_position_embeddings=2048, use_parallel_residual=True,
    )
    torch.manual_seed(0)
    backbone = GPTNeoXModel(config)

    class _NoTokenizer:  # the benchmark feeds token ids directly
        pass

    model = Classifier(backbone, _NoTokenizer(), 2, 2048).to(device)
    non_embedding = sum(p.numel() for n, p in backbone.named_parameters() if "embed" not in n)
    return model, non_embedding


def lengths(n: int, max_length: int, seed: int) -> np.ndarray:
    """Realistic skew: most texts are short, a few reach the cap (log-normal, like SST-2/Adult/e-mails)."""
    rng = np.random.default_rng(seed)
    return np.clip(rng.lognormal(math.log(max_length / 4), 0.6, n).astype(int), 8, max_length)


def clock(device: str) -> float:
    """Wall seconds on GPUs; on CPUs, CPU seconds / threads (robust to other jobs on a shared machine)."""
    if device.startswith("cuda"):
        return time.perf_counter()
    return time.process_time() / torch.get_num_threads()


def peak_flops(device: str, dtype: torch.dtype = torch.float32) -> float:
    """bf16 dense peak for NVIDIA GPUs by name; on CPUs a measured 2048x2048 matmul rate in ``dtype``."""
    if device.startswith("cuda"):
        name = torch.cuda.get_device_name()
        for key, value in PEAK_BF16.items():
            if key in name:
                return value
        return 312e12
    a = torch.randn(2048, 2048, dtype=dtype)
    torch.mm(a, a)
    best = float("inf")
    for _ in range(3):
        start = clock(device)
        for _ in range(5):
            torch.mm(a, a)
        best = min(best, clock(device) - start)
    return 5 * 2 * 2048**3 / best


def run(model, lens: np.ndarray, batch_size: int, steps: int, optimized: bool, device: str, compile_model: bool,  # noqa: ANN001
        precision: str = "auto") -> tuple[float, int, int]:
    from w2sbench.training.loop import LengthGroupedBatches

    params = [p for p in model.parameters() if p.requires_grad]
    fused = optimized and device.split(":")[0] in ("cuda", "cpu")  # as the trainer: torch's fused AdamW kernel
    opt = torch.optim.AdamW(params, lr=1e-5, fused=fused or None)
    step_fn = torch.compile(model) if compile_model else model
    if optimized:
        batches = list(iter(LengthGroupedBatches(lens.tolist(), batch_size, seed=0)))
    else:
        order = np.random.default_rng(0).permutation(len(lens))
        batches = [order[i : i + batch_size].tolist() for i in range(0, len(order), batch_size)]
    from w2sbench.training.precision import resolve_precision, training_autocast

    use_bf16 = optimized and resolve_precision(precision, device, "full") == "bf16"
    # the trainer's step context: bf16 autocast (with float32 attention on CPUs), or none in fp32
    step_context = training_autocast(device, "bf16" if use_bf16 else "fp32") or contextlib.nullcontext()
    max_len = int(lens.max())
    tokens = samples = 0
    warmup = 2
    start = 0.0
    for i in range(steps + warmup):
        idx = batches[i % len(batches)]
        width = int(lens[idx].max()) if optimized else max_len
        ids = torch.randint(0, 50304, (len(idx), width), device=device)
        mask = (torch.arange(width, device=device)[None, :] < torch.as_tensor(lens[idx], device=device)[:, None]).long()
        labels = torch.randint(0, 2, (len(idx),), device=device)
        if i == warmup:
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            start = clock(device)
        with step_context:
            logits = step_fn(input_ids=ids, attention_mask=mask)
        loss = torch.nn.functional.cross_entropy(logits.float(), labels)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i >= warmup:
            tokens += int(lens[idx].sum())
            samples += len(idx)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return clock(device) - start, samples, tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", default="pythia-160m", choices=sorted(SHAPES))
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp32"], help="w2sbench side (training/precision.py)")
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--threads", type=int, default=0, help="torch threads on CPU (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    lens = lengths(args.batch_size * max(args.steps + 2, 64), args.max_length, seed=0)
    from w2sbench.training.precision import resolve_precision

    peak = peak_flops(args.device)
    bf16 = resolve_precision(args.precision, args.device, "full") == "bf16"
    peaks = {"reference": peak, "w2sbench": peak_flops(args.device, torch.bfloat16) if bf16 and not args.device.startswith("cuda") else peak}
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"CPU ({torch.get_num_threads()} threads)"
    print(f"{args.shape} on {name}; batch {args.batch_size}, lengths 8..{args.max_length} (mean {lens.mean():.0f}), "
          f"peak {peak / 1e9:,.0f} GFLOP/s (w2sbench: {'bf16' if bf16 else 'fp32'}, peak {peaks['w2sbench'] / 1e9:,.0f}); "
          f"load average {__import__('os').getloadavg()[0]:.1f}")
    results = {}
    sides = [("reference", False, "fp32")]
    if bf16:  # the same loop in fp32 too, so the ratio splits into padding/loop and precision
        sides.append(("w2sbench fp32", True, "fp32"))
        peaks["w2sbench fp32"] = peak
    sides.append(("w2sbench", True, args.precision))
    for label, optimized, precision in sides:
        model, params = build(args.shape, args.device)
        if args.gradient_checkpointing and optimized:
            model.backbone.gradient_checkpointing_enable()
        seconds, samples, tokens = run(model, lens, args.batch_size, args.steps, optimized, args.device, args.compile and optimized, precision)
        mfu = 6 * params * tokens / seconds / peaks[label]
        results[label] = (samples / seconds, tokens / seconds, mfu)
        print(f"{label:>13}: {samples / seconds:8.1f} samples/s  {tokens / seconds:10.0f} tokens/s  MFU {100 * mfu:5.1f}%")
        del model
        if args.device.startswith("cuda"):
            torch.cuda.empty_cache()
    if "w2sbench fp32" in results:
        print(f"ratio w2sbench fp32 / reference (tokens/s): {results['w2sbench fp32'][1] / results['reference'][1]:.2f}x")
    ratio = results["w2sbench"][1] / results["reference"][1]
    print(f"ratio w2sbench / reference (tokens/s): {ratio:.2f}x; load average {__import__('os').getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
