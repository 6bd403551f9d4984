"""Worker processes on this machine: a run's (property, seed) tasks on N local processes, each with its
share of the CPU cores (``w2sbench run --workers N``; ``auto``: 2 on a CPU with at least 2 cores).

Why processes: the default pair's stages are small matrix products (two 384-wide layers over a few
thousand tokens) that a second torch thread speeds up far less than twice, and textattack's search is
single-threaded Python. Measured on the 2-core CPU machine (bf16): training the top two layers took
0.67 s with one thread and 0.67 s with two (``benchmarks/stage_throughput.py --threads 1|2``); the
fairness property, one seed with two threads 177 s, two seeds at once with one thread each 206 s:
1.72x the throughput.

Every stage still goes through the shared StageCache, whose per-stage lock (w2sbench/stage_cache.py)
makes a stage that two tasks need (SST-2's models serve ood and adversarial) computed once. A worker's
progress (stage starts, updates, ends, notes) travels to this process, which shows it with its own
display. Workers start with ``spawn``: a forked child of a process whose OpenMP threads have started can
hang. Results are those of the in-process executor up to the last digits that torch's thread count
changes (reductions split differently).
"""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing
import os
import queue
import time
import traceback
import warnings
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

import torch

from w2sbench.errors import W2SBenchError
from w2sbench.executors._tasks import LoadedPipelines, StageTask, TaskResult, run_task
from w2sbench.progress import Progress, StageHandle
from w2sbench.stage_cache import StageNotCached

__all__ = ["ProcessExecutor", "TaskError", "WorkerDied", "WORKERS_ENV", "resolve_workers", "usable_cores"]

WORKERS_ENV = "W2SBENCH_WORKERS"  # the default of --workers, e.g. 1 to keep every task in this process
_POLL_SECONDS = 2.0  # how often a waiting driver checks that its workers are still alive
_UPDATE_SECONDS = 0.25  # a worker forwards a stage's bar updates at most this often


class WorkerDied(W2SBenchError):
    """A worker process ended without reporting (killed, e.g. by the kernel for memory); exit code 1."""

    exit_code = 1


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def resolve_workers(value: str | int | None, device: str) -> int:
    """The number of worker processes for ``--workers VALUE`` (None: ``$W2SBENCH_WORKERS``, else ``auto``).

    ``auto`` is 2 on a CPU device with at least 2 cores (the measurement in this module's docstring), else 1:
    one GPU, or a process of an ``accelerate launch`` (its ranks already share the work). More workers
    multiply memory: each loads its own models. Raises W2SBenchError for anything but ``auto`` or a whole
    number >= 1.
    """
    raw = str(value if value is not None else os.environ.get(WORKERS_ENV, "auto")).strip()
    if raw == "auto":
        launched = int(os.environ.get("WORLD_SIZE", "1")) > 1
        return 2 if device == "cpu" and usable_cores() >= 2 and not launched else 1
    try:
        workers = int(raw)
    except ValueError:
        workers = 0
    if workers < 1:
        source = "--workers" if value is not None else f"${WORKERS_ENV}"
        raise W2SBenchError(f'{source} must be "auto" or a whole number of at least 1, not "{raw}".',
                            "Pass e.g. --workers 2, or --workers 1 to run every task in this process.")
    return workers


# ------------------------------------------------------------------------------------------- workers


class _RelayedStage(StageHandle):
    def __init__(self, progress: _RelayedProgress, stage_id: int) -> None:
        self._progress = progress
        self._id = stage_id
        self._sent = 0.0

    def update(self, done: int, total: int | None = None) -> None:
        now = time.monotonic()
        if now - self._sent >= _UPDATE_SECONDS or (total is not None and done >= total):
            self._sent = now
            self._progress.send(("update", self._id, done, total))


class _RelayedProgress(Progress):
    """A worker's progress display: every event goes to the driver, which shows it."""

    def __init__(self, outbox: Any, worker: int) -> None:
        self._outbox = outbox
        self._worker = worker
        self._ids = itertools.count()

    def send(self, event: tuple[Any, ...]) -> None:
        self._outbox.put(("progress", self._worker, event))

    @contextlib.contextmanager
    def stage(self, name: str, total: int | None = None) -> Iterator[StageHandle]:
        stage_id = next(self._ids)
        self.send(("start", stage_id, name, total))
        failed = True
        try:
            yield _RelayedStage(self, stage_id)
            failed = False
        finally:
            self.send(("end", stage_id, failed))

    def note(self, message: str) -> None:
        self.send(("note", message))

    def warning(self, message: Warning | str, category: type[Warning], *_where: Any, **_kw: Any) -> None:
        """``warnings.showwarning`` in a worker: the warning goes to the driver."""
        self.send(("warning", str(message), category))


