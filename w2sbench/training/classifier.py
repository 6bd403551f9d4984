"""A sequence classifier on any transformers backbone: mean-pooled last hidden state + a linear head.

One wrapper for encoders and decoders keeps every fine-tune mode and every trust property on the
same interface: ``predict_proba(texts)`` and ``features(texts)``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from typing import Any

import numpy as np
import torch
from torch import nn

from w2sbench.errors import W2SBenchError

__all__ = ["Classifier", "length_sorted_batches", "nonempty_texts", "transformer_layers"]


def length_sorted_batches(texts: Sequence[str], batch_size: int) -> list[list[int]]:
    """Index batches of similar length, so dynamic padding wastes little compute at inference."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


class Classifier(nn.Module):
    """Backbone + mean pooling + (parameter-free LayerNorm, Linear) head."""

    # "weak" (trained on split A) or "strong" (split B); set by the pipeline before a live evaluation
    role: str
    # a transformers model: its config and methods (get_input_embeddings, ...) are not nn.Module's
    backbone: Any

    def __init__(self, backbone: nn.Module, tokenizer: Any, num_labels: int, max_length: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.tokenizer = tokenizer
        self.max_length = max_length
        hidden = int(self.backbone.config.hidden_size)
        # Parameter-free normalisation makes one learning rate work for features of any scale.
        self.norm = nn.LayerNorm(hidden, elementwise_affine=False)
        self.head = nn.Linear(hidden, num_labels)
        params = inspect.signature(backbone.forward).parameters
        self._takes_token_types = "token_type_ids" in params
        self._takes_positions = "position_ids" in params

    @property
    def device(self) -> torch.device:
        return self.head.weight.device

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        enc = self.tokenizer(
            nonempty_texts(texts, self.tokenizer), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        batch = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}
        # Explicit position/token-type ids: opacus' per-sample gradients fail on BERT's implicit buffers.
        if self._takes_positions:
            length = batch["input_ids"].shape[1]
            batch["position_ids"] = torch.arange(length).unsqueeze(0).expand_as(batch["input_ids"]).contiguous()
        if self._takes_token_types:
            batch["token_type_ids"] = torch.zeros_like(batch["input_ids"])
        return {k: v.to(self.device) for k, v in batch.items()}

    def pooled(
        self, input_ids: torch.Tensor | None, attention_mask: torch.Tensor, *, inputs_embeds: torch.Tensor | None = None, **extra: torch.Tensor
    ) -> torch.Tensor:
        """Mean of the last hidden states over real tokens; from token ids, or from ``inputs_embeds``
        (the input embeddings, e.g. perturbed ones for adversarial training) when given."""
        inputs = {"input_ids": input_ids} if inputs_embeds is None else {"inputs_embeds": inputs_embeds}
        hidden = self.backbone(**inputs, attention_mask=attention_mask, **extra).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        """The backbone's input (word) embeddings of ``input_ids``, what ``inputs_embeds`` takes."""
        return self.backbone.get_input_embeddings()(input_ids)

    def classify(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(pooled.float()))

    def forward(
        self, input_ids: torch.Tensor | None, attention_mask: torch.Tensor, *, inputs_embeds: torch.Tensor | None = None, **extra: torch.Tensor
    ) -> torch.Tensor:
        return self.classify(self.pooled(input_ids, attention_mask, inputs_embeds=inputs_embeds, **extra))

    def _autocast(self) -> Any:
        if self.device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return nullcontext()

    @torch.no_grad()
    def _batched(self, texts: Sequence[str], fn: Callable[[dict[str, torch.Tensor]], torch.Tensor], batch_size: int | None) -> np.ndarray:
        """Run ``fn`` over length-sorted batches; on a GPU start large and halve on out-of-memory."""
        if batch_size is None:
            batch_size = 256 if self.device.type == "cuda" else 64
        was_training = self.training
        self.eval()
        out: list[np.ndarray] = [np.empty(0)] * len(texts)
        try:
            pending = length_sorted_batches(texts, batch_size)
            while pending:
                idx = pending.pop(0)
                try:
                    with self._autocast():
                        values = fn(self.tokenize([texts[i] for i in idx])).float().cpu().numpy()
                except torch.cuda.OutOfMemoryError:
                    if len(idx) == 1:
                        raise
                    torch.cuda.empty_cache()
                    half = len(idx) // 2
                    pending[:0] = [idx[:half], idx[half:]]
                    continue
                for row, i in enumerate(idx):
                    out[i] = values[row]
        finally:
            self.train(was_training)
        return np.stack(out) if texts else np.empty((0, self.head.out_features), dtype=np.float32)

    def features(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        """Mean-pooled backbone features (what the head sees), shape (n, hidden)."""
        if not texts:
            return np.empty((0, self.head.in_features), dtype=np.float32)
        return self._batched(texts, lambda b: self.pooled(**b), batch_size).astype(np.float32)

    def use_prefix(self, prefix: Any, top: nn.Module) -> None:
        """Answer ``predict_proba`` from cached frozen-layer states (partial fine-tuning, training/prefix.py):
        the same probabilities, but only the trained top layers run for texts seen before."""
        self._prefix = (prefix, top)

    def attach_language_model(self, build: Callable[[], Any]) -> None:
        """Say how to build this classifier's language model (the pipeline knows where the pretrained head is)."""
        self._language_model = build

    def language_model(self) -> Any | None:
        """The trained backbone under the pretrained causal-LM head (a transformers model on this classifier's
        device, for generation), or None for encoders, for checkpoints without an LM head, or when no builder
        was attached."""
        build = getattr(self, "_language_model", None)
        return build() if build is not None else None

    def predict_proba(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        """Class probabilities, shape (n, num_labels)."""
        if getattr(self, "_prefix", None) is not None:
            prefix, top = self._prefix
            return prefix.predict_proba(top, list(texts))
        return self._batched(texts, lambda b: torch.softmax(self(**b).float(), dim=-1), batch_size).astype(np.float64)

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """The parameters that training changed (head only, LoRA adapters + head, or everything)."""
        return {n: p.detach().cpu().contiguous() for n, p in self.named_parameters() if p.requires_grad}


def nonempty_texts(texts: Sequence[str], tokenizer: Any) -> list[str]:
    """``texts`` with each empty or whitespace-only one replaced by the tokenizer's end-of-text (else
    unknown) token, so every input reaches the model with at least one real token: decoder tokenizers
    add no special tokens, and a batch of empty texts would otherwise have length 0."""
    stand_in = tokenizer.eos_token or tokenizer.unk_token or tokenizer.pad_token or "."
    return [t if t.strip() else stand_in for t in texts]


def transformer_layers(backbone: nn.Module) -> nn.ModuleList:
    """The backbone's stack of transformer blocks (BERT, GPT-NeoX, Llama, GPT-2 and most others)."""
    for path in ("encoder.layer", "layers", "h", "transformer.h", "model.layers", "decoder.layers"):
        module: Any = backbone
        for part in path.split("."):
            module = getattr(module, part, None)
            if module is None:
                break
        if isinstance(module, nn.ModuleList):
            return module
    raise W2SBenchError(
        f"Cannot find the transformer layers of {type(backbone).__name__} to freeze.",
        "Use --train full.trainable_layers=0 (train everything) or --finetune lora for this architecture.",
    )
