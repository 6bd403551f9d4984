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
    """Train ``classifier`` in place. In ``head`` mode ``features`` maps texts to (cached) pooled features.
    With ``distributed`` every rank of a multi-process launch trains this model on its share of each batch.
    ``transfer_loss(logits, targets, weights, progress)`` replaces the cross-entropy (a strategy's loss; ``weights``
    (n,) are its row weights, default 1; progress is the fraction of optimizer steps done)."""
    if mode not in FINETUNE_MODES:
        raise W2SBenchError(f'Unknown fine-tune mode "{mode}".', f"Use one of: {', '.join(FINETUNE_MODES)}.")
    if len(texts) == 0:
        raise W2SBenchError("The training split is empty.", "Check the dataset and the split sizes (--option).")
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    device = classifier.device
    y = torch.as_tensor(np.asarray(targets, dtype=np.float32))
    finite.check_finite_targets(y, mode, config)
    row_weights = torch.as_tensor(np.ones(len(y)) if weights is None else np.asarray(weights), dtype=torch.float32)
    attrs = {k: torch.as_tensor(np.asarray(v)) for k, v in attributes.items()}
    views = regularizer.views(texts, seed)
    adversary = regularizer.adversary
    if adversary is not None and mode == "head":
        raise W2SBenchError(
            f'The regularizer "{regularizer.name}" perturbs input embeddings, but head mode trains only a linear head on frozen features.',
            "Fine-tune the backbone (--finetune lora or full), or use a regularizer made for head mode (for adversarial: --option adversarial.method=auto).",
        )
    if adversary is not None and regularizer.privacy is not None:
        raise W2SBenchError(
            f'The regularizer "{regularizer.name}" asks for both DP-SGD and adversarial training, which this trainer cannot combine.',
            "Use one of them per regularizer.",
        )
    # Per path: (input vectors, attention mask, logits as a function of those vectors), for the adversary.
    adversarial_inputs: Callable[[nn.Module, torch.Tensor], tuple[torch.Tensor, torch.Tensor, LogitsOf]] | None = None

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

    if mode == "head":
        if features is None:
            raise ValueError("head mode needs a feature function")
        x = torch.as_tensor(features(texts))
        view_x = [torch.as_tensor(features(v)) for v in views]
        module: nn.Module = nn.Sequential(classifier.norm, classifier.head)

        def forward(mod: nn.Module, idx: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
            return mod(x[idx].to(device)), [mod(v[idx].to(device)) for v in view_x]

    elif prefix is not None and mode == "full" and config.trainable_layers:
        # Partial fine-tuning on cached states of the frozen layers (w2sbench/training/prefix.py).
        module = classifier
        top = TopLayers(classifier, config.trainable_layers)

        def forward(mod: nn.Module, idx: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
            rows = idx.tolist()
            logits = prefix.logits(top, [texts[i] for i in rows])
            return logits, [prefix.logits(top, [v[i] for i in rows]) for v in views]

        def adversarial_inputs(mod: nn.Module, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, LogitsOf]:
            batch = prefix.batch([texts[i] for i in idx.tolist()])
            states = batch.pop("states")
            return states, batch["attention_mask"], lambda s: prefix.logits_of_batch(top, {**batch, "states": s})

    else:
        module = classifier

        def forward(mod: nn.Module, idx: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
            batch = [texts[i] for i in idx.tolist()]
            logits = mod(**classifier.tokenize(batch))
            extra = [mod(**classifier.tokenize([v[i] for i in idx.tolist()])) for v in views]
            return logits, extra

        def adversarial_inputs(mod: nn.Module, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, LogitsOf]:
            batch = classifier.tokenize([texts[i] for i in idx.tolist()])
            embeddings = classifier.embed(batch.pop("input_ids"))
            return embeddings, batch["attention_mask"], lambda e: mod(input_ids=None, inputs_embeds=e, **batch)

    if regularizer.privacy is not None and mode != "head":
        _freeze_unused(module, forward, len(texts))
    params = [p for p in module.parameters() if p.requires_grad]
    fused = device.type == "cuda"
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay, fused=fused or None)
    index_set = torch.utils.data.TensorDataset(torch.arange(len(texts)))
    if mode == "head":
        loader = torch.utils.data.DataLoader(index_set, batch_size=config.batch_size, shuffle=True, generator=generator)
    else:
        # Similar lengths in a batch: dynamic padding then wastes little compute.
        sampler = LengthGroupedBatches([len(t) for t in texts], config.batch_size, seed)
        loader = torch.utils.data.DataLoader(index_set, batch_sampler=sampler)

    engine = None
    report_delta = None
    if regularizer.privacy is not None:
        from opacus import PrivacyEngine

        report_delta = dp_delta(regularizer.privacy.delta, len(texts))
        with warnings.catch_warnings():
            # secure_mode=False is deliberate (reproducible noise from a seeded generator); opacus warns anyway.
            warnings.simplefilter("ignore")
            engine = PrivacyEngine(accountant="rdp", secure_mode=False)
            module, optimizer, loader = engine.make_private_with_epsilon(
                module=module,
                optimizer=optimizer,
                data_loader=loader,
                target_epsilon=regularizer.privacy.target_epsilon,
                target_delta=report_delta,
                epochs=config.epochs,
                max_grad_norm=regularizer.privacy.max_grad_norm,
                noise_generator=torch.Generator().manual_seed(seed + 1),
            )
        if config.grad_accumulation != 1:
            raise W2SBenchError("DP-SGD cannot be combined with gradient accumulation here.", "Set grad accumulation to 1.")

    if distributed is not None:  # DDP/FSDP through accelerate; each rank runs its slice of every batch
        module, optimizer, forward = distributed.prepare(module, optimizer, forward, len(texts))
    if config.compile and engine is None:
        module = torch.compile(module)
    steps_per_epoch = max(1, math.ceil(len(loader) / config.grad_accumulation))
    total = steps_per_epoch * config.epochs
    warmup = int(total * config.warmup_fraction)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / max(1, warmup)) * max(0.0, (total - s) / max(1, total - warmup)) if warmup else max(0.0, 1 - s / total)
    ) if mode != "head" else None

    module.train()
    step = 0
    loss_value = float("nan")
    autocast = _training_autocast(config, device, mode)
    for epoch in range(config.epochs):
        if isinstance(getattr(loader, "batch_sampler", None), LengthGroupedBatches):
            loader.batch_sampler.epoch = epoch
        optimizer.zero_grad(set_to_none=True)
        for micro, (idx,) in enumerate(loader):
            if len(idx) == 0:  # Poisson sampling under DP-SGD can draw an empty batch: still a step (noise, accounting)
                step = empty_private_step(optimizer, scheduler, progress, step, total) if engine is not None else step
                continue
            if autocast is not None:
                with autocast:
                    logits, view_logits = forward(module, idx)
            else:
                logits, view_logits = forward(module, idx)
            batch_targets = y[idx].to(device)
            if transfer_loss is None:
                loss = soft_cross_entropy(logits, batch_targets)
            else:
                loss = transfer_loss(logits.float(), batch_targets, row_weights[idx].to(device), step / total)
            penalty = regularizer.penalty(
                PenaltyContext(
                    logits=logits.float(),
                    targets=batch_targets,
                    attributes={k: v[idx].to(device) for k, v in attrs.items()},
                    view_logits=[v.float() for v in view_logits],
                )
            )
            if penalty is not None:
                loss = loss + penalty
            if adversary is not None and adversarial_inputs is not None:
                # per-example perturbations: under a multi-process launch each rank handles its slice of the batch
                rows, share = distributed.local_rows(idx) if distributed is not None else (idx, 1.0)
                with autocast if autocast is not None else contextlib.nullcontext():
                    inputs, mask, logits_of = adversarial_inputs(module, rows)
                    loss = loss + share * adversarial_loss(logits_of, inputs, mask, y[rows].to(device), adversary)
            with warnings.catch_warnings():
                # opacus' hooks on a layer whose input needs no gradient (frozen layers below it): expected here
                warnings.filterwarnings("ignore", message="Full backward hook is firing")
                if distributed is not None:
                    distributed.backward(loss / config.grad_accumulation)
                else:
                    (loss / config.grad_accumulation).backward()
            loss_value = finite.check_finite_loss(float(loss.detach()), mode, config, epoch, step, penalty is not None)
            if (micro + 1) % config.grad_accumulation == 0 or micro + 1 == len(loader):
                if engine is None:
                    finite.check_finite_gradients(params, mode, config, epoch, step)
                optimizer.step()
                if scheduler is not None:
                    scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                fault_point("train-step")
                if progress is not None:
                    progress(step, total)
    if engine is not None and hasattr(module, "_close"):
        module._close()  # remove opacus hooks so inference runs at normal speed
    classifier.eval()
    finite.check_finite_parameters(module, mode, config)
    epsilon = float(engine.get_epsilon(report_delta)) if engine is not None else None
    return TrainReport(time.perf_counter() - start, step, loss_value, epsilon, report_delta)
