"""Reading untrusted JSON: size caps, depth caps, no NaN, and bounded gzip for embedded payloads.

A submission arrives by pull request from anyone, so nothing in it is imported, unpickled or
executed; these guards keep a hostile file from exhausting memory or the parser's stack.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

from w2sbench.jsonio import StrictJSONError, loads_strict

__all__ = ["UnsafeInput", "MAX_FILE_BYTES", "MAX_PAYLOAD_BYTES", "MAX_DEPTH", "read_json_file", "loads_bounded", "gunzip_bounded"]

MAX_FILE_BYTES = 64 * 2**20  # a default-pair submission is well under 1 MiB
MAX_PAYLOAD_BYTES = 256 * 2**20  # decompressed predictions: a gzip bomb stops here
MAX_DEPTH = 32  # the deepest legitimate path (entry > cells > cell > gap_recovered > metric > summary > ci95) is ~10


class UnsafeInput(ValueError):
    """The input is not JSON we are willing to read; the message says why."""


def _check_depth(value: Any) -> None:
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise UnsafeInput(f"it is nested deeper than {MAX_DEPTH} levels")
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)


def _prescan_depth(text: str) -> None:
    """Reject deep nesting before the parser recurses into it (brackets inside strings only over-count)."""
    depth = 0
    for ch in text:
        if ch in "[{":
            depth += 1
            if depth > 4 * MAX_DEPTH:
                raise UnsafeInput(f"it is nested deeper than {MAX_DEPTH} levels")
        elif ch in "]}":
            depth -= 1


def loads_bounded(text: str) -> Any:
    """w2sbench.jsonio.loads_strict (NaN/Infinity and repeated keys rejected) with nesting capped."""
    if max(text.count("["), text.count("{")) > 4 * MAX_DEPTH:
        _prescan_depth(text)
    try:
        value = loads_strict(text)  # the one strict reader: no NaN/Infinity, no repeated keys
    except RecursionError:
        raise UnsafeInput(f"it is nested deeper than {MAX_DEPTH} levels") from None
    except StrictJSONError as exc:
        raise UnsafeInput(str(exc)) from None
    _check_depth(value)
    return value


def read_json_file(path: Path) -> Any:
    """Read a JSON file of at most MAX_FILE_BYTES, UTF-8, with the guards of ``loads_bounded``."""
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise UnsafeInput(f"it is {size / 2**20:.1f} MiB; submissions may be at most {MAX_FILE_BYTES // 2**20} MiB")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UnsafeInput(f"it is not UTF-8 text ({exc})") from None
    return loads_bounded(text)


def gunzip_bounded(blob: bytes, limit: int | None = None) -> bytes:
    """Decompress gzip data, refusing output larger than ``limit`` bytes [MAX_PAYLOAD_BYTES]."""
    limit = MAX_PAYLOAD_BYTES if limit is None else limit
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(blob, limit + 1)
    except zlib.error as exc:
        raise UnsafeInput(f"its predictions are not valid gzip data ({exc})") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise UnsafeInput(f"its predictions decompress to more than {limit // 2**20} MiB")
    if not inflater.eof:
        raise UnsafeInput("its predictions are truncated gzip data")
    return out
