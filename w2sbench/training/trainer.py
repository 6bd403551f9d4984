"""One trainer for the three fine-tune modes.

- ``head``: frozen backbone; pooled features are computed once (and cached on disk by the caller),
  then only the linear head is trained. Cheap enough for CPUs.
- ``lora``: peft LoRA adapters on the backbone + the head.
- ``full``: every parameter.

The loss is cross-entropy against target distributions (ground truth one-hot, or the weak model's
soft labels), plus the trust regularizer's penalty. DP-SGD (opacus) replaces the optimizer and the
sampler when the regularizer asks for privacy, in every mode.
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import torch
from torch import nn

import w2sbench.training.finite_checks as finite
from w2sbench.errors import W2SBenchError
from w2sbench.faults import fault_point
from w2sbench.interfaces import PenaltyContext, Regularizer
from w2sbench.training.adversarial import LogitsOf, adversarial_loss
from w2sbench.training.classifier import Classifier, transformer_layers
from w2sbench.training.distributed import CollectiveTraining
from w2sbench.training.dp import dp_delta, empty_private_step
from w2sbench.training.losses import soft_cross_entropy
from w2sbench.training.precision import autocast, check_precision, resolve_precision
from w2sbench.training.prefix import TopLayers

__all__ = [
    "FINETUNE_MODES",
    "TrainConfig",
    "TrainReport",
    "LengthGroupedBatches",
    "default_train_config",
    "train_classifier",
    "apply_lora",
    "estimate_training_memory",
]

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
    compile: bool = False
    lora_rank: int = 8
    lora_alpha: int = 16
    lora_targets: tuple[str, ...] | None = None  # None: peft's defaults for the architecture
    # full mode: train only the top k transformer layers (+ head); 0 means all layers and embeddings.
    trainable_layers: int = 0
    # auto | bf16 | fp32: bf16 autocast with fp32 master weights (w2sbench/training/precision.py)
    precision: str = "auto"

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


def estimate_training_memory(params: int, mode: str, batch_tokens: int, hidden: int, layers: int, cuda: bool) -> int:
    """Rough peak bytes for training: weights, gradients and AdamW state, plus activations.

    full: fp32 weights + grads + two Adam moments = 16 B/param. lora/head: frozen base weights (bf16 on
    GPU, fp32 on CPU) and a negligible trainable part. Activations: ~34 * hidden bytes per token per
    layer in bf16 (Korthikanti et al. 2022, without attention recomputation), x2 in fp32.
    """
    weight_bytes = 2 if cuda and mode != "full" else 4
    state = params * (16 if mode == "full" else weight_bytes)
    activations = 0 if mode == "head" else batch_tokens * hidden * layers * 34 * (1 if cuda else 2)
    return int(state + activations)


def freeze_below(classifier: Classifier, top: int) -> None:
    """Freeze the embeddings and all but the top ``top`` layers; frozen layers run without dropout,
    and since nothing below them needs gradients, autograd stores no activations for them."""
    layers = transformer_layers(classifier.backbone)
    if top >= len(layers):
        return
    for p in classifier.backbone.parameters():
        p.requires_grad_(False)
    for layer in layers[len(layers) - top :]:
        for p in layer.parameters():
            p.requires_grad_(True)
    frozen = [m for m in classifier.backbone.modules() if not any(p.requires_grad for p in m.parameters(recurse=True))]
    for m in frozen:
        # keep frozen blocks deterministic (no dropout) even when the classifier is put in train mode
        m.train = (lambda mode=True, _m=m: nn.Module.train(_m, False))  # type: ignore[method-assign]
        m.eval()


def apply_lora(classifier: Classifier, config: TrainConfig) -> None:
    """Wrap the backbone with peft LoRA adapters (frozen base weights, trainable adapters)."""
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(
        r=config.lora_rank,
        lora_alpha=config.lora_alpha,
        lora_dropout=0.0,
        target_modules=list(config.lora_targets) if config.lora_targets else None,
    )
    try:
        classifier.backbone = get_peft_model(classifier.backbone, lora)
    except ValueError as exc:
        raise W2SBenchError(
            f"LoRA could not find target modules in this architecture ({exc}).",
            "Name the attention/MLP linear layers with --train lora.lora_targets=query,value (the names depend on the "
            "architecture), or use another fine-tune mode for a model without transformer layers.",
        ) from None


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


def _freeze_unused(module: nn.Module, forward: Callable[..., Any], n: int) -> None:
    """Freeze trainable parameters the loss never reaches (e.g. BERT's pooler, unused by mean pooling):
    opacus needs a per-sample gradient for every trainable parameter and fails on the others."""
    module.zero_grad(set_to_none=True)
    logits, view_logits = forward(module, torch.arange(min(2, n)))
    (logits.float().sum() + sum(v.float().sum() for v in view_logits)).backward()
    for p in module.parameters():
        if p.requires_grad and p.grad is None:
            p.requires_grad_(False)
    module.zero_grad(set_to_none=True)


def _training_autocast(config: TrainConfig, device: torch.device, mode: str) -> Any:
    """bf16 autocast when the config's precision resolves to bf16 here (training/precision.py), else None."""
    precision = resolve_precision(config.precision, device, mode)
    return autocast(device, precision) if precision == "bf16" else None


InputsFn = Callable[[nn.Module, torch.Tensor], tuple[torch.Tensor, torch.Tensor, LogitsOf]]
ForwardFn = Callable[[nn.Module, torch.Tensor], tuple[torch.Tensor, list[torch.Tensor]]]


def train_classifier(
    classifier: Classifier,
    mode: str,
    texts: Sequence[str],
    targets: np.ndarray,
    attributes: dict[str, np.ndarray],
    regularizer: Regularizer,
    config: TrainConfig,
    seed: int,
    features: Callable[[Sequence[str]], np.ndarray] | None = None,
    progress: ProgressFn | None = None,
    prefix: Any = None,
    distributed: CollectiveTraining | None = None,
    transfer_loss: TransferLossFn | None = None,
    weights: np.ndarray | None = None,
) -> TrainReport:
    """Train ``classifier`` in place; returns the report (seconds, optimizer steps, final loss, DP epsilon/delta).

    ``targets`` (n, classes) are target distributions (one-hot ground truth or soft labels); ``attributes`` are
    per-row arrays the regularizer's penalty sees. In ``head`` mode ``features`` maps texts to (cached) pooled
    features; ``prefix`` (training/prefix.py) serves cached frozen-layer states for partial fine-tuning. With
    ``distributed`` every rank of a multi-process launch trains this model on its share of each batch.
    ``transfer_loss(logits, targets, weights, progress)`` replaces the cross-entropy (a strategy's loss; ``weights``
    (n,) are its row weights, default 1; progress is the fraction of optimizer steps done).
    Raises W2SBenchError for an unknown mode, an empty split, a regularizer the mode cannot run, and
    NonFiniteTraining (w2sbench/finite.py) when a target, loss, gradient or parameter is not finite.
    """
    _check_request(mode, texts, regularizer)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    device = classifier.device
    y = torch.as_tensor(np.asarray(targets, dtype=np.float32))
    finite.check_finite_targets(y, mode, config)
    row_weights = torch.as_tensor(np.ones(len(y)) if weights is None else np.asarray(weights), dtype=torch.float32)
    attrs = {k: torch.as_tensor(np.asarray(v)) for k, v in attributes.items()}
    views = regularizer.views(texts, seed)
    _check_regularizer(mode, regularizer)
    _set_trainable(classifier, mode, config)
    module, forward, adversarial_inputs = _forward_for_mode(classifier, mode, config, texts, views, features, prefix)
    if regularizer.privacy is not None and mode != "head":
        _freeze_unused(module, forward, len(texts))
    params = [p for p in module.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay, fused=(device.type == "cuda") or None)
    loader = _data_loader(mode, texts, config, seed, generator)
    engine, report_delta = None, None
    if regularizer.privacy is not None:
        module, optimizer, loader, engine, report_delta = _make_private(module, optimizer, loader, regularizer, config, seed, len(texts))
    if distributed is not None:  # DDP/FSDP through accelerate; each rank runs its slice of every batch
        module, optimizer, forward = distributed.prepare(module, optimizer, forward, len(texts))
    if config.compile and engine is None:
        module = torch.compile(module)
    total = max(1, math.ceil(len(loader) / config.grad_accumulation)) * config.epochs
    run = _Loop(
        module, optimizer, loader, _scheduler(optimizer, mode, config, total), engine, forward, adversarial_inputs,
        regularizer, transfer_loss, y, row_weights, attrs, params, mode, config, device, total, progress, distributed,
    )
    step, loss_value = run.epochs()
    if engine is not None and hasattr(module, "_close"):
        module._close()  # remove opacus hooks so inference runs at normal speed
    classifier.eval()
    finite.check_finite_parameters(module, mode, config)
    epsilon = float(engine.get_epsilon(report_delta)) if engine is not None else None
    return TrainReport(time.perf_counter() - start, step, loss_value, epsilon, report_delta)


def _check_request(mode: str, texts: Sequence[str], regularizer: Regularizer) -> None:
    if mode not in FINETUNE_MODES:
        raise W2SBenchError(f'Unknown fine-tune mode "{mode}".', f"Use one of: {', '.join(FINETUNE_MODES)}.")
    if len(texts) == 0:
        raise W2SBenchError("The training split is empty.", "Check the dataset and the split sizes (--option).")


def _check_regularizer(mode: str, regularizer: Regularizer) -> None:
    """Refuse what this trainer cannot run: input-space adversaries in head mode, or with DP-SGD."""
    if regularizer.adversary is not None and mode == "head":
        raise W2SBenchError(
            f'The regularizer "{regularizer.name}" perturbs input embeddings, but head mode trains only a linear head on frozen features.',
            "Fine-tune the backbone (--finetune lora or full), or use a regularizer made for head mode (for adversarial: --option adversarial.method=auto).",
        )
    if regularizer.adversary is not None and regularizer.privacy is not None:
        raise W2SBenchError(
            f'The regularizer "{regularizer.name}" asks for both DP-SGD and adversarial training, which this trainer cannot combine.',
            "Use one of them per regularizer.",
        )


def _set_trainable(classifier: Classifier, mode: str, config: TrainConfig) -> None:
    """Which parameters train: the head always; LoRA adapters in lora; everything (or the top k layers) in full."""
    for p in classifier.parameters():
        p.requires_grad_(mode == "full")
    if mode == "lora":
        apply_lora(classifier, config)
    if mode == "full" and config.trainable_layers:
        freeze_below(classifier, config.trainable_layers)
    for p in classifier.head.parameters():
        p.requires_grad_(True)
    if mode != "head" and config.gradient_checkpointing and hasattr(classifier.backbone, "gradient_checkpointing_enable"):
        classifier.backbone.gradient_checkpointing_enable()


def _forward_for_mode(
    classifier: Classifier, mode: str, config: TrainConfig, texts: Sequence[str], views: Sequence[Sequence[str]],
    features: Callable[[Sequence[str]], np.ndarray] | None, prefix: Any,
) -> tuple[nn.Module, ForwardFn, InputsFn | None]:
    """The trained module, its forward pass over row indices (logits, views' logits), and for the adversary the
    input vectors, attention mask and logits as a function of those vectors (None in head mode)."""
    device = classifier.device
    if mode == "head":
        if features is None:
            raise ValueError("head mode needs a feature function")
        x = torch.as_tensor(features(texts))
        view_x = [torch.as_tensor(features(v)) for v in views]

        def head_forward(mod: nn.Module, idx: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
            return mod(x[idx].to(device)), [mod(v[idx].to(device)) for v in view_x]

        return nn.Sequential(classifier.norm, classifier.head), head_forward, None
    if prefix is not None and mode == "full" and config.trainable_layers:
        # Partial fine-tuning on cached states of the frozen layers (w2sbench/training/prefix.py).
        top = TopLayers(classifier, config.trainable_layers)

        def cached_forward(mod: nn.Module, idx: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
            rows = idx.tolist()
            logits = prefix.logits(top, [texts[i] for i in rows])
            return logits, [prefix.logits(top, [v[i] for i in rows]) for v in views]

        def cached_inputs(mod: nn.Module, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, LogitsOf]:
            batch = prefix.batch([texts[i] for i in idx.tolist()])
            states = batch.pop("states")
            return states, batch["attention_mask"], lambda s: prefix.logits_of_batch(top, {**batch, "states": s})

        return classifier, cached_forward, cached_inputs

    def model_forward(mod: nn.Module, idx: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        batch = [texts[i] for i in idx.tolist()]
        logits = mod(**classifier.tokenize(batch))
        extra = [mod(**classifier.tokenize([v[i] for i in idx.tolist()])) for v in views]
        return logits, extra

    def embedding_inputs(mod: nn.Module, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, LogitsOf]:
        batch = classifier.tokenize([texts[i] for i in idx.tolist()])
        embeddings = classifier.embed(batch.pop("input_ids"))
        return embeddings, batch["attention_mask"], lambda e: mod(input_ids=None, inputs_embeds=e, **batch)

    return classifier, model_forward, embedding_inputs


def _data_loader(mode: str, texts: Sequence[str], config: TrainConfig, seed: int, generator: torch.Generator) -> Any:
    """Batches of row indices: shuffled in head mode; length-grouped otherwise (dynamic padding then wastes little)."""
    index_set = torch.utils.data.TensorDataset(torch.arange(len(texts)))
    if mode == "head":
        return torch.utils.data.DataLoader(index_set, batch_size=config.batch_size, shuffle=True, generator=generator)
    sampler = LengthGroupedBatches([len(t) for t in texts], config.batch_size, seed)
    return torch.utils.data.DataLoader(index_set, batch_sampler=sampler)


def _make_private(
    module: nn.Module, optimizer: Any, loader: Any, regularizer: Regularizer, config: TrainConfig, seed: int, rows: int,
) -> tuple[nn.Module, Any, Any, Any, float]:
    """DP-SGD through opacus (Abadi et al. 2016): Poisson sampling, per-sample clipping, noise calibrated to the
    target epsilon at delta (training/dp.py) over ``config.epochs``; the RDP accountant reports the epsilon spent."""
    from opacus import PrivacyEngine  # opacus is slow to import; only DP-SGD trainings need it

    assert regularizer.privacy is not None
    delta = dp_delta(regularizer.privacy.delta, rows)
    with warnings.catch_warnings():
        # secure_mode=False is deliberate (reproducible noise from a seeded generator); opacus warns anyway.
        warnings.simplefilter("ignore")
        engine = PrivacyEngine(accountant="rdp", secure_mode=False)
        module, optimizer, loader = engine.make_private_with_epsilon(
            module=module,
            optimizer=optimizer,
            data_loader=loader,
            target_epsilon=regularizer.privacy.target_epsilon,
            target_delta=delta,
            epochs=config.epochs,
            max_grad_norm=regularizer.privacy.max_grad_norm,
            noise_generator=torch.Generator().manual_seed(seed + 1),
        )
    if config.grad_accumulation != 1:
        raise W2SBenchError("DP-SGD cannot be combined with gradient accumulation here.", "Set grad accumulation to 1.")
    return module, optimizer, loader, engine, delta


def _scheduler(optimizer: Any, mode: str, config: TrainConfig, total: int) -> Any:
    """Linear warm-up then linear decay to 0 over ``total`` optimizer steps (none in head mode)."""
    if mode == "head":
        return None
    warmup = int(total * config.warmup_fraction)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / max(1, warmup)) * max(0.0, (total - s) / max(1, total - warmup)) if warmup else max(0.0, 1 - s / total)
    )


@dataclass
class _Loop:
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

    def epochs(self) -> tuple[int, float]:
        """Run every epoch; returns (optimizer steps, last loss)."""
        self.module.train()
        step, loss_value = 0, float("nan")
        autocast = _training_autocast(self.config, self.device, self.mode)
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
