"""The data objects: ``Examples`` (labelled texts), ``PropertyData`` (a trust property's training pool and
test sets) and ``DataContext`` (where data comes from)."""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Sequence
from dataclasses import InitVar, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Examples", "PropertyData", "DataContext"]


@dataclass
class Examples:
    """Labelled texts with optional per-example attributes (e.g. the sensitive attribute for fairness).

    A value: build a new one (``subset``, the constructor) rather than editing one in place; the core
    hashes each object once (``fingerprint``) into the cache keys of every stage that reads it."""

    ids: list[str]
    texts: list[str]
    labels: np.ndarray
    attributes: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, dtype=np.int64)
        n = len(self.texts)
        if len(self.ids) != n or len(self.labels) != n:
            raise ValueError(f"Examples: {len(self.ids)} ids, {n} texts, {len(self.labels)} labels")
        for key, values in self.attributes.items():
            if len(values) != n:
                raise ValueError(f"Examples: attribute {key!r} has {len(values)} values for {n} texts")

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, index: Sequence[int] | np.ndarray) -> Examples:
        idx = np.asarray(index, dtype=np.int64)
        return Examples(
            ids=[self.ids[i] for i in idx],
            texts=[self.texts[i] for i in idx],
            labels=self.labels[idx],
            attributes={k: np.asarray(v)[idx] for k, v in self.attributes.items()},
        )

    def fingerprint(self) -> str:
        """A hash of everything in these examples (sha256 hex digest); part of every cache key that depends on
        them. Computed once per object: Examples are values, never edited in place (``subset`` and the loaders
        build new ones), and a run asks for a test set's fingerprint in every one of its prediction stages."""
        memo: str | None = self.__dict__.get("_fingerprint")
        if memo is None:
            memo = self.__dict__["_fingerprint"] = self._hash()
        return memo

    def _hash(self) -> str:
        h = hashlib.sha256()
        h.update(json.dumps([self.ids, self.texts], ensure_ascii=False).encode())
        h.update(self.labels.tobytes())
        for key in sorted(self.attributes):
            h.update(key.encode())
            h.update(json.dumps(np.asarray(self.attributes[key]).tolist()).encode())
        return h.hexdigest()


@dataclass
class PropertyData:
    """A trust property's data: a training pool (split by the core into A, B, validation) and test sets."""

    train: Examples
    tests: dict[str, Examples]
    main_test: str  # the test set on which the task metric (accuracy, AUROC) is reported
    num_labels: int = 2
    label_names: tuple[str, ...] = ("0", "1")
    sources: dict[str, str] = field(default_factory=dict)  # file or dataset -> sha256 / revision
    # Auxiliary data beyond the examples: what the property's own ``evaluate_model`` needs (e.g. extraction
    # prompts) and its data-hygiene counts under "hygiene" (recorded in results.json); never predicted on.
    auxiliary: dict[str, Any] = field(default_factory=dict)
    # The deprecated name of ``auxiliary`` (one release): ``PropertyData(..., resources={...})`` still works.
    resources: InitVar[dict[str, Any] | None] = None

    def __post_init__(self, resources: dict[str, Any] | None) -> None:
        if resources is not None:
            warnings.warn("PropertyData(resources=...) is renamed auxiliary=...; the old name works for one more release.",
                          DeprecationWarning, stacklevel=3)
            self.auxiliary = {**resources, **self.auxiliary}


def _deprecated_resources(self: PropertyData) -> dict[str, Any]:
    """``PropertyData.resources``: the deprecated name of ``auxiliary`` (one release), with a DeprecationWarning."""
    warnings.warn("PropertyData.resources is renamed auxiliary; the old name works for one more release.",
                  DeprecationWarning, stacklevel=2)
    return self.auxiliary


# Set after the dataclass is built, so that the constructor's ``resources`` keyword keeps its default of None.
setattr(PropertyData, "resources", property(_deprecated_resources))  # noqa: B010 - after the dataclass is built


@dataclass(frozen=True)
class DataContext:
    """Where data comes from: a local mirror folder (``--data-dir``) or, when None, the upstream source."""

    data_dir: Path | None
    cache_dir: Path
