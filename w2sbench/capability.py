"""Capability retention: evaluate a run's final strong models with lm-eval on standard tasks.

Our trained models are classifiers (backbone + head). For a decoder backbone we build the base
model's ``AutoModelForCausalLM``, load the trained backbone weights into it (LoRA adapters merged
first) and hand it to ``lm_eval.simple_evaluate``; the pretrained strong model is evaluated the same
way as the reference. Scores are cached per (trained model, tasks, limit) in the run's stage cache
and written into results.json under ``capability``.
"""

from __future__ import annotations

import importlib.metadata
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from w2sbench.data import file_sha256
from w2sbench.design import BASELINE_CELLS
from w2sbench.errors import W2SBenchError, did_you_mean
from w2sbench.files import atomic_write_json, stable_hash
from w2sbench.finite import json_safe
from w2sbench.jsonio import loads_strict
from w2sbench.language_model import causal_lm
from w2sbench.models import resolve_pair, same_model
from w2sbench.outcomes import TrainedModel
from w2sbench.pipeline import Pipeline
from w2sbench.progress import Progress
from w2sbench.results import RESULTS_FILE, load_results
from w2sbench.settings import RunSettings
from w2sbench.stage_cache import RunLock, StageCache, cache_location
from w2sbench.training.device import resolve_device

__all__ = ["run_capability", "lm_eval_scores"]


class _CachedOnly(StageCache):
    """A stage cache that serves finished stages and refuses to train anything."""
    def compute(self, kind: str, key: Any, produce: Callable[[Path], None], record: bool = True) -> Path:
        found = self.get(kind, key)
        if found is None and kind in {"train", "predict", "live"}:
            raise W2SBenchError(
                f"A {kind} stage of this run is not in the cache at {self.location}.",
                "Finish the run first (`w2sbench run` with the same arguments), or pass the --cache-dir it used.",
            )
        return found if found is not None else super().compute(kind, key, produce, record)


def lm_eval_scores(
    model: Any, tokenizer: Any, tasks: Sequence[str], limit: int | None, num_fewshot: int | None,
    task_manager: Any, batch_size: int = 8,
) -> dict[str, dict[str, float]]:
    """lm-eval's numeric results per task (e.g. ``acc,none``, ``acc_stderr,none``)."""
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM

    try:
        out = simple_evaluate(
            model=HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size),
            tasks=list(tasks), limit=limit, num_fewshot=num_fewshot, task_manager=task_manager,
        )
    except Exception as exc:  # noqa: BLE001 - lm-eval raises many kinds; the user needs the message, not the type
        raise W2SBenchError(
            f"lm-eval failed on {', '.join(tasks)}: {type(exc).__name__}: {exc}",
            "Check that the tasks' datasets are in the Hugging Face cache when offline, or pass local tasks with "
            "--include-path (see `w2sbench export-lm-eval`). --debug shows the traceback.",
        ) from exc
    return {
        task: {k: float(v) for k, v in scores.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        for task, scores in out["results"].items()
    }


def _task_manager(tasks: Sequence[str], include_path: Path | None) -> Any:
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=str(include_path) if include_path else None)
    known = set(manager.all_tasks)
    for task in tasks:
        if task not in known:
            raise W2SBenchError(
                f'lm-eval has no task "{task}".' + did_you_mean(task, sorted(known)),
                "List tasks with `lm_eval --tasks list`; for w2sbench's own tasks pass --include-path DIR "
                "(written by `w2sbench export-lm-eval DIR`).",
            )
    return manager


def _include_hash(include_path: Path | None) -> str | None:
    if include_path is None:
        return None

    files = sorted(p for p in Path(include_path).rglob("*") if p.is_file() and p.suffix in {".yaml", ".yml", ".jsonl", ".json", ".py"})
    return stable_hash([(str(p.relative_to(include_path)), file_sha256(p)) for p in files])


def _recorded_settings(results: Mapping[str, Any], device: str | None) -> RunSettings:
    """The finished run's settings as recorded in results.json, on ``device`` (default: CUDA when present)."""
    import torch

    recorded = dict(results["settings"])
    for key in ("metrics", "strategies", "seeds"):
        recorded[key] = tuple(recorded[key])
    recorded["device"] = resolve_device(device) if device else ("cuda" if torch.cuda.is_available() else "cpu")
    return RunSettings(**{k: recorded[k] for k in RunSettings.__dataclass_fields__ if k in recorded})


