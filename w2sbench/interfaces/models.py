"""The model objects plugins return: ``ModelSpec`` (where weights come from), ``ModelFamily`` (resolves
names to specs) and ``NamedPair`` (a named weak/strong combination)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["ModelSpec", "ModelFamily", "NamedPair"]


@dataclass(frozen=True)
class ModelSpec:
    """Where a model's weights come from, resolved from a user-facing name such as ``pythia-1b``."""

    name: str
    source: str  # hub repo id, or a local folder when ``local`` is true
    revision: str | None = None
    local: bool = False
    gguf_file: str | None = None  # a GGUF file inside ``source`` (dequantized on load)
    num_layers: int | None = None  # keep only the first k transformer layers (weaker variants)
    params: int | None = None  # approximate parameter count, for size ordering and plots
    family: str = ""
    architecture: Literal["encoder", "decoder", ""] = ""

    def cache_key(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "revision": self.revision,
            "gguf_file": self.gguf_file,
            "num_layers": self.num_layers,
        }


class ModelFamily(ABC):
    """Resolves model names of one family (``pythia-*``, ``hf:<org>/<name>``, ...) to ``ModelSpec``s."""

    name: str = ""
    description: str = ""

    @abstractmethod
    def resolve(self, name: str) -> ModelSpec | None:
        """The spec for ``name``, or None when this family does not know it."""

    def names(self) -> list[str]:
        """Names this family knows (for listings and did-you-mean); patterns may be shown as e.g. ``hf:<org>/<name>``."""
        return []

    def describe(self, name: str) -> str:
        """A one-line description of a name (size, notes) for ``w2sbench list models``."""
        spec = self.resolve(name)
        if spec is None or spec.params is None:
            return ""
        return f"{spec.params / 1e6:,.0f}M parameters"


@dataclass(frozen=True)
class NamedPair:
    """A named weak/strong combination, e.g. the offline default."""

    name: str
    weak: str
    strong: str
    description: str = ""
    # Fine-tune modes to use on a CPU when the user does not choose, as "WEAK:STRONG" (e.g. "head:full").
    cpu_finetune: str | None = None
    # Training settings for those CPU modes, per mode, e.g. {"full": {"trainable_layers": 2}}; user --train wins.
    cpu_train: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # Trust-property options for those CPU settings, per property, e.g. {"adversarial": {"radius": 0.01}}: values
    # that depend on the model as the CPU modes train it (the decoder pair's cached hidden states); user --option wins.
    cpu_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
