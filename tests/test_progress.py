"""The progress display a log file gets: one timestamped line per finished stage, a start line for slow ones."""

from __future__ import annotations

import io
import re
import time

import pytest

from w2sbench.progress import LineProgress, Progress, RichProgress, for_stream

LINE = re.compile(r"^\[\d\d:\d\d:\d\d\] (.*)$")


def messages(text: str) -> list[str]:
    return [LINE.match(line).group(1) for line in text.splitlines()]  # type: ignore[union-attr]


def test_line_progress_names_each_finished_stage_with_its_seconds() -> None:
    out = io.StringIO()
    progress = LineProgress(out)
    with progress.stage("train fairness s0 weak") as bar:
        bar.update(3, 10)
    progress.note("9 stages cached")
    lines = messages(out.getvalue())
    assert re.fullmatch(r"done train fairness s0 weak \(\d+\.\d s\)", lines[0])
    assert lines[1:] == ["9 stages cached"]


def test_line_progress_prints_every_start_line_with_slow_after_zero() -> None:
    out = io.StringIO()
    with LineProgress(out, slow_after=0).stage("predict 10 rows"):
        pass
    lines = messages(out.getvalue())
    assert lines[0] == "start predict 10 rows"
    assert re.fullmatch(r"done predict 10 rows \(\d+\.\d s\)", lines[1])
    assert len(lines) == 2


def test_line_progress_prints_the_start_line_of_a_stage_still_running() -> None:
    out = io.StringIO()
    with LineProgress(out, slow_after=0.01).stage("train ood s0 ceiling"):
        deadline = time.monotonic() + 30
        while "start" not in out.getvalue() and time.monotonic() < deadline:
            time.sleep(0.01)  # waits for the timer thread; asserts no duration
    lines = messages(out.getvalue())
    assert lines[0] == "start train ood s0 ceiling"
    assert re.fullmatch(r"done train ood s0 ceiling \(\d+\.\d s\)", lines[1])
    assert len(lines) == 2


def test_line_progress_says_failed_when_a_stage_raises() -> None:
    out = io.StringIO()
    with pytest.raises(ValueError), LineProgress(out).stage("predict 10 rows"):
        raise ValueError("boom")
    assert re.fullmatch(r"failed predict 10 rows \(\d+\.\d s\)", messages(out.getvalue())[0])
    assert len(messages(out.getvalue())) == 1


def test_an_interrupted_stage_says_interrupted_and_its_bar_is_not_completed() -> None:
    out = io.StringIO()
    with pytest.raises(KeyboardInterrupt), LineProgress(out).stage("train fairness s0 ceiling-reg"):
        raise KeyboardInterrupt
    assert re.fullmatch(r"interrupted train fairness s0 ceiling-reg \(\d+\.\d s\)", messages(out.getvalue())[0])

    bars = RichProgress()
    with pytest.raises(KeyboardInterrupt), bars.stage("train fairness s1 ceiling-reg", total=189) as handle:
        handle.update(90, 189)
        raise KeyboardInterrupt
    (task,) = bars._bar.tasks
    assert (task.completed, task.total, task.description) == (90, 189, "train fairness s1 ceiling-reg (interrupted)")
    bars.close()


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_for_stream_picks_lines_for_files_bars_for_terminals_nothing_when_quiet() -> None:
    assert type(for_stream(stream=io.StringIO())) is LineProgress
    assert type(for_stream(quiet=True, stream=_Terminal())) is Progress
    bars = for_stream(stream=_Terminal())
    assert type(bars) is RichProgress
    bars.close()


def test_cached_stages_are_noted_once_per_trust_property() -> None:
    from w2sbench.executors import StageTask, TaskResult
    from w2sbench.run_pairs import note_cache_use

    def result(metric: str, seed: int, computed: int, cached: int, stages: dict | None = None) -> TaskResult:
        task = StageTask("run_seed", {"pair": "default"}, {}, {}, metric, seed, "/cache")
        return TaskResult(task, computed=computed, cached=cached, stages=stages or {})

    out = io.StringIO()
    results = [result("ood", 0, 0, 70), result("ood", 1, 2, 68, {"train": [1, 30.25], "predict": [1, 1.5]}),
               result("privacy", 0, 5, 0, {"train": [4, 200.0], "live": [1, 9.4]}),
               result("privacy", 1, 2, 0, {"train": [2, 101.0]})]
    note_cache_use(LineProgress(out), ["privacy", "ood"], results)
    assert messages(out.getvalue()) == [
        "privacy: 7 stages computed (live 9 s, train 301 s), 0 read from the stage cache (computed by an earlier run, "
        "or shared by cells of this one)",
        "ood: 2 stages computed (predict 2 s, train 30 s), 138 read from the stage cache (computed by an earlier run, "
        "or shared by cells of this one)",
    ]
    from w2sbench.run_pairs import stage_time

    assert stage_time(["privacy", "ood", "fairness"], results) == {
        "privacy": {"live": {"computed": 1, "seconds": 9.4}, "train": {"computed": 6, "seconds": 301.0}},
        "ood": {"predict": {"computed": 1, "seconds": 1.5}, "train": {"computed": 1, "seconds": 30.25}},
        "fairness": {},
    }
