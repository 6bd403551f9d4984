"""A toy sentiment task the tiny test models can learn, for checking that robustness regularizers
move a fully fine-tuned model in the intended direction."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from w2sbench.interfaces import NoRegularizer, Regularizer
from w2sbench.training.classifier import Classifier

__all__ = ["toy_sentiment", "train_toy", "perturbed_disagreement", "accuracy"]

# Words the tiny tokenizers were trained on (tests/tiny_models.py), so they are whole tokens.
_POSITIVE = ("good", "great", "wonderful", "fun", "love", "best")
_NEGATIVE = ("bad", "awful", "terrible", "dull", "hate", "worst")
_FILLER = ("the", "movie", "film", "plot", "acting", "was", "very", "it", "this", "that", "of", "and")


def toy_sentiment(n: int, seed: int) -> tuple[list[str], np.ndarray]:
    """Three filler words plus one sentiment word at a random position; the label is its polarity."""
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for _ in range(n):
        label = int(rng.integers(2))
        words = [str(w) for w in rng.choice(_FILLER, 3)]
        words.insert(int(rng.integers(4)), str(rng.choice(_POSITIVE if label else _NEGATIVE)))
        texts.append(" ".join(words))
        labels.append(label)
    return texts, np.array(labels)


def train_toy(model_dir: Path, texts: Sequence[str], labels: np.ndarray, regularizer: Regularizer | None) -> Classifier:
    """Fully fine-tune a fresh copy of a tiny model on the toy task."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from w2sbench.training.config import default_train_config
    from w2sbench.training.trainer import train_classifier

    torch.manual_seed(0)
    classifier = Classifier(AutoModel.from_pretrained(model_dir), AutoTokenizer.from_pretrained(model_dir), 2, 32)
    config = default_train_config("full", epochs=4, lr=2e-3)
    train_classifier(classifier, "full", texts, np.eye(2)[labels], {}, regularizer or NoRegularizer(), config, seed=0)
    return classifier


def perturbed_disagreement(model: Classifier, texts: Sequence[str], perturbed: Sequence[str]) -> float:
    """Mean absolute change of the positive-class probability when inputs are perturbed."""
    return float(np.abs(model.predict_proba(texts)[:, 1] - model.predict_proba(perturbed)[:, 1]).mean())


def accuracy(model: Classifier, texts: Sequence[str], labels: np.ndarray) -> float:
    return float((model.predict_proba(texts).argmax(1) == labels).mean())
