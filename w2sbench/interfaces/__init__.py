"""The objects plugins hand to the core and receive from it, one module per concept: models (ModelSpec,
ModelFamily, NamedPair), data (Examples, PropertyData, DataContext), regularizers (PenaltyContext,
PrivacySpec, EmbeddingAdversary, Regularizer, NoRegularizer), properties (MetricInfo, TrustProperty),
lm_eval (LmEvalTask), strategies (Teacher, TransferLoss, Strategy, reference_cells, with_regularization) and
exporters (Exporter).

Import them from here (or from ``w2sbench.plugin_api``); the modules are where each is defined. Keep them
small: a plugin author should be able to read them in five minutes.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from w2sbench.interfaces.data import DataContext, Examples, PropertyData
from w2sbench.interfaces.exporters import Exporter
from w2sbench.interfaces.lm_eval import LmEvalTask
from w2sbench.interfaces.models import ModelFamily, ModelSpec, NamedPair
from w2sbench.interfaces.properties import SHARE, LiveScores, MetricInfo, TrustProperty
from w2sbench.interfaces.regularizers import EmbeddingAdversary, NoRegularizer, PenaltyContext, PrivacySpec, Regularizer
from w2sbench.interfaces.strategies import Strategy, Teacher, TransferLoss, reference_cells, with_regularization

__all__ = [
    "ModelSpec",
    "ModelFamily",
    "NamedPair",
    "Examples",
    "PropertyData",
    "DataContext",
    "MetricInfo",
    "SHARE",
    "LiveScores",
    "PenaltyContext",
    "PrivacySpec",
    "EmbeddingAdversary",
    "Regularizer",
    "NoRegularizer",
    "TrustProperty",
    "LmEvalTask",
    "Strategy",
    "Teacher",
    "TransferLoss",
    "reference_cells",
    "with_regularization",
    "Exporter",
]


PredictFn = Callable[[Sequence[str]], np.ndarray]


def __getattr__(name: str) -> Any:
    """``TrustMetric``: the deprecated name of ``TrustProperty`` (one release), with a DeprecationWarning."""
    if name == "TrustMetric":
        warnings.warn("w2sbench.interfaces.TrustMetric is renamed TrustProperty; the old name works for one more release.",
                      DeprecationWarning, stacklevel=2)
        return TrustProperty
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
