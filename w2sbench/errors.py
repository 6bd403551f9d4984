"""Errors that reach the user as one clear paragraph (problem + fix), never as a traceback."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["W2SBenchError", "did_you_mean"]


class W2SBenchError(Exception):
    """A problem the user can fix. The CLI prints ``problem`` and ``fix`` and exits with code 2."""

    exit_code = 2

    def __init__(self, problem: str, fix: str = "") -> None:
        super().__init__(problem)
        self.problem = problem
        self.fix = fix

    def __str__(self) -> str:
        return f"{self.problem}\n  Fix: {self.fix}" if self.fix else self.problem


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """Return ' Did you mean "x"?' for the closest known names, or '' when nothing is close."""
    close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.5)
    if not close:
        return ""
    return " Did you mean " + " or ".join(f'"{c}"' for c in close) + "?"
