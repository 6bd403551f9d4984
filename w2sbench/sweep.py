"""Sweeps: a YAML grid of pairs x trust properties x strategies x seeds, expanded into cache-aware tasks for an executor.

Phase 1 trains each weak model that several pairs share once per (metric, seed, weak fine-tune settings);
phase 2 runs every (pair, metric, seed), whose shared weak stages are then cache reads. The driver merges
the seeds of each pair and writes its run directory exactly as ``w2sbench run`` does.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from w2sbench.data import default_data_dir
from w2sbench.errors import W2SBenchError, did_you_mean
from w2sbench.executors import EXECUTORS
from w2sbench.files import atomic_write_json
from w2sbench.plugin_manager import Plugins
from w2sbench.run_dir import default_run_dir
from w2sbench.run_pairs import PairJob, SweepOutcome
from w2sbench.runner import RunRequest, prepare
from w2sbench.settings import DEFAULT_SEEDS, data_dir_arg, parse_list, parse_seeds
from w2sbench.stage_cache import cache_location

__all__ = [
    "SweepConfig",
    "load_sweep",
    "parse_sweep",
    "expand_sweep",
    "write_sweep_summary",
]

_KEYS = {
    "pairs": "list of WEAK:STRONG or named pairs (required)",
    "properties": "list of trust properties [all registered]",
    "strategies": "list of strategies [the default ones: `w2sbench list strategies`]",
    "seeds": "list of seeds or a range such as 0-4 [0, 1, 2]",
    "finetune": "head, lora, full or WEAK:STRONG",
    "options": "{PROPERTY: {KEY: VALUE}}",
    "train": "{MODE: {KEY: VALUE}}",
    "data_dir": "dataset mirror [$W2SBENCH_DATA_DIR]",
    "device": "auto, cpu, cuda or cuda:N [auto]",
    "out": "root folder: one run directory per pair [runs/sweep-<config name>]",
    "cache_dir": "stage cache shared by every task: a folder on shared storage or an fsspec URL such as s3://bucket/prefix [<out>/cache]",
    "executor": "local or ray [local]",
    "ray_address": "Ray cluster address [a local cluster]",
    "resources": "{num_cpus: N, num_gpus: N} per Ray task [1 CPU, 0 GPUs]",
    "max_retries": "Ray retries per failed task [2]",
    "allow_weak_larger": "run pairs whose weak model is the larger one [false]",
}
_OLD_KEYS = {"metrics": "properties"}  # deprecated key -> its new name (one release, as run's --metrics)


@dataclass
class SweepConfig:
    """A parsed sweep file."""
    pairs: tuple[str, ...]
    metrics: tuple[str, ...] | None = None  # the trust properties (``properties:``), named as RunRequest names them
    strategies: tuple[str, ...] | None = None
    seeds: tuple[int, ...] = DEFAULT_SEEDS
    finetune: str | None = None
    options: dict[str, dict[str, str]] = field(default_factory=dict)
    train: dict[str, dict[str, str]] = field(default_factory=dict)
    data_dir: str | None = None
    device: str = "auto"
    out: Path = Path("runs/sweep")
    cache_dir: str | Path | None = None  # a folder, or an fsspec URL (a string)
    executor: str = "local"
    ray_address: str | None = None
    resources: dict[str, float] = field(default_factory=dict)
    max_retries: int = 2
    allow_weak_larger: bool = False

    @property
    def shared_cache(self) -> str | Path:
        return self.cache_dir or self.out / "cache"


# ------------------------------------------------------------------------------------------- config


def load_sweep(path: Path) -> SweepConfig:
    """Read and validate a sweep YAML file."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise W2SBenchError(f'The sweep file "{path}" does not exist.', "Pass the path of a YAML file (docs/scale-out.md).")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise W2SBenchError(f"{path} is not valid YAML: {exc}", "Fix the syntax (docs/scale-out.md has an example).") from None
    return parse_sweep(raw, default_out=Path("runs") / f"sweep-{path.stem}", source=str(path))


