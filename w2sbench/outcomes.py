"""Typed run outcomes, from the pipeline to results.json: what one seed of a trust property produced
(``SeedOutcome``) and all seeds of it (``PropertyOutcome``). results.py turns them into the documented
JSON (docs/results.md) only when it writes results.json and the predictions sidecar.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from w2sbench.interfaces import PropertyData

__all__ = ["TrainedModel", "SeedOutcome", "PropertyOutcome"]

Scores = dict[str, float | None]  # score name -> value; None: undefined (the reason is in the property's notes)


class TrainedModel(NamedTuple):
    """A cell's trained model: its train stage's cache key, the cached stage folder, and the role that
    trained it ("weak" on split A, "strong" on split B)."""

    key: dict[str, Any]
    path: Path
    role: str


@dataclass
class SeedOutcome:
    """Every cell of one trust property and seed (cells: the baselines, teacher references, strategies)."""

    scores: dict[str, Scores]  # cell -> its scores: task metrics, the property's trust metrics, live scores
    predictions: dict[str, dict[str, np.ndarray]]  # cell -> test set -> (rows, num_labels) class probabilities
    train: dict[str, dict[str, Any]]  # cell -> its train stage's report (seconds, steps, final_loss, epsilon, delta)
    models: dict[str, TrainedModel] = field(default_factory=dict)  # cell -> trained model (teacher references: none)
    # cell -> live score -> its standard error over the evaluated examples (LiveScores.stderr), where given
    live_stderr: dict[str, Scores] = field(default_factory=dict)


@dataclass
class PropertyOutcome:
    """All seeds of one trust property, in the run's seed order, with the property's data."""

    data: PropertyData
    seeds: dict[int, SeedOutcome]

    @property
    def scores(self) -> dict[int, dict[str, Scores]]:
        """seed -> cell -> scores."""
        return {seed: outcome.scores for seed, outcome in self.seeds.items()}

    @property
    def predictions(self) -> dict[int, dict[str, dict[str, np.ndarray]]]:
        """seed -> cell -> test set -> class probabilities."""
        return {seed: outcome.predictions for seed, outcome in self.seeds.items()}

    @property
    def train(self) -> dict[int, dict[str, dict[str, Any]]]:
        """seed -> cell -> train stage report."""
        return {seed: outcome.train for seed, outcome in self.seeds.items()}

    @property
    def models(self) -> dict[int, dict[str, TrainedModel]]:
        """seed -> cell -> trained model."""
        return {seed: outcome.models for seed, outcome in self.seeds.items()}