def _described(exc: BaseException) -> tuple[str, str]:
    """An exception as words the driver can raise again (not the object: not every exception type survives
    pickling), and its traceback as text."""
    return f"{type(exc).__name__}: {exc}", "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


def _worker_main(index: int, threads: int, inbox: Any, outbox: Any) -> None:
    """A worker's life: take (position, task) messages until None; answer each with its result or error."""
    os.environ["OMP_NUM_THREADS"] = str(threads)  # for anything this process starts
    if threads == 1:
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    torch.set_num_threads(threads)
    progress = _RelayedProgress(outbox, index)
    warnings.showwarning = progress.warning  # the driver shows them, formatted as the CLI formats its own
    loaded = LoadedPipelines(progress=progress)
    try:
        for position, task in iter(inbox.get, None):
            try:
                result = run_task(task, loaded)
            except W2SBenchError as exc:  # subclasses' own constructors do not unpickle: send the words
                outbox.put(("user_error", index, position, (exc.problem, exc.fix, exc.exit_code)))
            except Exception as exc:  # noqa: BLE001 - reported to the driver, which raises it
                outbox.put(("error", index, position, _described(exc)))
            else:
                outbox.put(("result", index, position, result))
    except (KeyboardInterrupt, EOFError, OSError):  # Ctrl-C (the driver reports it), or the driver is gone
        pass


class _Worker:
    def __init__(self, context: Any, index: int, threads: int, outbox: Any) -> None:
        self.index = index
        self.inbox = context.SimpleQueue()
        self.process = context.Process(
            # not a daemon: a plugin may start processes of its own (a daemon may not); stop() ends it
            target=_worker_main, args=(index, threads, self.inbox, outbox), name=f"w2sbench-worker-{index}", daemon=False
        )
        self.process.start()

    def stop(self, wait: bool) -> None:
        if wait and self.process.is_alive():
            self.inbox.put(None)
            self.process.join(timeout=10)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(timeout=10)


# ------------------------------------------------------------------------------------------- driver


class _StageFailed(Exception):
    """Marks a relayed stage as failed in the driver's display."""


class _ProgressRelay:
    """The driver's side of the workers' progress: their stages and notes on its own display."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._open: dict[tuple[int, int], tuple[Any, StageHandle]] = {}

    def show(self, worker: int, event: tuple[Any, ...]) -> None:
        kind = event[0]
        if kind == "note":
            self._progress.note(event[1])
        elif kind == "warning":
            warnings.warn(event[1], event[2], stacklevel=1)
        elif kind == "start":
            _, stage_id, name, total = event
            context = self._progress.stage(name, total)
            self._open[(worker, stage_id)] = (context, context.__enter__())
        elif kind == "update":
            _, stage_id, done, total = event
            if (worker, stage_id) in self._open:
                self._open[(worker, stage_id)][1].update(done, total)
        elif kind == "end" and (worker, event[1]) in self._open:
            context, _handle = self._open.pop((worker, event[1]))
            self._end(context, failed=event[2])

    @staticmethod
    def _end(context: Any, failed: bool) -> None:
        if failed:
            with contextlib.suppress(_StageFailed):
                context.__exit__(_StageFailed, _StageFailed(), None)
        else:
            context.__exit__(None, None, None)

    def close(self) -> None:
        """Stages a stopped worker left open end as failed."""
        for context, _handle in self._open.values():
            self._end(context, failed=True)
        self._open.clear()


def _cost_class(task: StageTask) -> tuple[str, ...]:
    """Tasks expected to cost about the same: one pair's seeds of one trust property."""
    return (str(task.settings.get("pair")), task.metric, task.kind)


def _priority(task: StageTask, position: int, started: Counter[tuple[str, ...]],
              seconds: dict[tuple[str, ...], list[float]]) -> tuple[float, ...]:
    """Which ready task goes first (smallest): a kind not yet measured, round robin over kinds (its first task
    measures it); then the longest expected (mean time of its finished kind), so that the last tasks to
    start are short ones and no worker idles long while another finishes a long task."""
    kind = _cost_class(task)
    if kind not in seconds:
        return (0, started[kind], position)
    return (1, -sum(seconds[kind]) / len(seconds[kind]), position)


def _read_if_cached(task: StageTask, loaded: LoadedPipelines) -> TaskResult | None:
    """The task's result when every stage it needs is in the cache, else None (nothing computed either way)."""
    cache = loaded.pipeline(task).cache
    with cache.probing():
        try:
            return run_task(task, loaded)
        except StageNotCached:
            return None


class TaskError(Exception):
    """A task failed in a worker process with an error that is not the user's to fix (a bug): its type and
    message, the task's name, and the worker's traceback chained (``--debug`` prints it)."""


