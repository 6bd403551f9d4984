"""Where a run's (property, seed) tasks execute: in this process (``local``, the default), on local worker
processes (``local`` with ``workers`` > 1) or on a Ray cluster (``ray``).

    _tasks.py      the task, its result, the pipelines a process has loaded, running a task in this process
    _processes.py  the local executor on N worker processes of this machine (``--workers``)
    _ray.py        tasks as Ray remote functions

Every executor runs the same task list through the same pipeline and the shared stage cache, so a task
whose stages another task (or an earlier, killed driver) finished only reads them.
"""

from __future__ import annotations

from collections.abc import Mapping

from w2sbench.errors import W2SBenchError
from w2sbench.executors._processes import (
    WORKERS_ENV,
    ProcessExecutor,
    TaskError,
    WorkerDied,
    resolve_workers,
    usable_cores,
)
from w2sbench.executors._ray import FORWARDED_ENV, RayExecutor
from w2sbench.executors._tasks import Executor, LoadedPipelines, LocalExecutor, StageTask, TaskResult, run_task
from w2sbench.progress import Progress

__all__ = [
    "StageTask",
    "TaskResult",
    "LoadedPipelines",
    "Executor",
    "LocalExecutor",
    "ProcessExecutor",
    "RayExecutor",
    "TaskError",
    "WorkerDied",
    "make_executor",
    "resolve_workers",
    "run_task",
    "usable_cores",
    "EXECUTORS",
    "FORWARDED_ENV",
    "WORKERS_ENV",
]

EXECUTORS = ("local", "ray")


def make_executor(
    name: str,
    address: str | None = None,
    resources: Mapping[str, float] | None = None,
    max_retries: int = 2,
    progress: Progress | None = None,
    workers: str | int | None = 1,
    device: str = "cpu",
) -> Executor:
    """An executor by name (``local`` or ``ray``); the local one on worker processes when ``workers`` (a
    ``--workers`` value: a count, ``auto``, or None for ``$W2SBENCH_WORKERS``; see ``resolve_workers``) comes
    to more than one for ``device``.

    Raises W2SBenchError for an unknown name, a Ray address without Ray, or more than one worker with Ray."""
    if name == "local":
        if address:
            raise W2SBenchError("--ray-address was given but the executor is local.", "Add --executor ray, or drop --ray-address.")
        count = resolve_workers(workers, device)
        return ProcessExecutor(count, progress=progress) if count > 1 else LocalExecutor()
    workers = resolve_workers(workers, device) if workers is not None else 1  # Ray ignores the default
    if workers > 1:
        raise W2SBenchError(f"--workers {workers} applies to the local executor; Ray places the tasks itself.",
                            "Drop --workers, or drop --executor ray.")
    if name == "ray":
        resources = dict(resources or {})
        return RayExecutor(address, float(resources.get("num_cpus", 1)), float(resources.get("num_gpus", 0)), max_retries, progress)
    raise W2SBenchError(f'Unknown executor "{name}".', f"Use one of: {', '.join(EXECUTORS)}.")
