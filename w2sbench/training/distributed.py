"""One model trained by several processes: ``accelerate launch`` (or ``torchrun``) runs the whole pipeline
in every process, and the training stages become collective (DDP, or FSDP through ``accelerate config``).

The rules, per stage:

- A collective training (``lora`` and ``full`` fine-tuning without DP-SGD) runs on every rank. Every rank
  iterates the same global batches (the length-grouped sampler is seeded, so the order is identical) and
  runs the forward pass on its contiguous slice of each batch. The slices' logits are gathered, so the loss,
  and every trust regularizer's batch statistics (fairness gaps, consistency views), are computed on the
  whole batch exactly as in one process. The gather's backward hands each rank the gradient of its own slice
  times the number of ranks, and DDP/FSDP average across ranks: the sum is the one-process gradient.
  ``batch_size`` is therefore the global batch; each rank holds ``batch_size / world_size`` rows.
- Everything else (head-mode training, DP-SGD training, predictions, live evaluations) runs on rank 0 only.
- Only rank 0 writes: cache entries, run files, results. The other ranks wait until rank 0 has published a
  stage, then read it from the cache (so the cache must be on storage that every rank sees).

Failures: a rank that raises exits, and the launcher (torch elastic, which ``accelerate launch`` and
``torchrun`` both use) stops the other ranks; a rank left waiting on a peer that exited gets a connection
error from gloo. Ranks wait for rank 0 only at stage boundaries, through a gloo group with a long timeout
(a live evaluation on rank 0 may take hours).
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import torch
from torch import nn

from w2sbench.errors import W2SBenchError

if TYPE_CHECKING:
    from w2sbench.stage_cache import StageCache
    from w2sbench.training.classifier import Classifier

__all__ = ["CollectiveTraining", "DistributedRun", "current", "launched_rank", "reset"]

T = TypeVar("T")
Forward = Callable[[nn.Module, torch.Tensor], tuple[torch.Tensor, list[torch.Tensor]]]
RANK0_WAIT = datetime.timedelta(hours=24)  # how long the other ranks wait for one stage of rank 0


def launched_rank() -> int:
    """This process's rank as the launcher set it (0 when not launched by accelerate/torchrun)."""
    return int(os.environ.get("RANK", "0"))