class _RemoteTraceback(Exception):
    """The worker's traceback, chained to its exception (what ``--debug`` prints)."""

    def __str__(self) -> str:
        return "\n" + str(self.args[0])


def _raise_failure(kind: str, payload: Any, task: StageTask) -> None:
    """Raise a worker's failure here: the user's problem as the same W2SBenchError (problem, fix, exit code),
    anything else as a TaskError naming the task, with the worker's traceback chained."""
    if kind == "user_error":
        problem, fix, exit_code = payload
        error = W2SBenchError(problem, fix)
        error.exit_code = exit_code
        raise error
    message, text = payload
    raise TaskError(f"{message} (in the worker process running {task.name})") from _RemoteTraceback(text)


class ProcessExecutor:
    """The local executor on ``workers`` processes of this machine, ``threads`` torch threads each.

    Tasks start as soon as the tasks they come after have finished; among ready tasks, one of a kind (a
    pair's trust property) not yet measured goes first, round robin over kinds, then the longest expected
    (``_priority``): the costly properties spread over the workers and the run does not end with one
    worker busy on a long task while the other idles. The first failure stops the run like the in-process executor's: the
    workers are stopped (finished stages are cached) and the error is raised here. Tasks whose stages
    are all cached are read in this process first; fewer than two tasks left to compute, or fewer than two
    workers: they run in this process too.
    """

    name = "local"

    def __init__(self, workers: int, threads: int | None = None, progress: Progress | None = None) -> None:
        self.workers = workers
        self.threads = threads or max(1, usable_cores() // max(1, workers))
        self.progress = progress or Progress()

    def run(self, tasks: Sequence[StageTask], loaded: LoadedPipelines) -> list[TaskResult]:
        # Tasks whose stages are all cached are read here: starting workers (importing torch, loading data)
        # would cost a re-run several seconds more than reading them.
        results = [_read_if_cached(task, loaded) for task in tasks]
        todo = [p for p, result in enumerate(results) if result is None]
        if self.workers < 2 or len(todo) < 2:
            for position in todo:
                results[position] = run_task(tasks[position], loaded)
            return [r for r in results if r is not None]
        context = multiprocessing.get_context("spawn")
        outbox = context.Queue()
        pool = [_Worker(context, i, self.threads, outbox) for i in range(min(self.workers, len(todo)))]
        relay = _ProgressRelay(self.progress)
        finished = False
        try:
            self._schedule(tasks, results, todo, pool, outbox, relay)
            finished = True
            return [r for r in results if r is not None]
        finally:
            relay.close()
            for worker in pool:
                worker.stop(wait=finished)

    def close(self) -> None:
        pass  # the workers live as long as one run() call

    def _schedule(
        self, tasks: Sequence[StageTask], results: list[TaskResult | None], todo: list[int], pool: list[_Worker],
        outbox: Any, relay: _ProgressRelay,
    ) -> None:
        """Run the ``todo`` tasks on the workers, filling ``results``; raises the first failure."""
        waiting = list(todo)
        idle = list(pool)
        running: dict[int, int] = {}  # worker index -> task position
        started: Counter[tuple[str, ...]] = Counter()
        seconds: dict[tuple[str, ...], list[float]] = {}  # what finished tasks of each kind took
        while waiting or running:
            ready = [p for p in waiting if all(results[a] is not None for a in tasks[p].after)]
            while idle and ready:
                position = min(ready, key=lambda p: _priority(tasks[p], p, started, seconds))
                ready.remove(position)
                waiting.remove(position)
                started[_cost_class(tasks[position])] += 1
                worker = idle.pop(0)
                worker.inbox.put((position, tasks[position]))
                running[worker.index] = position
            kind, index, *payload = self._receive(outbox, pool, running, tasks)
            if kind == "progress":
                relay.show(index, payload[0])
                continue
            position = running.pop(index)
            idle.append(pool[index])
            if kind != "result":
                _raise_failure(kind, payload[1], tasks[position])
            results[position] = payload[1]
            seconds.setdefault(_cost_class(tasks[position]), []).append(payload[1].seconds)

    @staticmethod
    def _receive(outbox: Any, pool: list[_Worker], running: dict[int, int], tasks: Sequence[StageTask]) -> tuple[Any, ...]:
        """The next message from a worker; raises WorkerDied when a worker with a task has ended."""
        while True:
            try:
                return outbox.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                for index, position in running.items():
                    process = pool[index].process
                    if not process.is_alive():
                        raise WorkerDied(
                            f"The worker process running {tasks[position].name} ended with exit code {process.exitcode} "
                            "(on Linux, -9 is usually the kernel stopping it for lack of memory).",
                            "Finished stages are cached: run the same command again, with --workers 1 if memory is short.",
                        ) from None
