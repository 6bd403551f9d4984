"""Deterministic text perturbations built from textattack's offline transformations.

Character edits (neighbouring-character swap, QWERTY typo, deletion, insertion, substitution) are
the edits DeepWordBug and Pruthi et al. search over; the word edits (deletion, swapping two words)
need no downloads either. ``perturb_texts`` is deterministic given its seed: candidates are drawn
with our own generator, and textattack's internal use of the global ``random``/``numpy.random``
state is seeded and then restored, so callers' random streams are untouched.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator, Sequence
from functools import cache
from typing import Any

import numpy as np

from w2sbench.plugin_api import Regularizer, W2SBenchError
from w2sbench_plugins.adversarial._stopwords import ensure_stopwords

__all__ = [
    "CHARACTER_EDITS",
    "WORD_EDITS",
    "EDITS",
    "check_edits",
    "import_textattack",
    "seeded_globals",
    "perturb_text",
    "perturb_texts",
    "PerturbedViews",
]

CHARACTER_EDITS = ("swap", "qwerty", "delete", "insert", "substitute")
WORD_EDITS = ("word_delete", "word_swap")
EDITS = CHARACTER_EDITS + WORD_EDITS
_LOWER = "abcdefghijklmnopqrstuvwxyz"  # textattack's default also inserts capitals, which SST-2 never has
_MIN_CHAR_WORD = 3  # shorter words ("a", "is") are left alone by character edits, as the attacks do


def import_textattack() -> Any:
    """Import textattack offline: its recipes need NLTK stopwords, which we write instead of downloading."""
    ensure_stopwords()
    import textattack

    return textattack


def check_edits(edits: Sequence[str], option: str) -> tuple[str, ...]:
    """Validate a list of edit names from an option."""
    chosen = tuple(e.strip() for e in edits if e.strip())
    unknown = [e for e in chosen if e not in EDITS]
    if unknown or not chosen:
        raise W2SBenchError(
            f'Option "{option}" has unknown or no edits: {", ".join(unknown) or "(empty)"}.',
            f"Use a comma-separated subset of: {', '.join(EDITS)}.",
        )
    return chosen


@cache
def _transformation(edit: str) -> Any:
    ta = import_textattack().transformations
    # random_one=False: textattack lists every candidate and we pick one with our own generator.
    return {
        "swap": lambda: ta.WordSwapNeighboringCharacterSwap(random_one=False),
        "qwerty": lambda: ta.WordSwapQWERTY(random_one=False),
        "delete": lambda: ta.WordSwapRandomCharacterDeletion(random_one=False),
        "insert": lambda: ta.WordSwapRandomCharacterInsertion(random_one=False, letters_to_insert=_LOWER),
        "substitute": lambda: ta.WordSwapRandomCharacterSubstitution(random_one=False, letters_to_insert=_LOWER),
        "word_delete": lambda: ta.WordDeletion(),
        "word_swap": lambda: ta.WordInnerSwapRandom(),
    }[edit]()


@contextlib.contextmanager
def seeded_globals(seed: int) -> Iterator[None]:
    """Seed the global RNGs textattack draws from, then restore them."""
    py_state, np_state = random.getstate(), np.random.get_state()
    random.seed(seed)
    np.random.seed(seed)
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)


def perturb_text(text: str, rng: np.random.Generator, edits: Sequence[str], rate: float) -> str:
    """Apply ``max(1, round(rate * words))`` random edits to ``text``; the text is unchanged if no edit applies."""
    from textattack.shared import AttackedText

    if not text.strip():
        return text
    current = AttackedText(text)
    n_edits = max(1, round(rate * len(current.words)))
    for _ in range(n_edits):
        words = current.words
        edit = edits[int(rng.integers(len(edits)))]
        allowed = [i for i, w in enumerate(words) if edit in WORD_EDITS or len(w) >= _MIN_CHAR_WORD]
        if not allowed:
            continue
        index = allowed[int(rng.integers(len(allowed)))]
        with seeded_globals(int(rng.integers(2**31 - 1))):
            candidates = _transformation(edit)(current, indices_to_modify={index})
        if candidates:
            current = candidates[int(rng.integers(len(candidates)))]
    return current.text


def perturb_texts(texts: Sequence[str], seed: int, edits: Sequence[str], rate: float, salt: int = 0) -> list[str]:
    """Perturbed copies of ``texts``, deterministic given (texts, seed, edits, rate, salt)."""
    import_textattack()
    rng = np.random.default_rng([seed, salt, 0x5EED])
    return [perturb_text(t, rng, edits, rate) for t in texts]


class PerturbedViews(Regularizer):
    """A regularizer whose extra views are ``num_views`` perturbed copies of the training texts."""
    def __init__(self, name: str, weight: float, num_views: int, rate: float, edits: Sequence[str]) -> None:
        if num_views < 1:
            raise W2SBenchError(f"{name} needs at least one perturbed view (got {num_views}).", "Set the views option to 1 or more.")
        if not 0.0 <= rate <= 1.0:
            raise W2SBenchError(f"{name}: perturb_rate must be between 0 and 1 (got {rate}).", "Pass e.g. perturb_rate=0.15.")
        self.name = name
        self.weight = float(weight)
        self.num_views = int(num_views)
        self.rate = float(rate)
        self.edits = tuple(edits)
        self._memo: dict[tuple[int, int], list[list[str]]] = {}

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "weight": self.weight, "views": self.num_views, "rate": self.rate, "edits": list(self.edits)}

    def views(self, texts: Sequence[str], seed: int) -> list[list[str]]:
        # Memoized: the ceiling-reg and weak-wts-tft cells train on the same split with the same seed.
        key = (seed, hash(tuple(texts)))
        if key not in self._memo:
            self._memo[key] = [perturb_texts(texts, seed, self.edits, self.rate, salt=k) for k in range(self.num_views)]
        return self._memo[key]