def _chosen_cells(settings: RunSettings, cells: Sequence[str] | None) -> list[str]:
    """The strong-model cells to evaluate (default: all); W2SBenchError names an unknown or weak cell."""
    strong_cells = ["ceiling", "ceiling-reg", *settings.strategies]
    chosen = list(cells) if cells else strong_cells
    for cell in chosen:
        if cell not in strong_cells:
            raise W2SBenchError(
                f'"{cell}" is not a strong-model cell of this run.' + did_you_mean(cell, strong_cells),
                f"Use some of: {', '.join(strong_cells)} (weak cells are not strong models).",
            )
    return chosen


def _cell_scores(
    trained_per_seed: Mapping[int, Mapping[str, TrainedModel]], chosen: Sequence[str],
    score: Callable[[TrainedModel], dict[str, Any]],
) -> dict[str, dict[str, Any]]:
    """``{cell: {seed: scores}}`` for the chosen cells of every seed; ``score`` maps a trained model to its
    lm-eval scores. Baseline cells a seed did not train are skipped."""
    per_cell: dict[str, dict[str, Any]] = {}
    for seed, trained in trained_per_seed.items():
        for cell in chosen:
            if cell in BASELINE_CELLS and cell not in trained:
                continue
            per_cell.setdefault(cell, {})[str(seed)] = score(trained[cell])
    return per_cell


def run_capability(
    run_dir: Path,
    plugins: Any,
    tasks: Sequence[str],
    limit: int | None = None,
    num_fewshot: int | None = None,
    cells: Sequence[str] | None = None,
    include_path: Path | None = None,
    cache_dir: str | Path | None = None,
    device: str | None = None,
    batch_size: int = 8,
) -> dict[str, Any]:
    """Evaluate the pretrained and the trained strong models of a finished run; store the scores in results.json."""
    run_dir = Path(run_dir)
    results = load_results(run_dir)
    settings = _recorded_settings(results, device)
    chosen = _chosen_cells(settings, cells)
    manager = _task_manager(tasks, include_path)
    with RunLock(run_dir):
        pair = resolve_pair(settings.pair, plugins)  # the pair text as the user gave it (names or folders)
        weak, strong = pair.weak, pair.strong
        cache = _CachedOnly(cache_location(cache_dir) if cache_dir else run_dir / "cache")
        pipeline = Pipeline(settings, plugins, cache, Progress(), weak, strong)
        if not same_model(results["models"]["strong"], pipeline.roles["strong"].identity):
            raise W2SBenchError(
                f"The strong model {settings.strong} on this machine differs from the one the run used.",
                "Install the same model version (results.json `models.strong` records its identity).",
            )
        role = pipeline.roles["strong"]
        version = importlib.metadata.version("lm_eval")
        base_key = {"tasks": list(tasks), "limit": limit, "num_fewshot": num_fewshot, "lm_eval": version, "include": _include_hash(include_path)}

        def evaluate(model_key: Any, build: Any) -> dict[str, dict[str, float]]:
            def produce(tmp: Path) -> None:
                tokenizer, _ = pipeline.models.base(role)
                model = build().to(settings.device)
                scores = lm_eval_scores(model, tokenizer, tasks, limit, num_fewshot, manager, batch_size)
                (tmp / "scores.json").write_text(json.dumps(json_safe(scores), allow_nan=False))

            path = cache.compute("capability", {**base_key, "model": model_key}, produce)
            return loads_strict((path / "scores.json").read_text())

        base = evaluate(role.key, lambda: causal_lm(role.spec, role.folder))
        models: dict[str, dict[str, dict[str, Any]]] = {}
        notes = []
        if role.mode == "head":
            notes.append("strong models were trained with a frozen backbone (head mode): their LM is the pretrained one")
        for name in settings.metrics:
            outcome = pipeline.run_metric(plugins.trust_properties.get(name))
            models[name] = _cell_scores(outcome.models, chosen, lambda trained: (
                base if role.mode == "head" else evaluate(
                    stable_hash(trained.key),
                    lambda: causal_lm(role.spec, role.folder, pipeline.models.load_trained(trained.key, trained.path, trained.role).backbone),
                )
            ))
        capability = {
            "tasks": list(tasks),
            "limit": limit,
            "num_fewshot": num_fewshot,
            "lm_eval_version": version,
            "include_path": str(Path(include_path).resolve()) if include_path else None,
            "base": base,
            "models": models,
            "notes": notes,
        }
        # Re-read under the lock so nothing written since load_results is lost, then replace atomically.
        current = loads_strict((run_dir / RESULTS_FILE).read_text())
        current["capability"] = capability
        atomic_write_json(run_dir / RESULTS_FILE, current)
    return capability

