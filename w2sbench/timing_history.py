"""``timing.history`` of results.json: every invocation that wrote a run directory's results with the same
settings (a resume, a cached re-run), so a re-run's 2 s do not hide the computation's hour."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from w2sbench.jsonio import loads_strict

__all__ = ["INVOCATION_FIELDS", "MAX_HISTORY", "earlier_invocations", "timing_history"]

# What ``timing`` records of each invocation: wall seconds, stage counts, and (``stages``) the computed stages'
# count and seconds per trust property and stage kind.
INVOCATION_FIELDS = ("seconds", "stages_computed", "stages_cached", "stages")
# At most this many invocations in ``timing.history``; beyond it the oldest that computed no stage are dropped.
MAX_HISTORY = 50


def earlier_invocations(results_file: Path, settings: Mapping[str, Any]) -> list[dict[str, Any]]:
    """``timing.history`` of ``results_file`` (a run directory's results.json) when it records the same
    ``settings`` (a resume or a cached re-run), else []; results written before the history existed give their
    one invocation (``timing`` and ``created_utc``). A missing or unreadable file gives [] (nothing to carry)."""
    try:
        old = loads_strict(Path(results_file).read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return []
    if not isinstance(old, dict) or old.get("settings") != json.loads(json.dumps(dict(settings))):
        return []  # another configuration (--reconfigure): its timing describes other work
    timing: dict[str, Any] = old["timing"] if isinstance(old.get("timing"), dict) else {}
    history = timing.get("history")
    if isinstance(history, list):
        return [dict(h) for h in history if isinstance(h, dict)]
    if not isinstance(timing.get("seconds"), (int, float)):
        return []
    return [{"finished_utc": old.get("created_utc"), "w2sbench_version": old.get("w2sbench_version"),
             **{k: timing[k] for k in INVOCATION_FIELDS if k in timing}}]


def timing_history(earlier: list[dict[str, Any]], latest: dict[str, Any]) -> list[dict[str, Any]]:
    """``earlier`` then ``latest``, at most ``MAX_HISTORY`` long: the oldest invocations that computed no stage
    go first, so the ones that did the computing stay."""
    history = [*earlier, latest]
    while len(history) > MAX_HISTORY:
        idle = next((i for i, h in enumerate(history[:-1]) if not h.get("stages_computed")), 0)
        history.pop(idle)
    return history