def parse_sweep(raw: Any, default_out: Path = Path("runs/sweep"), source: str = "the sweep file") -> SweepConfig:
    """Validate a sweep mapping (already loaded from YAML)."""
    if not isinstance(raw, Mapping):
        raise W2SBenchError(f"{source} must hold a mapping (pairs:, properties:, ...).", "See docs/scale-out.md for an example.")
    for key in raw:
        if key in _OLD_KEYS:
            new = _OLD_KEYS[key]
            if new in raw:
                raise W2SBenchError(f'{source} has both "{new}" and "{key}" (its old name).', f"Keep only {new}:.")
            warnings.warn(f'{source}: the key "{key}" is renamed "{new}"; the old name works for one more release.',
                          FutureWarning, stacklevel=1)
        elif key not in _KEYS:
            raise W2SBenchError(
                f'{source} has an unknown key "{key}".' + did_you_mean(str(key), _KEYS),
                "Known keys: " + "; ".join(f"{k} ({v})" for k, v in _KEYS.items()) + ".",
            )
    if "pairs" not in raw:
        raise W2SBenchError(f"{source} names no pairs.", "Add e.g. `pairs: [pythia-70m:pythia-410m]`.")
    pairs = _names(raw["pairs"], "pairs", source)
    seeds_raw = raw.get("seeds", list(DEFAULT_SEEDS))
    if isinstance(seeds_raw, list):
        seeds_raw = ",".join(str(s) for s in seeds_raw)
    executor = str(raw.get("executor", "local"))
    if executor not in EXECUTORS:
        raise W2SBenchError(f'{source}: unknown executor "{executor}".', f"Use one of: {', '.join(EXECUTORS)}.")
    resources = raw.get("resources") or {}
    if not isinstance(resources, Mapping) or set(resources) - {"num_cpus", "num_gpus"}:
        raise W2SBenchError(f"{source}: resources must be a mapping with num_cpus and/or num_gpus.", "Write e.g. `resources: {num_gpus: 1, num_cpus: 4}`.")
    try:
        resources = {k: float(v) for k, v in resources.items()}
        max_retries = int(raw.get("max_retries", 2))
    except (TypeError, ValueError):
        raise W2SBenchError(f"{source}: resources and max_retries must be numbers.", "Write e.g. `max_retries: 2`.") from None
    if any(v < 0 for v in resources.values()) or max_retries < 0:
        raise W2SBenchError(f"{source}: resources and max_retries must not be negative.", "Use 0 or more.")
    out = Path(str(raw["out"])) if raw.get("out") else default_out
    properties = raw.get("properties", raw.get("metrics"))
    return SweepConfig(
        pairs=pairs,
        metrics=_names(properties, "properties", source) if properties else None,
        strategies=_names(raw["strategies"], "strategies", source) if raw.get("strategies") else None,
        seeds=parse_seeds(str(seeds_raw)),
        finetune=str(raw["finetune"]) if raw.get("finetune") else None,
        options=_nested(raw.get("options"), "options", source),
        train=_nested(raw.get("train"), "train", source),
        # as `w2sbench run`: the file's data_dir, else $W2SBENCH_DATA_DIR, else upstream downloads
        data_dir=data_dir_arg(str(raw["data_dir"]) if raw.get("data_dir") else default_data_dir()),
        device=str(raw.get("device", "auto")),
        out=out,
        cache_dir=cache_location(str(raw["cache_dir"])) if raw.get("cache_dir") else None,
        executor=executor,
        ray_address=str(raw["ray_address"]) if raw.get("ray_address") else None,
        resources=resources,
        max_retries=max_retries,
        allow_weak_larger=bool(raw.get("allow_weak_larger", False)),
    )


def _names(value: Any, what: str, source: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return parse_list(value, what)
    if isinstance(value, list) and value and all(isinstance(v, (str, int)) for v in value):
        return parse_list(",".join(str(v) for v in value), what)
    raise W2SBenchError(f"{source}: {what} must be a non-empty list of names.", f"Write e.g. `{what}: [a, b]`.")


def _nested(value: Any, what: str, source: str) -> dict[str, dict[str, str]]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(v, Mapping) for v in value.values()):
        raise W2SBenchError(f"{source}: {what} must map names to {{key: value}} mappings.", f"Write e.g. `{what}: {{fairness: {{weight: 2}}}}`.")
    # Values become the strings the command line would pass, so a sweep and `w2sbench run` parse them alike.
    return {str(k): {str(kk): _as_cli(vv) for kk, vv in v.items()} for k, v in value.items()}


def _as_cli(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


# ------------------------------------------------------------------------------------------- expansion


def expand_sweep(config: SweepConfig, plugins: Plugins, executor: str | None = None) -> list[PairJob]:
    """Validate every pair's settings (nothing runs before all are valid); one run directory per pair."""
    device = config.device
    remote_gpus = (executor or config.executor) == "ray" and device.startswith("cuda") and not _local_cuda()
    if remote_gpus:
        # The GPUs are on the Ray workers, not here: validate on the CPU, record the workers' device.
        if not config.finetune:
            raise W2SBenchError(
                f"device: {device} on a driver without a GPU needs an explicit finetune.",
                "Add e.g. `finetune: full` (the default depends on the device) to the sweep file.",
            )
        device = "cpu"
    jobs: list[PairJob] = []
    for pair_text in config.pairs:
        request = RunRequest(
            pair=pair_text,
            metrics=",".join(config.metrics) if config.metrics else None,
            strategies=",".join(config.strategies) if config.strategies else None,
            seeds=config.seeds,
            finetune=config.finetune,
            options=config.options,
            train=config.train,
            data_dir=config.data_dir,
            device=device,
            allow_weak_larger=config.allow_weak_larger,
        )
        settings, pair = prepare(request, plugins)
        if remote_gpus:
            settings = dataclasses.replace(settings, device=config.device)
        jobs.append(PairJob(settings, pair, config.out / default_run_dir(settings).name))
    seen: dict[Path, str] = {}
    for pair_text, job in zip(config.pairs, jobs):
        if job.run_dir in seen:
            raise W2SBenchError(f'Pairs "{seen[job.run_dir]}" and "{pair_text}" are the same run.', "List each pair once.")
        seen[job.run_dir] = pair_text
    return jobs


def _local_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def write_sweep_summary(out: Path, jobs: Sequence[PairJob], outcome: SweepOutcome, executor: str) -> Path:
    """``<out>/sweep.json``: each pair's run directory and status, and the failed tasks by name."""
    summary = {
        "executor": executor,
        "runs": [
            {"pair": job.settings.pair, "run_dir": str(job.run_dir), "status": "done" if job.run_dir in outcome.results else "failed"}
            for job in jobs
        ],
        "failures": [{"task": name, "error": error} for name, error in outcome.failures],
    }
    path = Path(out) / "sweep.json"
    atomic_write_json(path, json.loads(json.dumps(summary)))
    return path
