"""From command-line choices to a finished run: validate everything first, then run, then write results."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from w2sbench.design import call_plugin
from w2sbench.errors import W2SBenchError, did_you_mean
from w2sbench.interfaces import TrustProperty
from w2sbench.models import ResolvedPair, check_input_lengths, resolve_pair
from w2sbench.plugin_manager import Plugins
from w2sbench.progress import Progress
from w2sbench.run_pairs import PairJob, execute_pairs
from w2sbench.settings import DEFAULT_SEEDS, RunSettings, parse_finetune, parse_list
from w2sbench.teachers import default_strategies
from w2sbench.training.config import FINETUNE_MODES, TrainConfig, default_train_config
from w2sbench.training.device import resolve_device
from w2sbench.values import TRAIN_RANGES, default_range, resolve_value

__all__ = ["RunRequest", "prepare", "execute", "DEFAULT_PAIR"]

DEFAULT_PAIR = "default"  # a named pair; the built-in models plugin registers it


@dataclass
class RunRequest:
    """What the user asked for, before validation."""
    pair: str = DEFAULT_PAIR
    metrics: str | None = None  # None: every registered trust property
    strategies: str | None = None  # None: every registered strategy with in_default_run
    seeds: Sequence[int] = DEFAULT_SEEDS
    finetune: str | None = None  # None: full on GPU, the pair's CPU choice (or head) on CPU
    options: Mapping[str, Mapping[str, str]] | None = None
    train: Mapping[str, Mapping[str, str]] | None = None
    data_dir: str | None = None
    device: str = "auto"
    allow_weak_larger: bool = False


def _train_configs(overrides: Mapping[str, Mapping[str, str]] | None) -> dict[str, dict[str, Any]]:
    overrides = dict(overrides or {})
    unknown = set(overrides) - set(FINETUNE_MODES)
    if unknown:
        raise W2SBenchError(
            f"Training overrides name unknown mode(s): {', '.join(sorted(unknown))}.",
            f"Write --train MODE.KEY=VALUE with MODE one of {', '.join(FINETUNE_MODES)}.",
        )
    configs = {}
    for mode in FINETUNE_MODES:
        base = default_train_config(mode).as_dict()
        for key, value in (overrides.get(mode) or {}).items():
            if key not in base:
                raise W2SBenchError(
                    f'Unknown training setting "{mode}.{key}".' + did_you_mean(key, base),
                    f"Use one of: {', '.join(sorted(base))}.",
                )
            base[key] = _coerce_train(key, value, base[key], mode)
        configs[mode] = base
    return configs


def _coerce_train(key: str, value: str, default: Any, mode: str = "") -> Any:
    """A ``--train`` value through the same coercer and range check as ``--option`` (w2sbench/values.py)."""
    rng = TRAIN_RANGES.get(key) or default_range(key, default)
    out = resolve_value(value, rng, f"{mode}.{key}" if mode else key, "Training setting", default)
    return (out or None) if key == "lora_targets" else out


def _with_pair_options(
    metric: TrustProperty, pair_options: Mapping[str, Any] | None, user_options: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The named pair's option defaults for ``metric`` updated with the user's (under either an option's current or
    its old name: the user's value wins)."""
    merged = {k: str(v) for k, v in (pair_options or {}).items()}
    for key in user_options or {}:
        for new_name, old_name in metric.renamed_options.items():
            if key == old_name:
                merged.pop(new_name, None)
    return {**merged, **(user_options or {})}


