"""Where a run's per-seed tasks execute: in this process (``local``, the default) or on a Ray cluster.

A task is JSON-able (settings, model specs, metric, seed, cache folder or URL), so a Ray worker on any
machine can rebuild the plugin set and the ``Pipeline`` from it. Every stage goes through the shared
``StageCache``: a task whose stages another task (or an earlier, killed driver) finished only reads them.
With an fsspec URL as the cache, each worker keeps a local working copy on its own machine
(``$W2SBENCH_LOCAL_CACHE``) and downloads and uploads whole stages (w2sbench/_remote_cache.py).
Ray is imported lazily; the core install does not need it.
"""

from __future__ import annotations

import dataclasses
import os
import time
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from w2sbench.design import split_pool
from w2sbench.errors import W2SBenchError
from w2sbench.files import stable_hash
from w2sbench.interfaces import ModelSpec
from w2sbench.pipeline import Pipeline
from w2sbench.plugin_manager import Plugins, get_plugins
from w2sbench.progress import Progress
from w2sbench.settings import RunSettings
from w2sbench.stage_cache import StageCache, cache_location
from w2sbench.teachers import strategy_teachers

__all__ = [
    "StageTask",
    "TaskResult",
    "LoadedPipelines",
    "Executor",
    "LocalExecutor",
    "RayExecutor",
    "make_executor",
    "run_task",
    "EXECUTORS",
    "FORWARDED_ENV",
]

EXECUTORS = ("local", "ray")
# Environment the driver passes on to Ray workers (they may have been started with another environment).
FORWARDED_ENV = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "W2SBENCH_DISABLE_PLUGINS")


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
    misses, hits = pipeline.cache.misses, pipeline.cache.hits
    if task.kind == "train_weak":
        _weak_stages(pipeline, metric, data, task.seed)
        value = None
    else:
        value = pipeline.run_seed(metric, data, task.seed)
    return TaskResult(
        task, value, pipeline.cache.misses - misses, pipeline.cache.hits - hits, round(time.perf_counter() - start, 3)
    )


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
            pipeline.predict_stage(key, path, role, b)
        for test in data.tests.values():
            pipeline.predict_stage(key, path, role, test)
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


# ------------------------------------------------------------------------------------------- Ray

_WORKER_PIPELINES: LoadedPipelines | None = None


def _ray_task(task: StageTask, *_dependencies: Any) -> TaskResult:
    """The body of a Ray task: rebuild plugins and Pipeline in the worker (once per worker process)."""
    global _WORKER_PIPELINES
    for key, value in task.env.items():
        os.environ[key] = value
    if _WORKER_PIPELINES is None:
        _WORKER_PIPELINES = LoadedPipelines()
    try:
        return run_task(task, _WORKER_PIPELINES)
    except W2SBenchError as exc:
        # A problem the user must fix fails the same way every time: report it instead of retrying.
        return TaskResult(task, user_error=(exc.problem, exc.fix))


class RayExecutor:
    """Tasks as Ray remote functions; ``address=None`` starts (or joins) a local cluster."""
    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        num_cpus: float = 1,
        num_gpus: float = 0,
        max_retries: int = 2,
        progress: Progress | None = None,
    ) -> None:
        if max_retries < 0 or num_cpus < 0 or num_gpus < 0:
            raise W2SBenchError("Ray resources and --max-retries must not be negative.", "Pass 0 or more.")
        self.address = address
        self.num_cpus = num_cpus
        self.num_gpus = num_gpus
        self.max_retries = max_retries
        self.progress = progress or Progress()
        self._started = False

    def _ray(self) -> Any:
        try:
            import ray
        except ImportError:
            raise W2SBenchError(
                "The ray executor needs Ray, which is not installed.", 'Install it with: pip install "w2sbench[ray]"'
            ) from None
        if not ray.is_initialized():
            try:
                ray.init(address=self.address, include_dashboard=False, log_to_driver=False)
            except (ConnectionError, ValueError, RuntimeError) as exc:
                raise W2SBenchError(
                    f"Could not connect to the Ray cluster at {self.address or 'a new local cluster'}: {exc}",
                    "Start one with `ray start --head` and pass its address (--ray-address HOST:6379), or omit "
                    "--ray-address to start a local cluster.",
                ) from None
            self._started = True
        return ray

    def run(self, tasks: Sequence[StageTask], loaded: LoadedPipelines) -> list[TaskResult]:
        ray = self._ray()
        remote = ray.remote(_ray_task).options(
            num_cpus=self.num_cpus, num_gpus=self.num_gpus, max_retries=self.max_retries, retry_exceptions=True,
            name="w2sbench-stage",
        )
        env = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
        refs: list[Any] = []
        for task in tasks:  # dependencies come first in the list, so their refs exist already
            task = dataclasses.replace(task, env={**env, **task.env})
            refs.append(remote.remote(task, *(refs[i] for i in task.after)))
        index = {ref: i for i, ref in enumerate(refs)}
        results: list[TaskResult | None] = [None] * len(tasks)
        pending = list(refs)
        with self.progress.stage(f"ray: {len(tasks)} tasks", total=len(tasks)) as bar:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                i = index[done[0]]
                try:
                    results[i] = ray.get(done[0])
                except Exception as exc:  # noqa: BLE001 - a task that failed all its tries is reported by name
                    results[i] = TaskResult(tasks[i], error=_describe(exc))
                bar.update(len(tasks) - len(pending), len(tasks))
        return [r for r in results if r is not None]

    def close(self) -> None:
        if self._started:
            import ray

            ray.shutdown()
            self._started = False


def _describe(exc: BaseException) -> str:
    """One line for a failed Ray task: the original exception, not Ray's wrapper."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException):
        exc = cause
    lines = traceback.format_exception_only(type(exc), exc)
    return lines[-1].strip() if lines else type(exc).__name__


def make_executor(
    name: str,
    address: str | None = None,
    resources: Mapping[str, float] | None = None,
    max_retries: int = 2,
    progress: Progress | None = None,
) -> Executor:
    """An executor by name (``local`` or ``ray``)."""
    if name == "local":
        if address:
            raise W2SBenchError("--ray-address was given but the executor is local.", "Add --executor ray, or drop --ray-address.")
        return LocalExecutor()
    if name == "ray":
        resources = dict(resources or {})
        return RayExecutor(address, float(resources.get("num_cpus", 1)), float(resources.get("num_gpus", 0)), max_retries, progress)
    raise W2SBenchError(f'Unknown executor "{name}".', f"Use one of: {', '.join(EXECUTORS)}.")
