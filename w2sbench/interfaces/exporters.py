"""An exporter (``Exporter``): writes run results in some format."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["Exporter"]


class Exporter(ABC):
    """Writes one or more run results in some format."""

    name: str = ""
    description: str = ""

    @abstractmethod
    def export(self, results: Sequence[Mapping[str, Any]], destination: Path, run_dirs: Sequence[Path]) -> Path:
        """Write ``results`` (parsed results.json files) to ``destination``; return the written path."""