def prepare(request: RunRequest, plugins: Plugins) -> tuple[RunSettings, ResolvedPair]:
    """Validate every choice (names, options, devices) before any expensive work starts."""
    pair = resolve_pair(request.pair, plugins, request.allow_weak_larger)
    metric_names = parse_list(request.metrics, "trust properties") if request.metrics else tuple(plugins.trust_properties.names())
    if not metric_names:
        raise W2SBenchError("No trust property is registered.", "Reinstall w2sbench; its built-in plugins register them.")
    metrics = [plugins.trust_properties.get(n) for n in metric_names]
    strategy_names = (
        parse_list(request.strategies, "strategies") if request.strategies else default_strategies(plugins)
    )
    for name in strategy_names:
        plugins.strategies.get(name)
    user_options = dict(request.options or {})
    for name in user_options:
        if name not in metric_names:
            plugins.trust_properties.get(name)  # did-you-mean for a misspelt trust property
            raise W2SBenchError(
                f'--option names "{name}", which is not among this run\'s trust properties ({", ".join(metric_names)}).',
                f"Add it to --properties (e.g. --properties {','.join([*metric_names, name])}), or drop the option.",
            )
    device = resolve_device(request.device)
    cpu_defaults = not request.finetune and not device.startswith("cuda")  # the named pair's CPU settings apply
    pair_options = (pair.cpu_options or {}) if cpu_defaults else {}
    options = {m.name: m.options(_with_pair_options(m, pair_options.get(m.name), user_options.get(m.name))) for m in metrics}
    for name, opts in options.items():
        for required in ("weak_train_size", "transfer_size", "val_size", "max_length"):
            if required not in opts:
                raise W2SBenchError(
                    f'Trust property "{name}" has no "{required}" option.',
                    "Every trust property must declare split sizes and max_length in default_options (CONTRIBUTING.md).",
                )

    check_input_lengths([(pair.weak, None), (pair.strong, None)], {n: int(o["max_length"]) for n, o in options.items()})
    if request.finetune:
        weak_mode, strong_mode = parse_finetune(request.finetune)
    elif device.startswith("cuda"):
        weak_mode, strong_mode = "full", "full"
    else:
        weak_mode, strong_mode = parse_finetune(pair.cpu_finetune or "head")
    overrides: dict[str, dict[str, Any]] = {}
    if cpu_defaults:
        overrides = {m: {k: str(v) for k, v in kv.items()} for m, kv in (pair.cpu_train or {}).items()}
    for mode, kv in (request.train or {}).items():
        overrides.setdefault(mode, {}).update(kv)
    train = _train_configs(overrides)
    for mode in {weak_mode, strong_mode}:
        fields: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in train[mode].items()}
        TrainConfig(**fields)
    for metric in metrics:  # a regularizer's options and its fit to each phase's fine-tune mode, before any training
        _check_regularizer(metric, options[metric.name], {"weak": weak_mode, "strong": strong_mode})
    settings = RunSettings(
        pair=pair.pair_name or request.pair,
        weak=pair.weak.name,
        strong=pair.strong.name,
        metrics=tuple(metric_names),
        strategies=tuple(strategy_names),
        seeds=tuple(request.seeds),
        finetune_weak=weak_mode,
        finetune_strong=strong_mode,
        options=options,
        train={m: train[m] for m in sorted({weak_mode, strong_mode})},
        data_dir=request.data_dir,
        device=device,
    )
    return settings, pair


def _check_regularizer(metric: TrustProperty, options: Mapping[str, Any], modes: Mapping[str, str]) -> None:
    regularizer = call_plugin(metric, "build its regularizer", lambda: metric.regularizer(options))
    for role, mode in modes.items():
        call_plugin(metric, "build its regularizer", lambda role=role, mode=mode: regularizer.for_training(role, mode))


def execute(
    settings: RunSettings,
    pair: ResolvedPair,
    run_dir: Path,
    plugins: Plugins,
    progress: Progress,
    reconfigure: bool = False,
    cache_dir: str | Path | None = None,
    executor: Any = None,
) -> dict[str, Any]:
    """Run (or resume) every stage on ``executor`` (None: in this process) and write results.json; returns it.

    ``cache_dir`` is a folder or an fsspec URL (``s3://bucket/prefix``); the run directory is always local.
    """
    # The same task machinery as `w2sbench sweep` (w2sbench/run_pairs.py), for one pair.
    run_dir = Path(run_dir)
    outcome = execute_pairs([PairJob(settings, pair, run_dir)], plugins, progress, executor, cache_dir, reconfigure)
    outcome.raise_for_failures()
    return outcome.results[run_dir]
