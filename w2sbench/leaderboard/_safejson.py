"""Reading untrusted JSON: size caps, depth caps, no NaN, and bounded gzip for embedded payloads.

A submission arrives by pull request from anyone, so nothing in it is imported, unpickled or
executed; these guards keep a hostile file from exhausting memory or the parser's stack.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

import numpy as np

from w2sbench.jsonio import StrictJSONError, loads_strict

__all__ = ["UnsafeInput", "MAX_FILE_BYTES", "MAX_PAYLOAD_BYTES", "MAX_DEPTH", "nesting_depth", "read_json_file", "loads_bounded", "gunzip_bounded"]

MAX_FILE_BYTES = 64 * 2**20  # a default-pair submission is well under 1 MiB
MAX_PAYLOAD_BYTES = 256 * 2**20  # decompressed predictions: a gzip bomb stops here
MAX_DEPTH = 32  # the deepest legitimate path (entry > cells > cell > gap_recovered > metric > summary > ci95) is ~10


class UnsafeInput(ValueError):
    """The input is not JSON we are willing to read; the message says why."""


_STRUCTURAL = np.zeros(256, dtype=bool)
_STRUCTURAL[[ord(c) for c in '\\"[]{}']] = True  # the only bytes depth depends on (UTF-8 never reuses them)


def nesting_depth(text: str) -> int:
    """The deepest nesting of arrays and objects (``[``, ``{``) in JSON ``text``: ``[[1]]`` is 2, a scalar 0;
    brackets inside strings are not counted (a quote preceded by an odd run of backslashes is escaped).
    Vectorised over the text's backslashes, quotes and brackets only (int32 indices: a few bytes per such
    character): walking the parsed value instead took seconds on a submission's predictions. Raises
    UnicodeEncodeError for text holding lone surrogates (text decoded from UTF-8 bytes never does)."""
    raw = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    where = np.flatnonzero(_STRUCTURAL[raw]).astype(np.int32)  # files and payloads are capped far below 2**31
    chars = raw[where]
    n = np.arange(where.size, dtype=np.int32)
    backslash = chars == ord("\\")
    adjacent = np.diff(where) == 1  # adjacent[k]: character k + 1 directly follows character k in the text
    # a backslash run: consecutive backslashes; each knows where its run started, hence its length so far
    continues = np.zeros(where.size, dtype=bool)
    continues[1:] = backslash[1:] & backslash[:-1] & adjacent
    run_start = np.maximum.accumulate(np.where(backslash & ~continues, n, -1))
    escaped = np.zeros(where.size, dtype=bool)
    escaped[1:] = backslash[:-1] & adjacent & ((n[:-1] - run_start[:-1]) % 2 == 0)  # odd run right before
    inside = np.logical_xor.accumulate((chars == ord('"')) & ~escaped)  # at a bracket: inside a string
    opens = ((chars == ord("[")) | (chars == ord("{"))) & ~inside
    closes = ((chars == ord("]")) | (chars == ord("}"))) & ~inside
    return int(np.cumsum(opens.astype(np.int32) - closes.astype(np.int32)).max(initial=0))


def loads_bounded(text: str) -> Any:
    """w2sbench.jsonio.loads_strict (NaN/Infinity and repeated keys rejected) with nesting capped at MAX_DEPTH,
    checked on the text before the parser recurses into it."""
    if text.count("[") + text.count("{") > MAX_DEPTH and nesting_depth(text) > MAX_DEPTH:
        raise UnsafeInput(f"it is nested deeper than {MAX_DEPTH} levels")
    try:
        return loads_strict(text)  # the one strict reader: no NaN/Infinity, no repeated keys
    except RecursionError:
        raise UnsafeInput(f"it is nested deeper than {MAX_DEPTH} levels") from None
    except StrictJSONError as exc:
        raise UnsafeInput(str(exc)) from None


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
