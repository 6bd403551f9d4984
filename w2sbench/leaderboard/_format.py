"""The submission format: version constants, the published schema, name rules and entry keys."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from w2sbench.files import stable_hash
from w2sbench.leaderboard._safejson import UnsafeInput, gunzip_bounded, loads_bounded

__all__ = [
    "SUBMISSION_SCHEMA_VERSION",
    "SUBMISSION_FORMAT",
    "PREDICTIONS_ENCODING",
    "NAME_PATTERN",
    "submission_schema",
    "check_name",
    "entry_key",
    "describe_entry",
    "encode_predictions",
    "decode_predictions",
]

SUBMISSION_SCHEMA_VERSION = "1.0"
SUBMISSION_FORMAT = "w2sbench-leaderboard-submission"
PREDICTIONS_ENCODING = "json+gzip+base64"
# Submission names become file names and HTML ids: letters, digits, dot, dash, underscore only.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")


def submission_schema() -> dict[str, Any]:
    """The published JSON Schema (w2sbench/schemas/submission-1.json)."""
    return json.loads((Path(__file__).parents[1] / "schemas" / "submission-1.json").read_text())


def check_name(name: str) -> bool:
    """True when ``name`` is a safe submission name (no path separators, no markup, no leading dot)."""
    return bool(NAME_PATTERN.match(name)) and ".." not in name


def entry_key(entry: Mapping[str, Any]) -> str:
    """What makes two entries the same experiment: property, model identities, fine-tuning, options."""
    models = entry.get("models", {})
    return stable_hash(
        {
            "property": entry.get("property"),
            "weak": models.get("weak"),
            "strong": models.get("strong"),
            "finetune": entry.get("finetune"),
            "options": entry.get("options"),
            "train": entry.get("train"),
        }
    )


def describe_entry(entry: Mapping[str, Any]) -> str:
    """A short human label such as ``fairness: minilm-l1 -> minilm-l6 (head:full)``."""
    models = entry.get("models") or {}
    ft = entry.get("finetune") or {}
    weak = (models.get("weak") or {}).get("name", "?")
    strong = (models.get("strong") or {}).get("name", "?")
    return f"{entry.get('property', '?')}: {weak} -> {strong} ({ft.get('weak', '?')}:{ft.get('strong', '?')})"


def encode_predictions(ids: Mapping[str, list[str]], probabilities: Mapping[str, Any]) -> dict[str, Any]:
    """Pack test ids and per-(seed, cell, test set) probabilities as base64 of gzip of JSON."""
    raw = json.dumps({"ids": ids, "probabilities": probabilities}, separators=(",", ":"), sort_keys=True).encode()
    return {
        "encoding": PREDICTIONS_ENCODING,
        "sha256": hashlib.sha256(raw).hexdigest(),
        "bytes": len(raw),
        "data": base64.b64encode(gzip.compress(raw, mtime=0)).decode("ascii"),
    }


def decode_predictions(block: Mapping[str, Any]) -> dict[str, Any]:
    """Unpack ``encode_predictions``'s output with size, depth and hash checks; raises UnsafeInput."""
    if block.get("encoding") != PREDICTIONS_ENCODING:
        raise UnsafeInput(f"its predictions use encoding {block.get('encoding')!r}; this w2sbench reads {PREDICTIONS_ENCODING!r}")
    try:
        blob = base64.b64decode(block.get("data", ""), validate=True)
    except (ValueError, TypeError) as exc:
        raise UnsafeInput(f"its predictions are not valid base64 ({exc})") from None
    raw = gunzip_bounded(blob)
    if hashlib.sha256(raw).hexdigest() != block.get("sha256"):
        raise UnsafeInput("its predictions do not match their recorded sha256 (the data was edited or truncated)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise UnsafeInput("its predictions are not UTF-8 JSON") from None
    payload = loads_bounded(text)
    if not isinstance(payload, dict) or not isinstance(payload.get("ids"), dict) or not isinstance(payload.get("probabilities"), dict):
        raise UnsafeInput('its predictions must be an object with "ids" and "probabilities"')
    return payload
