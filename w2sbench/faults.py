"""Named fault points for the kill-and-resume tests.

``W2SBENCH_FAULT=<point>:<n>`` makes the process SIGKILL itself the n-th time it reaches the named
point (counted from 1). Unset, every call is a dictionary lookup and nothing else. The points sit
where an interruption is most dangerous: inside stage production, between writing a temporary file
and renaming it, in the middle of a file's bytes, and between training steps.
"""

from __future__ import annotations

import os
import signal

__all__ = ["FAULT_ENV", "fault_point"]

FAULT_ENV = "W2SBENCH_FAULT"
_counts: dict[str, int] = {}


def fault_point(name: str) -> None:
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    point, _, nth = spec.rpartition(":")
    if point != name:
        return
    _counts[name] = _counts.get(name, 0) + 1
    if _counts[name] == int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
