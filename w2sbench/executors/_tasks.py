"""A run's unit of work: the task (one trust property and seed of a pair), its result, the pipelines a
process has loaded, running one task in this process, and the executor protocol.

A task is JSON-able (settings, model specs, metric, seed, cache folder or URL), so a worker process or a Ray
worker on any machine can rebuild the plugin set and the ``Pipeline`` from it. Every stage goes through the
shared ``StageCache``: a task whose stages another task (or an earlier, killed driver) finished only reads them.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from w2sbench.design import split_pool
from w2sbench.files import stable_hash
from w2sbench.interfaces import ModelSpec
from w2sbench.pipeline import Pipeline
from w2sbench.plugin_manager import Plugins, get_plugins
from w2sbench.progress import Progress
from w2sbench.settings import RunSettings
from w2sbench.stage_cache import StageCache, cache_location
from w2sbench.teachers import strategy_teachers

__all__ = ["StageTask", "TaskResult", "LoadedPipelines", "run_task", "Executor", "LocalExecutor"]


@dataclass(frozen=True)
class StageTask:
    """One unit of work: the weak models of one seed (``train_weak``) or every cell of one seed (``run_seed``)."""
    kind: Literal["train_weak", "run_seed"]
    settings: dict[str, Any]  # RunSettings.as_dict()
    weak: dict[str, Any]  # ModelSpec fields
    strong: dict[str, Any]
    metric: str
    seed: int
    cache_dir: str  # an absolute folder (workers may run in another working directory) or an fsspec URL
    after: tuple[int, ...] = ()  # indices of the tasks (in the same list) that must finish first
    env: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        suffix = " (weak models)" if self.kind == "train_weak" else ""
        return f"{self.settings['pair']}/{self.metric}/seed {self.seed}{suffix}"

    def pipeline_key(self) -> str:
        return stable_hash([self.settings, self.weak, self.strong, self.cache_dir])


@dataclass
class TaskResult:
    """What a task returned (``value``) or why it failed (``error``), with its cache counts."""
    task: StageTask
    value: Any = None
    computed: int = 0
    cached: int = 0
    seconds: float = 0.0
    # stage kind -> [stages computed, their seconds] (StageCache.computed_by_kind / seconds_by_kind)
    stages: dict[str, list[float]] = field(default_factory=dict)
    error: str | None = None
    user_error: tuple[str, str] | None = None  # (problem, fix) of a W2SBenchError: not worth a retry

    @property
    def ok(self) -> bool:
        return self.error is None and self.user_error is None


class LoadedPipelines:
    """The pipelines (one per settings and model pair) and property data one process has loaded, reused across
    the tasks it runs."""
    def __init__(self, plugins: Plugins | None = None, progress: Progress | None = None) -> None:
        self._plugins = plugins
        self.progress = progress or Progress()
        self._pipelines: dict[str, Any] = {}
        self._data: dict[tuple[str, str], Any] = {}

    @property
    def plugins(self) -> Plugins:
        if self._plugins is None:
            self._plugins = get_plugins()
            self._plugins.collect_all()
        return self._plugins

    def pipeline(self, task: StageTask, device: str | None = None) -> Any:
        """The task's Pipeline (``device`` overrides the settings' one, for a driver that only loads data)."""
        key = task.pipeline_key() + (f"@{device}" if device else "")
        if key not in self._pipelines:
            fields = dict(task.settings)
            for name in ("metrics", "strategies", "seeds"):
                fields[name] = tuple(fields[name])
            if device:
                fields["device"] = device
            settings = RunSettings(**fields)
            self._pipelines[key] = Pipeline(
                settings, self.plugins, StageCache(cache_location(task.cache_dir)), self.progress, ModelSpec(**task.weak), ModelSpec(**task.strong)
            )
        return self._pipelines[key]

    def data(self, pipeline: Any, metric_name: str) -> Any:
        """A trust property's data, loaded once per process and option set."""
        key = (stable_hash([pipeline.settings.options[metric_name], pipeline.settings.data_dir, str(pipeline.cache.root)]), metric_name)
        if key not in self._data:
            self._data[key] = pipeline.load_data(self.plugins.trust_properties.get(metric_name))
        return self._data[key]


