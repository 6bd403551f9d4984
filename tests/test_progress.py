"""The progress display a log file gets: one timestamped line per stage start and finish."""

from __future__ import annotations

import io
import re

import pytest

from w2sbench.progress import LineProgress, Progress, RichProgress, for_stream

LINE = re.compile(r"^\[\d\d:\d\d:\d\d\] (.*)$")


def messages(text: str) -> list[str]:
    return [LINE.match(line).group(1) for line in text.splitlines()]  # type: ignore[union-attr]


def test_line_progress_names_each_stage_with_its_seconds() -> None:
    out = io.StringIO()
    progress = LineProgress(out)
    with progress.stage("train fairness s0 weak") as bar:
        bar.update(3, 10)
    progress.note("9 stages cached")
    lines = messages(out.getvalue())
    assert lines[0] == "start train fairness s0 weak"
    assert re.fullmatch(r"done train fairness s0 weak \(\d+\.\d s\)", lines[1])
    assert lines[2] == "9 stages cached"
    assert len(lines) == 3


def test_line_progress_says_failed_when_a_stage_raises() -> None:
    out = io.StringIO()
    with pytest.raises(ValueError), LineProgress(out).stage("predict 10 rows"):
        raise ValueError("boom")
    assert re.fullmatch(r"failed predict 10 rows \(\d+\.\d s\)", messages(out.getvalue())[1])


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_for_stream_picks_lines_for_files_bars_for_terminals_nothing_when_quiet() -> None:
    assert type(for_stream(stream=io.StringIO())) is LineProgress
    assert type(for_stream(quiet=True, stream=_Terminal())) is Progress
    bars = for_stream(stream=_Terminal())
    assert type(bars) is RichProgress
    bars.close()
