"""Partial fine-tuning without recomputing the frozen part: the outputs of the frozen bottom layers are
computed once per text and reused by every training epoch, every model trained on the same texts
(the ceilings and every strategy's strong model share split B) and every evaluation.

``TopLayers`` is a view of a classifier that runs only its backbone's top k layers and its own head
on such cached states; it shares those modules with the classifier, so training the view trains the
classifier. The cache itself only holds the frozen bottom (any classifier on the same base weights
can compute it): logits always come from the head of the classifier the view was made from.
"""

from __future__ import annotations

import copy
from collections import ChainMap, OrderedDict
from collections.abc import Iterator, MutableMapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from w2sbench.training.classifier import (
    Classifier,
    length_sorted_batches,
    nonempty_texts,
    transformer_layers,
)
from w2sbench.training.precision import autocast

__all__ = ["PrefixCache", "TopLayers", "supports_prefix_cache", "bottom_states", "BoundedStates", "equal_length_batches"]

# Perturbed texts' states kept for reuse across the models attacked with one frozen bottom (every strong cell
# and seed shares it): about 20 KB per SST-2 sentence in float16, so 1 GiB holds ~50,000 of them.
PERTURBED_STATES_BYTES = 1 << 30


def _layer_path(backbone: nn.Module) -> tuple[nn.Module, str] | None:
    """(parent module, attribute name) of the layer list."""
    for path in ("encoder.layer", "layers", "h"):
        parent: Any = backbone
        parts = path.split(".")
        for part in parts[:-1]:
            parent = getattr(parent, part, None)
        if parent is not None and isinstance(getattr(parent, parts[-1], None), nn.ModuleList):
            return parent, parts[-1]
    return None


def supports_prefix_cache(classifier: Classifier) -> bool:
    """BERT-style encoders (an ``embeddings`` block) and decoders that accept ``inputs_embeds``."""
    return _layer_path(classifier.backbone) is not None and hasattr(classifier.backbone, "get_input_embeddings")


class _StopForward(Exception):
    """Raised by a forward pre-hook once the states entering the first trained layer are known."""


def bottom_states(backbone: nn.Module, bottom: int, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The hidden states entering layer ``bottom`` (= ``hidden_states[bottom]`` of a full forward pass),
    shape (batch, tokens, hidden); the layers from ``bottom`` up never run."""
    layers = transformer_layers(backbone)
    if bottom >= len(layers):
        return backbone(**batch, output_hidden_states=True).hidden_states[bottom]
    captured: list[torch.Tensor] = []

    def stop(_module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        captured.append(args[0] if args else kwargs["hidden_states"])
        raise _StopForward

    handle = layers[bottom].register_forward_pre_hook(stop, with_kwargs=True)
    try:
        backbone(**batch)
    except _StopForward:
        pass
    finally:
        handle.remove()
    return captured[0]


class _CachedStates(nn.Module):
    """Stands in for a BERT-style embeddings block: returns the states set for the current batch."""

    def __init__(self) -> None:
        super().__init__()
        self.current: torch.Tensor | None = None

    def forward(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        assert self.current is not None
        return self.current


class TopLayers(nn.Module):
    """A classifier's top k backbone layers (shared, not copied) applied to cached states of the layer
    below, and its head (``classify``)."""

    def __init__(self, classifier: Classifier, top: int) -> None:
        super().__init__()
        backbone = classifier.backbone
        self.classify = classifier.classify  # this classifier's head, never the cache's probe
        self.num_labels = classifier.head.out_features
        found = _layer_path(backbone)
        assert found is not None
        view = copy.copy(backbone)
        view._modules = dict(backbone._modules)  # our own module table; the modules themselves are shared
        parent, name = found
        if parent is backbone:
            parent = view
        else:
            parent_view = copy.copy(parent)
            parent_view._modules = dict(parent._modules)
            for attr, module in backbone._modules.items():
                if module is parent:
                    view._modules[attr] = parent_view
            parent = parent_view
        layers = getattr(found[0], name)
        parent._modules[name] = nn.ModuleList(list(layers)[len(layers) - top :])
        self.bert_style = hasattr(backbone, "embeddings") and hasattr(backbone.embeddings, "word_embeddings")
        if self.bert_style:
            self.cached = _CachedStates()
            view._modules["embeddings"] = self.cached
        self.view = view

    def forward(self, states: torch.Tensor, attention_mask: torch.Tensor, **extra: torch.Tensor) -> torch.Tensor:
        if self.bert_style:
            self.cached.current = states
            dummy = torch.zeros(states.shape[:2], dtype=torch.long, device=states.device)
            out = self.view(input_ids=dummy, attention_mask=attention_mask, **extra)
            self.cached.current = None
        else:
            out = self.view(inputs_embeds=states, attention_mask=attention_mask, **extra)
        return out.last_hidden_state


class BoundedStates(MutableMapping[str, np.ndarray]):
    """A least-recently-used mapping text -> states that holds at most ``max_bytes`` of arrays."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._items: OrderedDict[str, np.ndarray] = OrderedDict()

    def __getitem__(self, text: str) -> np.ndarray:
        value = self._items[text]
        self._items.move_to_end(text)
        return value

    def __setitem__(self, text: str, value: np.ndarray) -> None:
        if text in self._items:
            self.bytes -= self._items.pop(text).nbytes
        self._items[text] = value
        self.bytes += value.nbytes
        while self.bytes > self.max_bytes and len(self._items) > 1:
            self.bytes -= self._items.popitem(last=False)[1].nbytes

    def __delitem__(self, text: str) -> None:
        self.bytes -= self._items.pop(text).nbytes

    def __contains__(self, text: object) -> bool:
        return text in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)


