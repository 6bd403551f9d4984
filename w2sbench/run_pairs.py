"""Running pairs: each (pair, trust property, seed) as a cache-aware task on an executor, then results.json.

Phase 1 trains each weak model that several pairs share once per (property, seed, weak fine-tune settings);
phase 2 runs every (pair, property, seed), whose shared weak stages are then cache reads. The driver merges
the seeds of each pair and writes its run directory. ``w2sbench run`` is one pair; ``w2sbench sweep`` many.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from w2sbench.errors import W2SBenchError
from w2sbench.executors import Executor, LoadedPipelines, LocalExecutor, StageTask, TaskResult
from w2sbench.files import stable_hash
from w2sbench.models import ResolvedPair
from w2sbench.outcomes import PropertyOutcome
from w2sbench.plugin_manager import Plugins
from w2sbench.progress import Progress
from w2sbench.results import RESULTS_FILE, build_property_result, build_results, write_results
from w2sbench.run_dir import claim_run_dir
from w2sbench.stage_cache import RunLock, StageCache, cache_location, is_url
from w2sbench.teachers import strategy_definition
from w2sbench.timing_history import earlier_invocations
from w2sbench.training import distributed

__all__ = ["PairJob", "SweepOutcome", "TasksFailed", "plan_tasks", "execute_pairs", "note_cache_use", "stage_time"]


class TasksFailed(W2SBenchError):
    """Some tasks failed after their retries (exit code 1: not necessarily the user's to fix)."""

    exit_code = 1


@dataclass
class PairJob:
    """One pair of a sweep: validated settings and its run directory."""

    settings: Any  # RunSettings
    pair: ResolvedPair
    run_dir: Path


@dataclass
class SweepOutcome:
    """Each finished pair's results document, and the tasks that failed (by name)."""

    results: dict[Path, dict[str, Any]] = field(default_factory=dict)
    failures: list[tuple[str, str]] = field(default_factory=list)
    user_errors: list[tuple[str, str]] = field(default_factory=list)  # (problem, fix)

    def raise_for_failures(self) -> None:
        if self.user_errors:
            raise W2SBenchError(*self.user_errors[0])
        if self.failures:
            raise TasksFailed(
                f"{len(self.failures)} task(s) failed: " + "; ".join(f"{n}: {e}" for n, e in self.failures),
                "Finished stages are cached; rerun the same command to retry only what is missing (--debug shows more).",
            )


def plan_tasks(jobs: Sequence[PairJob], cache_dirs: Sequence[str | Path]) -> tuple[list[StageTask], list[int]]:
    """Tasks in dependency order, and the job each belongs to (phase-1 tasks: the first pair that needs them)."""
    tasks: list[StageTask] = []
    owners: list[int] = []
    phase2: list[tuple[int, StageTask]] = []
    groups: dict[str, list[int]] = {}
    for j, (job, cache) in enumerate(zip(jobs, cache_dirs)):
        s = job.settings
        for metric in s.metrics:
            for seed in s.seeds:
                task = StageTask(
                    "run_seed", s.as_dict(), dataclasses.asdict(job.pair.weak), dataclasses.asdict(job.pair.strong),
                    metric, seed, str(cache) if is_url(cache) else str(Path(cache).resolve()),
                )
                phase2.append((j, task))
                # Everything the weak stages of this seed depend on (the strong model is not part of it).
                weak_key = stable_hash([task.weak, s.finetune_weak, s.train[s.finetune_weak], metric, s.options[metric],
                                        s.data_dir, s.device, seed, task.cache_dir])
                groups.setdefault(weak_key, []).append(len(phase2) - 1)
    after: dict[int, tuple[int, ...]] = {}
    for members in groups.values():
        if len({phase2[m][0] for m in members}) < 2:
            continue  # one pair only: its run_seed task trains the weak models itself
        j, first = phase2[members[0]]
        tasks.append(dataclasses.replace(first, kind="train_weak"))
        owners.append(j)
        for m in members:
            after[m] = (len(tasks) - 1,)
    for m, (j, task) in enumerate(phase2):
        tasks.append(dataclasses.replace(task, after=after.get(m, ())))
        owners.append(j)
    return tasks, owners


def _claim(job: PairJob, plugins: Plugins, reconfigure: bool, progress: Progress) -> None:
    """Claim the job's run directory (``run_dir.claim_run_dir``); say first when it resumes an unfinished
    attempt, so a resumed run does not look like a fresh start until its last line."""
    renamed = {m: plugins.trust_properties.get(m).renamed_options for m in job.settings.metrics}
    unfinished = (job.run_dir / "run.json").exists() and not (job.run_dir / RESULTS_FILE).exists()
    claim_run_dir(job.run_dir, job.settings, reconfigure, renamed)
    if unfinished:
        progress.note(f"resuming {job.run_dir}: stages an earlier attempt finished are read from the cache")


def stage_time(metrics: Sequence[str], results: Sequence[TaskResult]) -> dict[str, dict[str, dict[str, float]]]:
    """Per trust property and stage kind ("train", "predict", "live"): the stages this invocation computed and
    their seconds, summed over the worker processes that ran them (results.json ``timing.stages``)."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for metric in metrics:
        kinds: dict[str, dict[str, float]] = {}
        for result in results:
            if result.task.metric != metric:
                continue
            for kind, (computed, seconds) in result.stages.items():
                entry = kinds.setdefault(kind, {"computed": 0, "seconds": 0.0})
                entry["computed"] += int(computed)
                entry["seconds"] = round(entry["seconds"] + seconds, 3)
        out[metric] = dict(sorted(kinds.items()))
    return out


def note_cache_use(progress: Progress, metrics: Sequence[str], results: Sequence[TaskResult]) -> None:
    """One progress line per trust property: ``ood: 73 stages computed (train 189 s, predict 313 s), 12 read
    from the stage cache (...)``; the seconds are stage time, summed over worker processes.

    Cached stages print no line of their own (a fully cached run would otherwise log hundreds). A first run
    reads some too: a stage two of its cells share (the regularized weak model, its labels) is computed once."""
    times = stage_time(metrics, results)
    for metric in metrics:
        mine = [r for r in results if r.task.metric == metric]
        cached, computed = sum(r.cached for r in mine), sum(r.computed for r in mine)
        spent = ", ".join(f"{kind} {entry['seconds']:.0f} s" for kind, entry in times[metric].items())
        progress.note(f"{metric}: {computed} stages computed{f' ({spent})' if spent else ''}, {cached} read from the "
                      "stage cache (computed by an earlier run, or shared by cells of this one)")


# ------------------------------------------------------------------------------------------- driver


def execute_pairs(
    jobs: Sequence[PairJob],
    plugins: Plugins,
    progress: Progress,
    executor: Executor | None = None,
    cache_dir: str | Path | None = None,
    reconfigure: bool = False,
) -> SweepOutcome:
    """Run every pair's tasks on the executor, then write each pair's run directory (results.json)."""
    executor = executor or LocalExecutor()
    start = time.perf_counter()
    outcome = SweepOutcome()
    # Under `accelerate launch` every rank runs this; only rank 0 locks, cleans and writes (training/distributed.py).
    dist = distributed.current(cpu=not any(job.settings.device.startswith("cuda") for job in jobs))
    for job in jobs:
        dist.check_device(job.settings.device)
    if dist.world > 1 and not isinstance(executor, LocalExecutor):
        raise W2SBenchError(
            f"This process is one of {dist.world} launched by accelerate/torchrun; the {executor.name} executor cannot join them.",
            "Drop --executor (the local executor trains each model on all the launched processes), or run without accelerate launch.",
        )
    # A folder, or an fsspec URL: then each machine works in a local copy that mirrors it (stage_cache.StageCache).
    caches = [cache_location(cache_dir) if cache_dir else job.run_dir / "cache" for job in jobs]
    with contextlib.ExitStack() as stack:
        for job in jobs if dist.is_main else ():
            stack.enter_context(RunLock(job.run_dir))
            _claim(job, plugins, reconfigure, progress)
        for root in {c if is_url(c) else Path(c).resolve() for c in caches}:
            if dist.is_main:
                StageCache(root).clean_partial()  # temporary folders of a killed earlier driver
        tasks, owners = plan_tasks(jobs, caches)
        loaded = LoadedPipelines(plugins, progress)
        # The driver's own pipelines only load data and name the models; a local executor (in this process, or
        # reading cached tasks here before it starts worker processes) reuses them.
        driver_device = None if executor.name == "local" else "cpu"
        first_task = {owners[i]: t for i, t in reversed(list(enumerate(tasks)))}
        pipelines = [loaded.pipeline(first_task[j], driver_device) for j in range(len(jobs))]
        data = {(j, m): loaded.data(pipelines[j], m) for j, job in enumerate(jobs) for m in job.settings.metrics}
        done: list[TaskResult] = executor.run(tasks, loaded)
        for result in done:
            if result.user_error:
                outcome.user_errors.append(result.user_error)
                outcome.failures.append((result.task.name, result.user_error[0]))
            elif result.error:
                outcome.failures.append((result.task.name, result.error))
        for j, job in enumerate(jobs):
            mine = [r for r, owner in zip(done, owners) if owner == j]
            if not all(r.ok for r in mine):
                continue
            note_cache_use(progress, job.settings.metrics, mine)
            by_cell = {(r.task.metric, r.task.seed): r.value for r in mine if r.task.kind == "run_seed"}
            strategies = [plugins.strategies.get(n) for n in job.settings.strategies]
            # the findings' bootstrap kept for a re-run (rank 0 writes; a mirrored URL cache: computed each time)
            findings_cache = StageCache(caches[j]) if dist.is_main and not is_url(caches[j]) else None
            properties: dict[str, Any] = {}
            outcomes: dict[str, PropertyOutcome] = {}
            for name in job.settings.metrics:
                merged = PropertyOutcome(data[(j, name)], {seed: by_cell[(name, seed)] for seed in job.settings.seeds})
                outcomes[name] = merged
                properties[name] = build_property_result(plugins.trust_properties.get(name), strategies, merged,
                                                         job.settings.options[name], cache=findings_cache)
            timing = {
                "seconds": round(time.perf_counter() - start, 3),
                "stages_computed": sum(r.computed for r in mine),
                "stages_cached": sum(r.cached for r in mine),
                "stages": stage_time(job.settings.metrics, mine),
            }
            models = {role: r.identity for role, r in pipelines[j].roles.items()}
            definitions = {s.name: strategy_definition(s, plugins) for s in strategies}
            # the invocations before this one that wrote this run directory (a cached re-run keeps the cold run's time)
            earlier = earlier_invocations(job.run_dir / RESULTS_FILE, job.settings.as_dict()) if dist.is_main else []
            results = build_results(job.settings.as_dict(), models, properties, timing, definitions, earlier)
            if dist.is_main:
                write_results(job.run_dir, results, outcomes)
            outcome.results[job.run_dir] = results
    return outcome
