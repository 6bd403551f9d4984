"""Enron e-mails (AESLC) for the privacy property: is an e-mail one its mailbox owner sent, or received?

The label comes from the mailbox folder the e-mail was filed in (``<user>_sent_<n>`` or
``<user>_inbox_<n>``), never from the body, so the classifier must learn it from writing style and
content. Bodies that occur more than once anywhere in the corpus are dropped: the same message sits
in the sender's sent folder and the recipient's inbox (conflicting labels), and a held-out copy of a
training e-mail would count as a non-member in membership inference. Ids are ``<split>-<line>``:
the file names hold employees' names and must not reach results files or logs.
"""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from w2sbench.plugin_api import Examples, W2SBenchError

__all__ = ["SPLITS", "FOLDERS", "load_aeslc", "folder_label", "body_key", "enron_examples"]

SPLITS = ("train", "dev", "test")
FOLDERS = {"inbox": 0, "sent": 1}
_KEYS = ("body", "file", "emails_in_body")


def load_aeslc(path: Path) -> list[dict[str, Any]]:
    """Read one ``aeslc_<split>.jsonl.gz`` file (one JSON e-mail per line)."""
    rows = []
    try:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                row = json.loads(line)
                if not isinstance(row, dict) or any(k not in row for k in _KEYS):
                    # Name the line, never its content: the bodies hold personal data.
                    raise W2SBenchError(
                        f"{path} line {number} lacks one of the fields {', '.join(_KEYS)}.",
                        "Replace the file with the mirror's aeslc_*.jsonl.gz (see the data README).",
                    )
                rows.append(row)
    except (OSError, EOFError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise W2SBenchError(
            f"{path} is not a readable gzipped JSON-lines file ({type(exc).__name__}).",
            "Replace the file with the mirror's aeslc_*.jsonl.gz (see the data README).",
        ) from None
    return rows


def folder_label(file_name: str) -> int:
    """1 for an e-mail filed in its owner's sent folder, 0 for the inbox."""
    parts = file_name.split("_")
    folder = parts[1] if len(parts) == 3 else ""
    if folder not in FOLDERS:
        raise W2SBenchError(
            "An AESLC file name does not have the form <user>_<sent|inbox>_<n>.subject.",
            "Replace the data with the mirror's aeslc_*.jsonl.gz (see the data README).",
        )
    return FOLDERS[folder]


def body_key(body: str) -> str:
    """The body with case and whitespace ignored: what counts as the same e-mail for deduplication."""
    return " ".join(body.split()).lower()


def enron_examples(rows_by_split: dict[str, list[dict[str, Any]]]) -> dict[str, Examples]:
    """Per split, the e-mails whose body is unique across all splits, labelled sent (1) / inbox (0)."""
    # Collapsed whitespace: quoted replies are indented and line-broken, which wastes tokens. Each body is
    # collapsed once (the e-mails are long: splitting them is most of the loading time); its lower-cased
    # form is body_key.
    collapsed = {split: [" ".join(r["body"].split()) for r in rows] for split, rows in rows_by_split.items()}
    keys = {split: [text.lower() for text in texts] for split, texts in collapsed.items()}
    counts = Counter(key for split_keys in keys.values() for key in split_keys)
    out = {}
    for split, rows in rows_by_split.items():
        keep = [(i, r, text) for i, (r, text, key) in enumerate(zip(rows, collapsed[split], keys[split], strict=True), 1)
                if counts[key] == 1]
        out[split] = Examples(
            ids=[f"{split}-{i}" for i, _, _ in keep],
            texts=[text for _, _, text in keep],
            labels=np.array([folder_label(r["file"]) for _, r, _ in keep], dtype=np.int64),
            attributes={"has_address": np.array([int(bool(r["emails_in_body"])) for _, r, _ in keep], dtype=np.int64)},
        )
    return out
