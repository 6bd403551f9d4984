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

import math
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any, cast

import numpy as np
import torch
from torch import nn
from torch.nn.modules.dropout import _DropoutNd  # the base of every torch dropout module

import w2sbench.training.finite_checks as finite
from w2sbench.errors import W2SBenchError
from w2sbench.interfaces import Regularizer
from w2sbench.training.adversarial import LogitsOf
from w2sbench.training.classifier import Classifier, transformer_layers
from w2sbench.training.config import FINETUNE_MODES, ProgressFn, TrainConfig, TrainReport, TransferLossFn
from w2sbench.training.distributed import CollectiveTraining
from w2sbench.training.dp import dp_delta, dp_train_config, freeze_for_dp
from w2sbench.training.loop import ForwardFn, InputsFn, LengthGroupedBatches, TrainingLoop
from w2sbench.training.precision import resolve_precision, training_autocast
from w2sbench.training.prefix import TopLayers

__all__ = ["train_classifier", "apply_lora", "estimate_training_memory", "freeze_below", "without_dropout"]

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
    top_layers = layers[len(layers) - top :]
    trained = {id(m) for layer in top_layers for m in layer.modules()}
    for layer in top_layers:
        for p in layer.parameters():
            p.requires_grad_(True)
    # not the trained layers' own parameter-free modules (their dropout follows the training's setting)
    frozen = [m for m in classifier.backbone.modules()
              if id(m) not in trained and not any(p.requires_grad for p in m.parameters(recurse=True))]
    for m in frozen:
        # keep frozen blocks deterministic (no dropout) even when the classifier is put in train mode
        m.train = (lambda mode=True, _m=m: nn.Module.train(_m, False))  # type: ignore[method-assign,misc]
        m.eval()


def without_dropout(module: nn.Module) -> None:
    """Switch off every dropout in ``module``, in place and for good (pass a fresh copy: the trainer trains a
    deep copy of the backbone): every torch dropout module (``nn.Dropout``, ``Dropout1d/2d/3d``,
    ``AlphaDropout``), and every float attribute whose name holds "dropout" or "pdrop" on the modules and on
    their Hugging Face ``config`` (attention blocks keep the probability they pass to
    ``scaled_dot_product_attention`` as such a float: BERT's ``dropout_prob``, Llama's ``attention_dropout``;
    OPT and BART keep ``dropout`` and ``activation_dropout``; Falcon reads ``config.hidden_dropout`` as it
    runs). Train mode itself stays on, since opacus' per-sample-gradient hooks record activations only in train
    mode. Source: openai/weak-to-strong trains without dropout (weak_to_strong/train.py,
    ``train_with_dropout=False``)."""
    for m in module.modules():
        if isinstance(m, _DropoutNd):
            m.p = 0.0
        for owner in (m, getattr(m, "config", None)):
            if owner is None:
                continue
            for name, value in list(vars(owner).items()):
                if isinstance(value, float) and ("dropout" in name or "pdrop" in name):
                    setattr(owner, name, 0.0)


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
    """The training step's precision context (training/precision.py ``training_autocast``), or None for fp32."""
    return training_autocast(device, resolve_precision(config.precision, device, mode))


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
    if regularizer.privacy is not None:
        config = dp_train_config(config, regularizer.privacy, mode)
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
    if not config.dropout:
        without_dropout(module)
    if regularizer.privacy is not None and mode != "head":
        freeze_for_dp(module, classifier.head, regularizer.privacy, mode)
        _freeze_unused(module, forward, len(texts))
    params: list[torch.Tensor] = [p for p in module.parameters() if p.requires_grad]
    # torch's fused AdamW kernel: one pass over the parameters instead of one small op each (7.5x per step on a CPU)
    fused = device.type in ("cuda", "cpu") or None
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay, fused=fused)
    loader = _data_loader(mode, texts, config, seed, generator)
    engine, report_delta = None, None
    if regularizer.privacy is not None:
        module, optimizer, loader, engine, report_delta = _make_private(module, optimizer, loader, regularizer, config, seed, len(texts))
    if distributed is not None:  # DDP/FSDP through accelerate; each rank runs its slice of every batch
        module, optimizer, forward = distributed.prepare(module, optimizer, forward, len(texts))
    if config.compile and engine is None:
        module = cast(nn.Module, torch.compile(module))
    total = max(1, math.ceil(len(loader) / config.grad_accumulation)) * config.epochs
    run = TrainingLoop(
        module, optimizer, loader, _scheduler(optimizer, mode, config, total), engine, forward, adversarial_inputs,
        regularizer, transfer_loss, y, row_weights, attrs, params, mode, config, device, total, progress, distributed,
        _training_autocast(config, device, mode),
    )
    step, loss_value = run.epochs()
    if engine is not None and hasattr(module, "_close"):
        cast(Any, module)._close()  # remove opacus hooks so inference runs at normal speed
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