class DistributedRun:
    """This process's place in a multi-process launch; a single process is rank 0 of 1 (every method a no-op)."""

    def __init__(self, rank: int = 0, world: int = 1, cpu: bool = True, group: Any = None) -> None:
        self.rank = rank
        self.world = world
        self.cpu = cpu
        self._group = group  # gloo, long timeout: waits for rank 0 and object broadcasts
        self._accelerator: Any = None

    @classmethod
    def from_environment(cls, cpu: bool | None = None) -> DistributedRun:
        """Join the launch described by the environment (WORLD_SIZE, RANK, MASTER_ADDR, ... or accelerate's)."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        import torch.distributed as dist
        from accelerate import PartialState

        cpu = (not torch.cuda.is_available()) if cpu is None else cpu
        state = PartialState(cpu=cpu)  # initialises the default process group (nccl on GPUs, gloo on CPUs)
        if not dist.is_initialized() or state.num_processes != world:
            raise W2SBenchError(
                f"WORLD_SIZE is {world} but accelerate did not start a process group ({state.distributed_type}).",
                "Launch with `accelerate launch --num_processes N -m w2sbench run ...` or `torchrun --nproc_per_node N "
                "-m w2sbench run ...` (docs/scale-out.md).",
            )
        group = dist.new_group(backend="gloo", timeout=RANK0_WAIT)
        return cls(state.process_index, world, cpu, group)

    # ------------------------------------------------------------------ coordination

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def state_shards(self) -> int:
        """Over how many GPUs weights, gradients and optimizer state are split (FSDP), for memory estimates."""
        fsdp = os.environ.get("ACCELERATE_USE_FSDP", "false").lower() in {"1", "true", "yes"}
        return self.world if fsdp else 1

    def broadcast(self, value: T) -> T:
        """Rank 0's ``value`` (any picklable object) on every rank."""
        if self.world == 1:
            return value
        import torch.distributed as dist

        box: list[Any] = [value if self.is_main else None]
        dist.broadcast_object_list(box, src=0, group=self._group)
        return box[0]

    def main_first(self, fn: Callable[[], T]) -> T:
        """``fn()`` on rank 0, then on the others (so only rank 0 downloads; the others read its files)."""
        if self.world == 1:
            return fn()
        import torch.distributed as dist

        if self.is_main:
            value = fn()
            dist.barrier(group=self._group)
            return value
        dist.barrier(group=self._group)
        return fn()

    def _agree(self, stage: str, value: T) -> T:
        """Rank 0's ``value`` for ``stage``; a rank at another stage means the ranks' pipelines diverged."""
        theirs, answer = self.broadcast((stage, value))
        if theirs != stage:
            raise W2SBenchError(
                f"Rank {self.rank} reached stage {stage} while rank 0 is at {theirs}: the processes diverged.",
                "Every rank must run the same command with the same data; report this as a bug (--debug).",
            )
        return answer

    def compute(self, cache: StageCache, kind: str, key: Any, produce: Callable[[Path], None]) -> Path:
        """A stage that rank 0 computes (or reads); the other ranks wait for it and read the published entry."""
        if self.world == 1:
            return cache.compute(kind, key, produce)
        path = cache.path(kind, key)
        if self.is_main:
            cache.compute(kind, key, produce)
        self._agree(f"{kind}/{path.name}", "published")
        return self._published(cache, kind, key)

    def compute_collective(self, cache: StageCache, kind: str, key: Any, produce: Callable[[Path | None], None]) -> Path:
        """A stage every rank computes together (a training); rank 0 writes it, the others call ``produce(None)``."""
        if self.world == 1:
            return cache.compute(kind, key, produce)
        path = cache.path(kind, key)
        stage = f"{kind}/{path.name}"
        if not self._agree(stage, self.is_main and cache.get(kind, key) is not None):
            if self.is_main:
                cache.compute(kind, key, produce)
            else:
                produce(None)
            self._agree(stage, "published")
        return self._published(cache, kind, key)

    def _published(self, cache: StageCache, kind: str, key: Any) -> Path:
        """The entry rank 0 published: in this machine's cache folder, or (another machine, a cache on an
        fsspec URL) downloaded into this machine's working copy by ``cache.get``."""
        path = cache.path(kind, key)
        if not (path / "key.json").is_file() and cache.get(kind, key) is None:
            raise W2SBenchError(
                f"Rank {self.rank} cannot see the stage {path} that rank 0 wrote.",
                "Put the cache (--cache-dir, or --out) on storage that every node mounts at the same path, or on an fsspec URL.",
            )
        return path

    # ------------------------------------------------------------------ training

    def check_device(self, device: str) -> None:
        """Each rank trains on its own GPU (accelerate sets the current one), so the device must not name one."""
        if self.world > 1 and device.startswith("cuda:"):
            raise W2SBenchError(
                f"--device {device} names one GPU, but this run has {self.world} processes (one GPU each).",
                "Use --device cuda (or auto) with accelerate launch; pick the GPUs with CUDA_VISIBLE_DEVICES.",
            )
        if self.world > 1 and device == "cpu" and not self.cpu:
            raise W2SBenchError(
                "--device cpu in a multi-GPU launch: the processes communicate over NCCL, which needs GPU tensors.",
                "Drop --device cpu, or launch on CPUs (accelerate launch --cpu ... / torchrun with CUDA_VISIBLE_DEVICES=).",
            )

    def accelerator(self) -> Any:
        """One ``accelerate.Accelerator`` per process (DDP, or FSDP when ``accelerate config`` says so)."""
        if self._accelerator is None:
            from accelerate import Accelerator

            self._accelerator = Accelerator(cpu=self.cpu)
        return self._accelerator

    def collective_training(self, seed: int) -> CollectiveTraining | None:
        """The hooks for one collective training (None in a single process: train as usual)."""
        return CollectiveTraining(self, seed) if self.world > 1 else None


class _GatherRows(torch.autograd.Function):
    """Concatenate every rank's rows (in rank order). Backward: this rank's rows of the gradient, times the
    number of ranks, since DDP/FSDP average the ranks' gradients and the loss is the same on every rank."""

    @staticmethod
    def forward(ctx: Any, local: torch.Tensor, sizes: list[int], rank: int, group: Any) -> torch.Tensor:  # type: ignore[override]
        import torch.distributed as dist

        ctx.rows = (sum(sizes[:rank]), sizes[rank])
        ctx.world = len(sizes)
        padded = local.new_zeros((max(sizes), *local.shape[1:]))
        padded[: len(local)] = local
        chunks = [torch.empty_like(padded) for _ in sizes]
        dist.all_gather(chunks, padded.contiguous(), group=group)
        return torch.cat([chunk[:n] for chunk, n in zip(chunks, sizes)])

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        start, n = ctx.rows
        return grad[start : start + n] * ctx.world, None, None, None


