"""NLTK stopwords for textattack, which otherwise downloads them at import (the adversarial plugin's only
offline preparation).

``_perturbations`` calls ``ensure_stopwords`` before it imports textattack; scripts/setup.sh also calls it
once; safe to call again. The word list is scikit-learn's English stop words, written to ``$NLTK_DATA`` (default ``~/nltk_data``).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["nltk_data_dir", "ensure_stopwords"]


def nltk_data_dir() -> Path:
    """Where NLTK (and so textattack) looks for its data: ``$NLTK_DATA``, else ``~/nltk_data``."""
    return Path(os.environ.get("NLTK_DATA", Path.home() / "nltk_data"))


def ensure_stopwords() -> Path:
    """Write ``corpora/stopwords/english`` under ``nltk_data_dir()`` unless it exists; returns its path."""
    target = nltk_data_dir() / "corpora" / "stopwords" / "english"
    if not target.is_file():
        from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("\n".join(sorted(ENGLISH_STOP_WORDS)) + "\n")
    return target
