"""Everything a plugin needs from w2sbench, in one import: ``from w2sbench.plugin_api import ...``.

The objects plugins receive and return (the w2sbench/interfaces/ package), the hook marker, the error type, and the
helpers a trust property legitimately needs (dataset files, the core's own split, atomic writes, option
ranges, the built-in transfer losses to compose). CONTRIBUTING.md documents each; nothing else in the core
is promised to stay where it is.
"""

from __future__ import annotations

from w2sbench.data import dataset_file, drop_empty_texts, file_sha256, file_state
from w2sbench.design import split_pool
from w2sbench.errors import W2SBenchError, did_you_mean
from w2sbench.files import atomic_write_bytes, atomic_write_text
from w2sbench.hookspecs import hookimpl
from w2sbench.hygiene import remove_overlap
from w2sbench.interfaces import (
    SHARE,
    DataContext,
    EmbeddingAdversary,
    Examples,
    Exporter,
    LiveScores,
    LmEvalTask,
    MetricInfo,
    ModelFamily,
    ModelSpec,
    NamedPair,
    NoRegularizer,
    PenaltyContext,
    PrivacySpec,
    PropertyData,
    Regularizer,
    Strategy,
    Teacher,
    TransferLoss,
    TrustProperty,
    reference_cells,
    with_regularization,
)
from w2sbench.stats import bootstrap_stderr
from w2sbench.training.classifier import Classifier
from w2sbench.training.losses import AuxConfLoss, CrossEntropyLoss, LogConfLoss, ProductLoss
from w2sbench.values import Range

__all__ = [
    "hookimpl",
    "W2SBenchError",
    "did_you_mean",
    "DataContext",
    "EmbeddingAdversary",
    "Examples",
    "Exporter",
    "LmEvalTask",
    "MetricInfo",
    "LiveScores",
    "ModelFamily",
    "ModelSpec",
    "NamedPair",
    "NoRegularizer",
    "PenaltyContext",
    "PrivacySpec",
    "PropertyData",
    "SHARE",
    "Regularizer",
    "Strategy",
    "Teacher",
    "TransferLoss",
    "TrustProperty",
    "reference_cells",
    "with_regularization",
    "Classifier",
    "dataset_file",
    "drop_empty_texts",
    "remove_overlap",
    "file_sha256",
    "file_state",
    "split_pool",
    "atomic_write_bytes",
    "atomic_write_text",
    "Range",
    "bootstrap_stderr",
    "CrossEntropyLoss",
    "AuxConfLoss",
    "ProductLoss",
    "LogConfLoss",
]

