"""textattack's word splitting, memoized while an attack runs.

``AttackedText.generate_new_attacked_text`` (textattack 0.3) splits every word of the current text again
for every candidate perturbation (``words_from_text`` on each input and output word: two regex passes per
word), which was a fifth of a live attack's time on the offline default pair (py-spy, 2026-12-01). The
function is pure (a string in, its words out), so answering repeated strings from a dictionary gives the
same words, and so the same attack, at a fraction of the cost.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator, Sequence

__all__ = ["memoized_word_splitting"]

_CACHED_STRINGS = 2**16  # single words and short sentences: a few MB at most


@contextlib.contextmanager
def memoized_word_splitting() -> Iterator[None]:
    """Within the block, ``textattack.shared.attacked_text.words_from_text`` answers each string it has seen from
    a bounded cache (a fresh list each time, as the original returns); restored afterwards, also on errors."""
    from textattack.shared import attacked_text

    original: Callable[..., list[str]] = attacked_text.words_from_text

    @functools.lru_cache(maxsize=_CACHED_STRINGS)
    def words(text: str) -> tuple[str, ...]:
        return tuple(original(text))

    def words_from_text(s: str, words_to_ignore: Sequence[str] = ()) -> list[str]:
        if words_to_ignore:  # textattack's own callers never pass it; keep the original's arithmetic when one does
            return original(s, list(words_to_ignore))
        return list(words(s))

    attacked_text.words_from_text = words_from_text
    try:
        yield
    finally:
        attacked_text.words_from_text = original