def run_task(task: StageTask, loaded: LoadedPipelines) -> TaskResult:
    """Run one task in this process; the stage cache turns finished stages into reads."""
    start = time.perf_counter()
    pipeline = loaded.pipeline(task)
    metric = loaded.plugins.trust_properties.get(task.metric)
    data = loaded.data(pipeline, task.metric)
    cache = pipeline.cache
    misses, hits = cache.misses, cache.hits
    counts, seconds = dict(cache.computed_by_kind), dict(cache.seconds_by_kind)
    if task.kind == "train_weak":
        _weak_stages(pipeline, metric, data, task.seed)
        value = None
    else:
        value = pipeline.run_seed(metric, data, task.seed)
    stages = {kind: [n - counts.get(kind, 0), round(cache.seconds_by_kind[kind] - seconds.get(kind, 0.0), 3)]
              for kind, n in cache.computed_by_kind.items() if n > counts.get(kind, 0)}
    return TaskResult(task, value, cache.misses - misses, cache.hits - hits, round(time.perf_counter() - start, 3), stages)


def _weak_stages(pipeline: Any, metric: Any, data: Any, seed: int) -> None:
    """Every stage of the weak cells: training, labels on B for the strategies' teachers, test predictions.

    These are the stages that pairs sharing the weak model have in common; computing them once here means
    the pairs' ``run_seed`` tasks only read them, instead of racing to compute the same stage twice.
    """

    options = pipeline.settings.options[metric.name]
    trained = pipeline.train_weak(metric, data, seed)
    sizes = (int(options["weak_train_size"]), int(options["transfer_size"]), int(options["val_size"]))
    _a, b, _val = split_pool(data.train, seed, sizes)
    strategies = [pipeline.plugins.strategies.get(n) for n in pipeline.settings.strategies]
    teachers = {"weak-reg" if s.regularize_weak else "weak" for s in strategies}
    for cell, (key, path, role) in trained.items():
        if cell in teachers:
            pipeline.predict_stage(key, path, role, b, f"{metric.name} s{seed} {cell} transfer split")
        for name, test in data.tests.items():
            pipeline.predict_stage(key, path, role, test, f"{metric.name} s{seed} {cell} {name}")
        pipeline.model_evaluation_stage(metric, options, data, key, path, role, seed, f"s{seed} {cell}")
    _extra_teacher_stages(pipeline, metric, data, seed, strategies, b)


def _extra_teacher_stages(pipeline: Any, metric: Any, data: Any, seed: int, strategies: list[Any], b: Any) -> None:
    """The other weak supervisors of multi-teacher strategies (w2sbench/teachers.py): trained, labels on B and
    test predictions, once per teacher however many strategies share it."""

    done: set[str] = set()
    for strategy in strategies:
        if len(strategy.teacher_list()) == 1 and strategy.teacher_list()[0].is_default():
            continue
        for key, path in strategy_teachers(pipeline, metric, data, seed, strategy):
            if path.name in done:
                continue
            done.add(path.name)
            for rows in (b, *data.tests.values()):
                pipeline.predict_stage(key, path, "weak", rows)


class Executor(Protocol):
    """Runs a list of tasks (respecting ``after``) and returns one result per task, in order."""
    name: str

    def run(self, tasks: Sequence[StageTask], loaded: LoadedPipelines) -> list[TaskResult]: ...

    def close(self) -> None: ...


class LocalExecutor:
    """Every task in this process, in list order (dependencies come first); the first failure stops the run."""
    name = "local"

    def run(self, tasks: Sequence[StageTask], loaded: LoadedPipelines) -> list[TaskResult]:
        return [run_task(task, loaded) for task in tasks]

    def close(self) -> None:
        pass