def equal_length_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Index batches, at most ``batch_size`` each, of texts of one token length (``lengths[i]``), so no batch is
    padded: a text's frozen-layer states then do not depend on the other texts of its batch. With padded
    batches they did, in bf16's last bits, and which texts a process computes together depends on what it
    computed before (two worker processes: on timing), so two runs of one configuration differed slightly
    (docs/design.md, "Determinism")."""
    groups: dict[int, list[int]] = {}
    for i, length in enumerate(lengths):
        groups.setdefault(length, []).append(i)
    return [group[j : j + batch_size] for _, group in sorted(groups.items()) for j in range(0, len(group), batch_size)]


class PrefixCache:
    """Per-text outputs of a frozen backbone's bottom layers (float16 in memory), computed once."""

    def __init__(self, classifier: Classifier, top: int, precision: str = "fp32", weights: str = "fp32") -> None:
        self.classifier = classifier
        self.top = top
        self.bottom = len(transformer_layers(classifier.backbone)) - top
        self.precision = precision  # "bf16" or "fp32" (resolved, training/precision.py)
        # "bf16": inference only (training/precision.py, inference_weights): the frozen layers and the top layers
        # run on bfloat16 copies of their weights, no autocast; the states and logits come back as float32
        self.weights = weights
        self._backbone16: nn.Module | None = None
        self._top16: tuple[int, tuple[int, ...], TopLayers] | None = None
        self._states: dict[str, np.ndarray] = {}
        self._perturbed = BoundedStates(PERTURBED_STATES_BYTES)  # shared by every overlay()
        self.computed = 0
        self.tokens = 0  # real (non-padding) tokens run through the frozen layers

    @torch.no_grad()
    def _compute(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """Store and return the states of ``texts`` (returned too: a bounded store may evict some at once)."""
        computed: dict[str, np.ndarray] = {}
        backbone = self.classifier.backbone if self.weights != "bf16" else self._bf16_backbone()
        was_training = backbone.training
        backbone.eval()
        try:
            for idx in equal_length_batches(self.token_lengths(texts), 64):
                batch = self.classifier.tokenize([texts[i] for i in idx])
                with autocast(self.classifier.device, self.precision if self.weights != "bf16" else "fp32"):
                    states = bottom_states(backbone, self.bottom, batch)
                hidden = states.float().cpu().numpy().astype(np.float16)
                mask = batch["attention_mask"].cpu().numpy().astype(bool)
                for row, i in enumerate(idx):
                    self._states[texts[i]] = computed[texts[i]] = hidden[row][mask[row]]
                self.computed += len(idx)
                self.tokens += int(mask.sum())
        finally:
            backbone.train(was_training)
        return computed

    def token_lengths(self, texts: Sequence[str]) -> list[int]:
        """Tokens per text as the frozen layers see it (special tokens included, truncated at max_length)."""
        classifier = self.classifier
        ids = classifier.tokenizer(nonempty_texts(texts, classifier.tokenizer), truncation=True,
                                   max_length=classifier.max_length)["input_ids"]
        return [len(row) for row in ids]

    def _bf16_backbone(self) -> nn.Module:
        """A bfloat16 copy of the frozen backbone (made once; the classifier's own stays float32)."""
        if self._backbone16 is None:
            self._backbone16 = copy.deepcopy(self.classifier.backbone).to(torch.bfloat16)
        return self._backbone16

    def _bf16_top(self, top: TopLayers) -> TopLayers:
        """A bfloat16 copy of ``top``'s layers (its head stays the float32 original), remade when ``top`` or its
        weights change (tensor versions count in-place updates)."""
        versions = tuple(p._version for p in top.parameters())
        if self._top16 is None or self._top16[:2] != (id(top), versions):
            owner = getattr(top.classify, "__self__", None)
            memo = {id(owner): owner} if owner is not None else {}  # share the head: copy only the layers
            self._top16 = (id(top), versions, copy.deepcopy(top, memo).to(torch.bfloat16))
        return self._top16[2]

    def overlay(self) -> PrefixCache:
        """A cache that reads this one's states and keeps the states it computes in a bounded, least-recently-used
        store shared by every overlay of this cache: live attacks query thousands of perturbed texts per model,
        which must not stay in memory for the whole run, and the models attacked after it (every strong cell and
        seed runs on the same frozen bottom) query many of the same texts (DeepWordBug's word-deletion ranking,
        for one, is the same for every model) and read them instead of recomputing."""
        child = copy.copy(self)
        child._states = ChainMap(self._perturbed, self._states)  # type: ignore[assignment]
        return child

    def batch(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """Padded cached states, attention mask and explicit position/token-type ids for ``texts``."""
        # read the stored rows before computing the missing ones: storing those may evict stored rows of this very
        # batch from the bounded store of an overlay
        found = {t: self._states[t] for t in dict.fromkeys(texts) if t in self._states}
        missing = [t for t in dict.fromkeys(texts) if t not in found]
        if missing:
            found.update(self._compute(missing))
        rows = [found[t] for t in texts]
        width = max(len(r) for r in rows)
        hidden = rows[0].shape[1]
        states = np.zeros((len(rows), width, hidden), dtype=np.float32)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for i, r in enumerate(rows):
            states[i, : len(r)] = r
            mask[i, : len(r)] = 1
        device = self.classifier.device
        out = {"states": torch.as_tensor(states, device=device), "attention_mask": torch.as_tensor(mask, device=device)}
        if self.classifier._takes_positions:
            out["position_ids"] = torch.arange(width, device=device).unsqueeze(0).expand(len(rows), width).contiguous()
        if self.classifier._takes_token_types:
            out["token_type_ids"] = torch.zeros((len(rows), width), dtype=torch.long, device=device)
        return out

    def logits(self, top: TopLayers, texts: Sequence[str]) -> torch.Tensor:
        return self.logits_of_batch(top, self.batch(texts))

    def logits_of_batch(self, top: TopLayers, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Logits from a ``batch()`` whose ``states`` may have been changed (adversarial training perturbs them)."""
        hidden = top(**batch)
        if hidden.dtype != torch.float32:  # bf16 weights (inference): pool and classify in float32
            hidden = hidden.float()
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return top.classify(pooled)

    @torch.no_grad()
    def predict_proba(self, top: TopLayers, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        was_training = top.training
        top.eval()
        out = np.zeros((len(texts), top.num_labels))
        try:
            if self.weights == "bf16":
                return self._predict_bf16(top, texts, batch_size, out)
            for idx in length_sorted_batches(texts, batch_size):
                with autocast(self.classifier.device, self.precision):
                    logits = self.logits(top, [texts[i] for i in idx])
                out[idx] = torch.softmax(logits.float(), -1).cpu().numpy()
        finally:
            top.train(was_training)
        return out

    def _predict_bf16(self, top: TopLayers, texts: Sequence[str], batch_size: int, out: np.ndarray) -> np.ndarray:
        """``predict_proba`` with the top layers' weights in bfloat16 (``weights="bf16"``)."""
        top16 = self._bf16_top(top)
        top16.eval()
        for idx in length_sorted_batches(texts, batch_size):
            batch = self.batch([texts[i] for i in idx])
            batch["states"] = batch["states"].to(torch.bfloat16)
            out[idx] = torch.softmax(self.logits_of_batch(top16, batch).float(), -1).cpu().numpy()
        return out
