"""The Ray executor: tasks as Ray remote functions on a cluster (or a local one); Ray is imported lazily,
the core install does not need it. With an fsspec URL as the cache, each worker keeps a local working copy
on its own machine (``$W2SBENCH_LOCAL_CACHE``) and downloads and uploads whole stages
(w2sbench/_remote_cache.py).
"""

from __future__ import annotations

import dataclasses
import os
import traceback
from collections.abc import Sequence
from typing import Any

from w2sbench.errors import W2SBenchError
from w2sbench.executors._tasks import LoadedPipelines, StageTask, TaskResult, run_task
from w2sbench.progress import Progress

__all__ = ["RayExecutor", "FORWARDED_ENV"]

# Environment the driver passes on to Ray workers (they may have been started with another environment).
FORWARDED_ENV = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "W2SBENCH_DISABLE_PLUGINS")

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
