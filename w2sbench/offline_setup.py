"""One-time offline preparation: NLTK stopwords for textattack, which otherwise downloads them at import.

Run by scripts/setup.sh; safe to run again. The word list comes from scikit-learn's English stop words.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["nltk_data_dir", "ensure_stopwords"]


def nltk_data_dir() -> Path:
    return Path(os.environ.get("NLTK_DATA", Path.home() / "nltk_data"))


def ensure_stopwords() -> Path:
    target = nltk_data_dir() / "corpora" / "stopwords" / "english"
    if not target.is_file():
        from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("\n".join(sorted(ENGLISH_STOP_WORDS)) + "\n")
    return target


if __name__ == "__main__":
    print(f"NLTK stopwords at {ensure_stopwords()}")
