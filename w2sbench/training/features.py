"""Frozen-backbone features, computed once per (model, max length, text) and kept on disk.

Each call stores only the texts it had not seen, as one safetensors chunk written atomically, so an
interrupted extraction loses at most the chunk in progress and nothing is ever unpickled.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from w2sbench.files import atomic_write_bytes

__all__ = ["FeatureStore"]

CHUNK = 512  # texts per chunk file: bounds the work lost to an interruption


def _text_key(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


class FeatureStore:
    """Pooled features of one frozen backbone, keyed by text."""

    def __init__(self, root: Path, extract: Callable[[Sequence[str]], np.ndarray]) -> None:
        self.root = Path(root)
        self._extract = extract
        self._rows: dict[str, np.ndarray] = {}
        self._loaded = False
        self.computed = 0

    def _load(self) -> None:
        from safetensors import safe_open
        from safetensors.numpy import load_file

        if self.root.is_dir():
            for chunk in sorted(self.root.glob("chunk-*.safetensors")):
                with safe_open(str(chunk), framework="numpy") as f:
                    keys = json.loads((f.metadata() or {}).get("texts", "[]"))
                values = load_file(str(chunk))["features"]
                for key, row in zip(keys, values, strict=True):
                    self._rows[key] = row
        self._loaded = True

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        if not self._loaded:
            self._load()
        keys = [_text_key(t) for t in texts]
        missing: dict[str, str] = {}
        for key, text in zip(keys, texts, strict=True):
            if key not in self._rows and key not in missing:
                missing[key] = text
        items = list(missing.items())
        for start in range(0, len(items), CHUNK):
            part = items[start : start + CHUNK]
            values = np.ascontiguousarray(self._extract([t for _, t in part]), dtype=np.float32)
            self._save([k for k, _ in part], values)
            for (key, _), row in zip(part, values, strict=True):
                self._rows[key] = row
            self.computed += len(part)
        if not keys:
            return np.empty((0, 0), dtype=np.float32)
        return np.stack([self._rows[k] for k in keys])

    def _save(self, keys: list[str], values: np.ndarray) -> None:
        from safetensors.numpy import save

        name = hashlib.sha1("".join(keys).encode()).hexdigest()[:16]
        blob = save({"features": values}, metadata={"texts": json.dumps(keys)})
        atomic_write_bytes(self.root / f"chunk-{name}.safetensors", blob)
