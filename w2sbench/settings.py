"""Run settings: everything that determines a run's results, parsed and validated before any work."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from w2sbench.errors import W2SBenchError
from w2sbench.training.config import FINETUNE_MODES

__all__ = ["RunSettings", "DEFAULT_SEEDS", "parse_seeds", "parse_finetune", "parse_options", "parse_list", "settings_diff"]


@dataclass(frozen=True)
class RunSettings:
    """The recorded configuration of a run (``run.json``); a resume must match it."""

    pair: str
    weak: str
    strong: str
    metrics: tuple[str, ...]
    strategies: tuple[str, ...]
    seeds: tuple[int, ...]
    finetune_weak: str
    finetune_strong: str
    options: dict[str, dict[str, Any]] = field(default_factory=dict)  # per trust property, fully resolved
    train: dict[str, dict[str, Any]] = field(default_factory=dict)  # per mode, fully resolved TrainConfig
    data_dir: str | None = None
    device: str = "cpu"

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for key in ("metrics", "strategies", "seeds"):
            d[key] = list(d[key])
        return d


def parse_list(text: str, what: str) -> tuple[str, ...]:
    items = tuple(x.strip() for x in text.split(",") if x.strip())
    if not items:
        raise W2SBenchError(f"The list of {what} is empty.", f"Pass a comma-separated list of {what}.")
    if len(set(items)) != len(items):
        raise W2SBenchError(f'The list of {what} "{text}" repeats a name.', "Name each one once.")
    return items


DEFAULT_SEEDS = (0, 1, 2)  # every entry point (run, sweep, RunRequest): three seeds give intervals over seeds (issue 14)
MAX_SEED = 2**32 - 1
MAX_SEEDS = 1000  # every seed trains every cell: more is a typo, not a plan


def parse_seeds(text: str) -> tuple[int, ...]:
    """``0,1,2`` or a range ``0-4``."""
    seeds: list[int] = []
    try:
        for part in (p.strip() for p in text.split(",")):
            if not part:
                continue
            if "-" in part[1:]:
                lo, hi = part.split("-", 1)
                if int(hi) < int(lo):
                    swapped = f"{hi.strip()}-{lo.strip()}"
                    fixed = ",".join(swapped if p.strip() == part else p.strip() for p in text.split(",") if p.strip())
                    raise W2SBenchError(
                        f'Bad seeds list "{text}": the range "{part}" runs backwards (a range is LOW-HIGH).',
                        f"Write the smaller seed first: --seeds {fixed}.",
                    )
                _check_seed_range(text, int(hi), int(hi) - int(lo) + 1 + len(seeds))
                seeds.extend(range(int(lo), int(hi) + 1))
            else:
                seeds.append(int(part))
    except ValueError:
        raise W2SBenchError(
            f'Bad seeds list "{text}".', "Pass non-negative integers separated by commas (0,1,2) or a range (0-4)."
        ) from None
    _check_seed_range(text, max(seeds, default=0), len(seeds))
    if not seeds or any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise W2SBenchError(
            f'Bad seeds list "{text}": it must hold distinct non-negative integers.', "Pass e.g. --seeds 0,1,2."
        )
    return tuple(seeds)


def _check_seed_range(text: str, largest: int, count: int) -> None:
    if largest > MAX_SEED:
        raise W2SBenchError(
            f'Bad seeds list "{text}": seeds must be integers from 0 to {MAX_SEED} (2^32 - 1, the range numpy and '
            "torch both accept).",
            "Pass smaller seeds, e.g. --seeds 0,1,2.",
        )
    if count > MAX_SEEDS:
        raise W2SBenchError(
            f'Bad seeds list "{text}": it names {count} seeds; a run takes at most {MAX_SEEDS}.',
            "Pass fewer seeds, e.g. --seeds 0-9.",
        )


def parse_finetune(text: str) -> tuple[str, str]:
    """``full`` (both models) or ``WEAK:STRONG`` such as ``head:full``."""
    parts = [p.strip() for p in text.split(":")]
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or any(p not in FINETUNE_MODES for p in parts):
        raise W2SBenchError(
            f'Bad fine-tune mode "{text}".',
            f"Use one of {', '.join(FINETUNE_MODES)} for both models, or WEAK:STRONG such as head:full.",
        )
    return parts[0], parts[1]


def parse_options(items: list[str], flag: str = "--option") -> dict[str, dict[str, str]]:
    """``NAME.key=value`` pairs grouped by name: trust properties for ``--option fairness.weight=2``, fine-tune
    modes for ``--train full.epochs=2`` (``flag``)."""
    out: dict[str, dict[str, str]] = {}
    for item in items:
        name, eq, value = item.partition("=")
        owner, dot, key = name.partition(".")
        if not eq or not dot or not owner or not key:
            if flag == "--train":
                raise W2SBenchError(
                    f'Bad training setting "{item}".',
                    f"Write --train MODE.KEY=VALUE with MODE a fine-tune mode ({', '.join(FINETUNE_MODES)}), "
                    "e.g. --train full.epochs=2.",
                )
            raise W2SBenchError(
                f'Bad option "{item}".', "Write options as PROPERTY.KEY=VALUE, e.g. --option fairness.weight=2."
            )
        out.setdefault(owner.strip(), {})[key.strip()] = value.strip()
    return out


def settings_diff(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Human-readable differences between two recorded settings, down to the changed leaf of nested ones:
    ``options.fairness.weight: 0.5 -> 0.6``, not both whole option dicts."""
    diffs = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if a == b:
            continue
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            diffs += settings_diff(a, b, f"{prefix}{key}.")
        else:
            diffs.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return diffs


def data_dir_arg(path: str | None) -> str | None:
    if path is None:
        return None
    p = Path(path).expanduser()
    if not p.is_dir():
        raise W2SBenchError(
            f'The data directory "{path}" does not exist.',
            "Pass --data-dir pointing at a local mirror (see docs/data.md), or omit it to download from upstream.",
        )
    return str(p.resolve())