class CollectiveTraining:
    """What ``train_classifier`` calls when every rank trains the same model (see the module docstring)."""

    def __init__(self, run: DistributedRun, seed: int) -> None:
        self.run = run
        self.seed = seed
        self._model: Any = None
        self._trainable: list[str] = []
        self._unused: list[nn.Parameter] = []

    def prepare(self, module: nn.Module, optimizer: torch.optim.Optimizer, forward: Forward, n: int) -> tuple[nn.Module, Any, Forward]:
        """Wrap model and optimizer with accelerate (DDP/FSDP); return a forward that shards each batch by rank."""
        self._trainable = [name for name, p in module.named_parameters() if p.requires_grad]
        self._unused = _unused_parameters(module, forward, n)
        for p in self._unused:
            # never reached by the loss (e.g. BERT's pooler): no gradient, so DDP would wait for it forever.
            # One process leaves them unchanged too (AdamW skips parameters without a gradient).
            p.requires_grad_(False)
        if getattr(module, "_no_split_modules", None) is None:
            # FSDP's TRANSFORMER_BASED_WRAP reads the layer classes from here when none are configured
            backbone = getattr(module, "backbone", None)
            module._no_split_modules = getattr(backbone, "_no_split_modules", None)  # type: ignore[assignment]
        self._model, optimizer = self.run.accelerator().prepare(module, optimizer)
        if self.run.rank > 0:
            # Dropout: rank 0 keeps the single-process random stream, the others draw their own.
            torch.manual_seed(int(np.random.SeedSequence([self.seed, self.run.rank]).generate_state(1)[0]))
        return self._model, optimizer, self._shard(forward)

    def _shard(self, forward: Forward) -> Forward:
        rank, world = self.run.rank, self.run.world

        def sharded(mod: nn.Module, idx: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
            pieces = torch.tensor_split(idx, world)
            sizes = [len(p) for p in pieces]
            if sizes[rank]:
                logits, views = forward(mod, pieces[rank])
            else:  # fewer rows than ranks: run one row and keep none, so every parameter still joins backward
                logits, views = forward(mod, idx[:1])
                logits, views = logits[:0], [v[:0] for v in views]
            width = logits.shape[1]
            local = torch.cat([logits.float(), *(v.float() for v in views)], dim=1)
            parts = _GatherRows.apply(local, sizes, rank, None).split(width, dim=1)
            return parts[0], list(parts[1:])

        return sharded

    def local_rows(self, idx: torch.Tensor) -> tuple[torch.Tensor, float]:
        """This rank's slice of a batch (as the sharded forward splits it) and the factor ``world * n_local / n``
        that turns the mean loss over the slice into this rank's share of the batch mean once DDP/FSDP average
        the ranks' gradients. A rank with no rows gets one row at factor 0, so every rank runs the same
        number of forward passes (DDP synchronises buffers on each)."""
        piece = torch.tensor_split(idx, self.run.world)[self.run.rank]
        if len(piece) == 0:
            return idx[:1], 0.0
        return piece, self.run.world * len(piece) / len(idx)

    def backward(self, loss: torch.Tensor) -> None:
        self.run.accelerator().backward(loss)

    def trainable_state(self, classifier: Classifier) -> dict[str, torch.Tensor]:
        """The trained parameters on rank 0 (gathered from the shards under FSDP; a collective call)."""
        for p in self._unused:
            p.requires_grad_(True)
        accelerator = self.run.accelerator()
        try:
            from accelerate.utils import DistributedType

            if accelerator.distributed_type == DistributedType.FSDP:
                full = accelerator.get_state_dict(self._model)
                return {n: full[n].detach().cpu().contiguous() for n in self._trainable if n in full} if self.run.is_main else {}
            return classifier.trainable_state()
        finally:
            self._model = None
            accelerator.free_memory()


def _unused_parameters(module: nn.Module, forward: Forward, n: int) -> list[nn.Parameter]:
    """Trainable parameters that a forward/backward on two rows leaves without a gradient (random state kept)."""
    module.zero_grad(set_to_none=True)
    with torch.random.fork_rng(devices=[torch.cuda.current_device()] if torch.cuda.is_available() else []):
        logits, views = forward(module, torch.arange(min(2, n)))
        (logits.float().sum() + sum(v.float().sum() for v in views)).backward()
    unused = [p for p in module.parameters() if p.requires_grad and p.grad is None]
    module.zero_grad(set_to_none=True)
    return unused


_CURRENT: DistributedRun | None = None


def current(cpu: bool | None = None) -> DistributedRun:
    """This process's ``DistributedRun``, joined on first use (``cpu``: launch on CPUs; default: when no GPU)."""
    global _CURRENT
    if _CURRENT is None:
        _CURRENT = DistributedRun.from_environment(cpu)
    return _CURRENT


def reset() -> None:
    """Forget the current run (tests)."""
    global _CURRENT
    _CURRENT = None
