"""The local executor on worker processes (``--workers``): the same results as one process, each stage
computed once although two workers need it, progress shown by the driver, errors as one message."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SMALL_FAIRNESS
from w2sbench.cli import main
from w2sbench.errors import W2SBenchError
from w2sbench.executors import ProcessExecutor, StageTask, _processes, make_executor, resolve_workers, usable_cores
from w2sbench.results import load_results
from w2sbench.stage_cache import StageCache


def _run(tiny_models, data_dir, out: Path, *extra: str) -> list[str]:
    pair = f"{tiny_models['bert']}:{tiny_models['bert-big']}"
    return ["run", "--seeds", "0,1", "--pair", pair, "--properties", "fairness", "--finetune", "head",
            "--data-dir", str(data_dir), "--out", str(out), *SMALL_FAIRNESS, *extra]


def _without_seconds(value: Any) -> Any:
    """A results document without the training times (every score and interval kept)."""
    if isinstance(value, dict):
        return {k: _without_seconds(v) for k, v in value.items() if k != "seconds"}
    if isinstance(value, list):
        return [_without_seconds(v) for v in value]
    return value


def _no_worker(*_args: Any) -> None:
    raise AssertionError("a worker process was started")


def _computed(out: Path) -> list[str]:
    return (out / "cache" / "computed.log").read_text().split()


@pytest.mark.slow
def test_two_workers_give_the_results_of_one_process_and_compute_each_stage_once(tiny_models, data_dir, tmp_path, capsys, monkeypatch):
    one, two = tmp_path / "one", tmp_path / "two"
    assert main(_run(tiny_models, data_dir, one, "--quiet")) == 0
    assert main(_run(tiny_models, data_dir, two, "--workers", "2")) == 0, capsys.readouterr().err
    err = capsys.readouterr().err
    # both seeds need the same feature stages at the same time: the stage lock lets one worker compute them
    assert sorted(_computed(two)) == sorted(_computed(one))
    assert len(set(_computed(two))) == len(_computed(two))
    assert _without_seconds(load_results(two)["properties"]) == _without_seconds(load_results(one)["properties"])
    # the workers' stages are shown by the driver, one line each when they finish
    assert "done train fairness s0 ceiling" in err and "done train fairness s1 ceiling" in err
    assert "Traceback" not in err
    # a re-run with workers reads everything from the cache, in the driver: no worker process starts
    monkeypatch.setattr(_processes, "_Worker", _no_worker)
    assert main(_run(tiny_models, data_dir, two, "--workers", "2", "--quiet")) == 0
    assert load_results(two)["timing"]["stages_computed"] == 0
    assert _without_seconds(load_results(two)["properties"]) == _without_seconds(load_results(one)["properties"])


@pytest.mark.slow
def test_a_workers_user_error_is_one_message_and_a_killed_worker_is_named(tiny_models, data_dir, tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    assert main(_run(tiny_models, data_dir, out, "--workers", "2", "--quiet", "--train", "head.lr=1e6")) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "error: Training fairness s" in err and "met a non-finite loss" in err
    assert "fix: Lower the learning rate (--train head.lr, now 1e+06)" in err
    assert "Traceback" not in err

    monkeypatch.setenv("W2SBENCH_FAULT", "stage-start-train:1")  # each worker kills itself at its first training
    assert main(_run(tiny_models, data_dir, out, "--workers", "2", "--quiet", "--reconfigure")) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "The worker process running " in err and "ended with exit code -9" in err
    assert "run the same command again, with --workers 1 if memory is short" in err
    monkeypatch.delenv("W2SBENCH_FAULT")
    # the message's own advice: the same command with --workers 1 finishes what the killed workers left
    assert main(_run(tiny_models, data_dir, out, "--workers", "1", "--quiet")) == 0
    assert (out / "results.json").is_file()


def test_workers_setting(monkeypatch):
    monkeypatch.delenv("W2SBENCH_WORKERS")
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert resolve_workers(None, "cpu") == (2 if usable_cores() >= 2 else 1)
    assert resolve_workers("auto", "cuda") == 1
    assert resolve_workers(" 3 ", "cuda") == 3
    monkeypatch.setenv("WORLD_SIZE", "2")  # a rank of `accelerate launch`: the ranks share the work already
    assert resolve_workers(None, "cpu") == 1
    monkeypatch.setenv("W2SBENCH_WORKERS", "1")
    assert resolve_workers(None, "cpu") == 1
    for bad, source in (("0", "--workers"), ("two", "--workers")):
        with pytest.raises(W2SBenchError, match=f'{source} must be "auto" or a whole number of at least 1, not "{bad}"'):
            resolve_workers(bad, "cpu")
    monkeypatch.setenv("W2SBENCH_WORKERS", "-1")
    with pytest.raises(W2SBenchError, match=r'\$W2SBENCH_WORKERS must be'):
        resolve_workers(None, "cpu")
    assert isinstance(make_executor("local", workers=2), ProcessExecutor)
    assert ProcessExecutor(4, threads=None).threads == max(1, usable_cores() // 4)
    with pytest.raises(W2SBenchError, match="applies to the local executor"):
        make_executor("ray", workers=2)


def test_a_stage_two_processes_need_is_computed_once(tmp_path):
    # Threads stand in for processes: flock locks belong to open files, so two opens conflict in one process too.
    cache = StageCache(tmp_path)
    calls: list[int] = []

    def produce(folder: Path) -> None:
        calls.append(1)
        time.sleep(0.3)  # long enough for the other thread to reach the lock
        (folder / "value.txt").write_text("42")

    threads = [threading.Thread(target=cache.compute, args=("kind", {"k": 1}, produce)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert cache.misses == 1 and cache.hits == 1
    assert (cache.path("kind", {"k": 1}) / "value.txt").read_text() == "42"
    assert [p.name for p in (tmp_path / "kind").iterdir()] == [cache.path("kind", {"k": 1}).name]  # no lock left


def test_a_workers_bug_reaches_the_driver_as_words_with_its_traceback(monkeypatch):
    import queue
    import warnings

    import torch

    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)  # the worker re-routes it
    threads = torch.get_num_threads()
    task = StageTask("run_seed", {"pair": "p"}, {}, {}, "fairness", 0, "/nowhere")  # settings without the run's fields: a bug, not the user's problem
    inbox, outbox = queue.Queue(), queue.Queue()
    inbox.put((3, task))
    inbox.put(None)
    try:
        _processes._worker_main(0, 1, inbox, outbox)
    finally:
        torch.set_num_threads(threads)
    kind, worker, position, (message, text) = outbox.get_nowait()
    assert (kind, worker, position) == ("error", 0, 3)
    assert message == "KeyError: 'metrics'"
    assert "Traceback (most recent call last)" in text and "run_task" in text
    with pytest.raises(_processes.TaskError, match=r"^KeyError: 'metrics' \(in the worker process running p/fairness/seed 0\)$") as raised:
        _processes._raise_failure(kind, (message, text), task)
    assert "run_task" in str(raised.value.__cause__)
    with pytest.raises(W2SBenchError) as user:
        _processes._raise_failure("user_error", ("The problem.", "The fix.", 1), task)
    assert (user.value.problem, user.value.fix, user.value.exit_code) == ("The problem.", "The fix.", 1)
