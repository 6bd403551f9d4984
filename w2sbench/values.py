"""Declared types and valid ranges of every ``--option`` and ``--train`` setting, and the one coercer.

A command-line value is turned into its setting's type by ``coerce`` (the same rules for trust-metric
options and training settings: ``ture`` is not a boolean anywhere), then ``check``-ed against its
``Range`` before anything runs. A trust property declares ranges in ``TrustProperty.option_ranges``;
options it does not declare get ``default_range`` (the common names below, else: floats finite,
integers >= 0). ``describe`` gives the text used in messages and in ``w2sbench list options``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from w2sbench.errors import W2SBenchError

__all__ = ["COMMON_RANGES", "TRAIN_RANGES", "Range", "check", "coerce", "default_range", "ranges_for", "resolve_value"]


@dataclass(frozen=True)
class Range:
    """A setting's type and valid interval. ``kind`` is "int", "float", "bool", "str" or "list";
    ``low``/``high`` bound numbers (``*_open``: the bound itself is excluded); ``note`` tells the
    meaning of special values (e.g. "0 = all rows")."""

    kind: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    note: str = ""
    choices: tuple[str, ...] = ()  # for "str": the only values accepted

    def describe(self) -> str:
        """E.g. "a finite number > 0", "an integer >= 1 (0 = all rows)"."""
        noun = {"int": "an integer", "float": "a finite number", "bool": "true or false", "str": "text",
                "list": "a comma-separated list"}[self.kind]
        bounds = []
        if self.low is not None:
            bounds.append(f"{'>' if self.low_open else '>='} {self.low:g}")
        if self.high is not None:
            bounds.append(f"{'<' if self.high_open else '<='} {self.high:g}")
        if self.choices:
            return "one of " + ", ".join(self.choices) + (f" ({self.note})" if self.note else "")
        text = noun + (" " + " and ".join(bounds) if bounds else "")
        return text + (f" ({self.note})" if self.note else "")

    def contains(self, value: Any) -> bool:
        if self.choices:
            return str(value) in self.choices
        if self.kind not in {"int", "float"}:
            return True
        x = float(value)
        if not math.isfinite(x):
            return False
        if self.low is not None and (x < self.low or (self.low_open and x == self.low)):
            return False
        return not (self.high is not None and (x > self.high or (self.high_open and x == self.high)))


def _positive_int(note: str = "") -> Range:
    return Range("int", 1, note=note)


# Options every trust property shares (runner.prepare requires the split sizes and max_length).
COMMON_RANGES: dict[str, Range] = {
    "weak_train_size": _positive_int("rows of split A"),
    "transfer_size": _positive_int("rows of split B"),
    "val_size": Range("int", 0),
    "test_size": Range("int", 0, note="0 = every test row"),
    "max_length": _positive_int("tokens per input"),
    "weight": Range("float", 0),
    "perturb_rate": Range("float", 0, 1),
    "views": _positive_int(),
    "steps": _positive_int(),
}

# Every field of training.config.TrainConfig.
TRAIN_RANGES: dict[str, Range] = {
    "epochs": _positive_int(),
    "lr": Range("float", 0, low_open=True),
    "batch_size": _positive_int(),
    "weight_decay": Range("float", 0),
    "warmup_fraction": Range("float", 0, 1),
    "grad_accumulation": _positive_int(),
    "gradient_checkpointing": Range("bool"),
    "compile": Range("bool"),
    "lora_rank": _positive_int(),
    "lora_alpha": _positive_int(),
    "lora_targets": Range("list", note="module names; empty = peft's defaults"),
    "trainable_layers": Range("int", 0, note="0 = all layers"),
    "precision": Range("str", choices=("auto", "bf16", "fp32"), note="auto = bf16 on GPUs and on CPUs with native bf16, else fp32 (training/precision.py)"),
    "dropout": Range("bool", note="false = no dropout while training, as openai/weak-to-strong"),
}

_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def default_range(key: str, default: Any) -> Range:
    """The range of an option its metric does not declare: a common name's, else by the default's type."""
    if key in COMMON_RANGES:
        return COMMON_RANGES[key]
    if isinstance(default, bool):
        return Range("bool")
    if isinstance(default, int):
        return Range("int", 0)
    if isinstance(default, float):
        return Range("float")
    if isinstance(default, (list, tuple)):
        return Range("list")
    return Range("str")


def _typo(what: str, name: str, value: str, rng: Range, example: Any) -> W2SBenchError:
    kind = {"int": "int", "float": "float", "bool": "bool", "str": "str", "list": "list"}[rng.kind]
    return W2SBenchError(
        f'{what} "{name}" got "{value}", which is not a valid {kind}.',
        f"Pass {rng.describe()}, e.g. {example!r}.",
    )


def coerce(value: Any, rng: Range, name: str, what: str = "Option", example: Any = None) -> Any:
    """Turn a command-line string into ``rng``'s type (non-strings pass through unchanged).

    Booleans accept 1/true/yes/on and 0/false/no/off (any case) and nothing else; lists split on commas.
    Raises W2SBenchError naming ``what`` ("Option", "Training setting"), ``name`` and the value.
    """
    if not isinstance(value, str):
        return value
    text = value.strip()
    try:
        if rng.kind == "bool":
            if text.lower() in _TRUE:
                return True
            if text.lower() in _FALSE:
                return False
            raise ValueError(text)
        if rng.kind == "int":
            return int(text)
        if rng.kind == "float":
            return float(text)
        if rng.kind == "list":
            return [v.strip() for v in text.split(",") if v.strip()]
    except (ValueError, OverflowError):
        raise _typo(what, name, value, rng, example) from None
    return value


def check(value: Any, rng: Range, name: str, what: str = "Option", shown: str | None = None) -> None:
    """Refuse a value outside ``rng`` (NaN and Infinity are outside every numeric range).
    ``shown``: the text the user typed, quoted in the message (default: the value's repr)."""
    text = f'"{shown}"' if shown is not None else repr(value)
    if rng.kind in {"int", "float"} and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise W2SBenchError(f'{what} "{name}" got {text}, which is not {rng.describe()}.', f"Pass {rng.describe()}.")
    if not rng.contains(value):
        raise W2SBenchError(
            f'{what} "{name}" got {text}, which is outside its range: {rng.describe()}.',
            f"Pass {rng.describe()}.",
        )


def resolve_value(value: Any, rng: Range, name: str, what: str = "Option", example: Any = None) -> Any:
    """``coerce`` then ``check``: the value a run records."""
    out = coerce(value, rng, name, what, example)
    check(out, rng, name, what, value.strip() if isinstance(value, str) else None)
    return out


def ranges_for(defaults: Mapping[str, Any], declared: Mapping[str, Range]) -> dict[str, Range]:
    """Every option's range: declared ones, then ``default_range``."""
    return {k: declared.get(k) or default_range(k, v) for k, v in defaults.items()}
