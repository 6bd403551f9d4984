"""The public leaderboard: export runs as submissions, validate them by recomputing every score, build the board.

Submissions are plain JSON (schema: ``w2sbench/schemas/submission-1.json``); see leaderboards/README.md.
Names load lazily so that ``w2sbench --help`` does not import the training stack.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "_api": ("SUBMISSIONS_DIR", "BuildResult", "build_board", "export_submission", "make_validator"),
    "_board": ("BoardRow", "collect_rows", "render_csv", "render_html", "render_markdown", "write_board"),
    "_format": (
        "NAME_PATTERN", "PREDICTIONS_ENCODING", "SUBMISSION_FORMAT", "SUBMISSION_SCHEMA_VERSION", "check_name",
        "decode_predictions", "encode_predictions", "entry_key", "submission_schema",
    ),
    "_safejson": ("MAX_DEPTH", "MAX_FILE_BYTES", "MAX_PAYLOAD_BYTES", "UnsafeInput"),
    "_submission": ("build_submission", "submission_name"),
    "_validate": ("SCORE_TOLERANCE", "EntryResult", "ValidationReport", "Validator", "validate_files"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)


def __dir__() -> list[str]:
    return __all__
