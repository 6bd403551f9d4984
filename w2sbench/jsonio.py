"""The one strict JSON reader: every JSON file the tool reads goes through ``loads_strict``.

Python's ``json`` accepts ``NaN``/``Infinity`` (not JSON, RFC 8259 section 6) and keeps the last of
repeated keys (RFC 8259 section 4: names SHOULD be unique), so a file can say two things at once.
Both are refused here. The leaderboard's bounded reader (leaderboard/_safejson.py) adds size and
depth caps on top of this one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from w2sbench.errors import W2SBenchError

__all__ = ["StrictJSONError", "loads_strict", "read_json"]


class StrictJSONError(ValueError):
    """Text that is not strict JSON; the message says why (e.g. 'it repeats the key "name"')."""


def _no_constant(name: str) -> Any:
    raise StrictJSONError(f"it contains {name}, which is not valid JSON (write null for a missing value)")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise StrictJSONError(f'it repeats the key "{key}" in one object')
        out[key] = value
    return out


def loads_strict(text: str | bytes) -> Any:
    """``json.loads`` that refuses NaN/Infinity and repeated keys (StrictJSONError, a ValueError)."""
    try:
        return json.loads(text, parse_constant=_no_constant, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as exc:
        raise StrictJSONError(f"it is not valid JSON ({exc})") from None


def read_json(path: Path, fix: str) -> Any:
    """A JSON file read strictly; a W2SBenchError naming the file, what is wrong and ``fix`` otherwise."""
    path = Path(path)
    try:
        return loads_strict(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise W2SBenchError(f"{path} is not valid JSON (not UTF-8 text: {exc}).", fix) from None
    except StrictJSONError as exc:
        reason = str(exc).removeprefix("it ")
        raise W2SBenchError(f"{path} is not valid JSON: {reason}." if not reason.startswith("is not valid JSON")
                            else f"{path} {reason}.", fix) from None
