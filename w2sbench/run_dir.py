"""A run directory: its default name, and claiming it for a run (run.json, foreign files, changed settings)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from w2sbench.errors import W2SBenchError
from w2sbench.files import atomic_write_json, remove_stale_temporaries, stable_hash
from w2sbench.jsonio import StrictJSONError, loads_strict
from w2sbench.settings import RunSettings, settings_diff

__all__ = ["default_run_dir", "claim_run_dir"]


def default_run_dir(settings: RunSettings) -> Path:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{settings.weak}__{settings.strong}")[:80]
    return Path("runs") / f"{slug}-{stable_hash(settings.as_dict())[:8]}"


def claim_run_dir(
    run_dir: Path, settings: RunSettings, reconfigure: bool = False, renamed_options: Mapping[str, Mapping[str, str]] | None = None
) -> None:
    """Refuse a run directory that holds other settings (unless reconfigure), then record ours in run.json.

    ``renamed_options``: per trust property, {new option name: old name} (``TrustProperty.renamed_options``);
    a run.json written before a rename records the old name, which is read as the new one."""
    recorded = Path(run_dir) / "run.json"
    wanted = settings.as_dict()
    if not recorded.exists():
        _refuse_foreign_files(Path(run_dir))
    # A run that wrote no results computed nothing a new configuration could mix with (stages are keyed by
    # content): following a failed run's own advice ("pass --data-dir") needs no --reconfigure.
    finished = (Path(run_dir) / "results.json").exists()
    if recorded.exists() and finished and not reconfigure:
        try:
            old = loads_strict(recorded.read_text())
        except (StrictJSONError, UnicodeDecodeError):
            old = None
        old = _current_option_names(old, renamed_options or {})
        if old is not None and old != json.loads(json.dumps(wanted)):
            diffs = settings_diff(old, json.loads(json.dumps(wanted)))
            raise W2SBenchError(
                f"{run_dir} holds a run with different settings ({'; '.join(diffs)}).",
                "Resume with the original arguments, pass another --out, or pass --reconfigure to "
                "re-run this directory with the new settings (finished stages that still apply are reused).",
            )
    # temporary files of a killed earlier run (never read, but they should not pile up)
    remove_stale_temporaries(Path(run_dir))
    atomic_write_json(recorded, wanted)


def _current_option_names(recorded: Any, renamed: Mapping[str, Mapping[str, str]]) -> Any:
    """Recorded settings with renamed options under their new names (unchanged when nothing was renamed)."""
    options = recorded.get("options") if isinstance(recorded, dict) else None
    if not isinstance(options, dict) or not any(p in options for p in renamed):
        return recorded
    current = {prop: {({o: n for n, o in renamed.get(prop, {}).items()}).get(k, k): v for k, v in values.items()}
               if isinstance(values, dict) else values for prop, values in options.items()}
    return {**recorded, "options": current}


# What a run directory of ours may hold before its run.json exists (the lock is taken first).
_OURS_BEFORE_CLAIM = {".lock", "cache"}


def _refuse_foreign_files(run_dir: Path) -> None:
    """Refuse to write a run into a folder that holds files of someone else (no run.json of ours)."""
    if not run_dir.is_dir():
        return
    foreign = sorted(
        p.name for p in run_dir.iterdir() if p.name not in _OURS_BEFORE_CLAIM and not (p.name.startswith(".") and p.name.endswith(".tmp"))
    )
    if foreign:
        lock = run_dir / ".lock"
        if lock.is_file() and len(list(run_dir.iterdir())) == len(foreign) + 1:
            lock.unlink()  # taken by this process a moment ago: leave the folder as we found it
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise W2SBenchError(
            f"{run_dir} already holds files that no w2sbench run wrote ({shown}); writing a run there would overwrite them.",
            "Pass --out pointing at a new or empty folder (or one made by an earlier w2sbench run).",
        )
