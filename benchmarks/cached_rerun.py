"""Where the seconds of a cached re-run go: a finished run run again, every stage served from the stage cache.

Copies RUN_DIR (the run's own files; its ``cache/`` hard-linked: stages are replaced, never edited, so the
original stays untouched) into a temporary folder, re-runs the command that made it (read from run.json)
in this process, and prints per phase its CPU seconds (robust to other jobs on the machine) and wall
seconds:

  import         ``import w2sbench.cli, w2sbench.runner`` (what ``w2sbench run`` imports) in a fresh
                 interpreter, minus a bare interpreter's start; the plugins load later, under "other"
  data           the trust properties' data (``LoadedPipelines.data``: read from the prepared-data cache,
                 w2sbench/prepared_data.py, after the first re-run of a run made before that cache existed)
  stage lookups  the executor's tasks: every cached stage read, the cells' observed scores
  findings       the findings' bootstrap (``findings_cache.cached_resample_scores``: read from the cache
                 after the first re-run; the first re-run of a run made before the cache existed fills it)
  results        the rest of results.json's per-property entries (summaries, gap recovered, intervals)
  writing        results.json and predictions.jsonl.gz
  other          settings, plugins, the run directory's checks, the findings table

Then two lines the in-process re-run cannot show: ``lazy imports``, the modules a re-run imports on first
use (scipy.stats, statsmodels), which the timed second pass finds imported; and ``the command``, the whole
``python -m w2sbench run ... --quiet`` in a fresh interpreter (what a user waits for).

Ratios are against baselines measured in the same run: the import against a bare ``python -c pass``; the
cached findings against the same bootstrap computed afresh (``--uncached``); the total against the
re-run's first pass (which fills the findings and prepared-data caches when the run predates them).

    W2SBENCH_DATA_DIR=/work/shared/data python benchmarks/cached_rerun.py runs/s5 --uncached
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

PHASES = ("data", "stage lookups", "findings", "results", "writing")
IMPORTS = "import w2sbench.cli, w2sbench.runner"  # what `w2sbench run` imports before it starts
# What a re-run imports on first use (the summaries' t intervals, the findings' Holm correction): the timed
# in-process re-run is a second pass, which finds them imported already.
LAZY_IMPORTS = "import scipy.stats, statsmodels.stats.multitest"


class Clock:
    """Accumulated (cpu, wall) seconds per phase; nested phases are subtracted from their parents by the caller."""

    def __init__(self) -> None:
        self.seconds: dict[str, list[float]] = {}

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        cpu, wall = time.process_time(), time.perf_counter()
        try:
            yield
        finally:
            total = self.seconds.setdefault(name, [0.0, 0.0])
            total[0] += time.process_time() - cpu
            total[1] += time.perf_counter() - wall

    def wrap(self, owner: Any, attr: str, name: str) -> None:
        inner: Callable[..., Any] = getattr(owner, attr)

        def timed(*args: Any, **kwargs: Any) -> Any:
            with self.phase(name):
                return inner(*args, **kwargs)

        setattr(owner, attr, timed)


def _interpreter_seconds(code: str, repeats: int = 3, argv: list[str] | None = None) -> tuple[float, float]:
    """The fastest of ``repeats`` fresh interpreters running ``code`` (or ``python ARGV``): (cpu, wall) seconds."""
    best = (float("inf"), float("inf"))
    for _ in range(repeats):
        before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
        subprocess.run([sys.executable, *(argv or ["-c", code])], check=True, env=dict(os.environ), stdout=subprocess.DEVNULL)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
        best = min(best, (cpu, time.perf_counter() - start))
    return best


def copy_run(run_dir: Path, target: Path) -> Path:
    """The run's files copied, its stage cache hard-linked (computed.log copied: a re-run may append to it)."""
    shutil.copytree(run_dir, target, ignore=shutil.ignore_patterns("cache"))
    if (run_dir / "cache").is_dir():
        shutil.copytree(run_dir / "cache", target / "cache", copy_function=os.link, ignore=shutil.ignore_patterns("computed.log"))
        if (run_dir / "cache" / "computed.log").is_file():
            shutil.copy2(run_dir / "cache" / "computed.log", target / "cache" / "computed.log")
    return target


def run_argv(run_dir: Path) -> list[str]:
    """``w2sbench run`` arguments that reproduce a run made with default options and fine-tune modes: its
    recorded pair, properties, strategies, seeds and data folder."""
    settings = json.loads((run_dir / "run.json").read_text())
    argv = ["run", "--pair", settings["pair"], "--properties", ",".join(settings["metrics"]),
            "--strategies", ",".join(settings["strategies"]), "--seeds", ",".join(map(str, settings["seeds"])),
            "--out", str(run_dir)]
    return argv + (["--data-dir", settings["data_dir"]] if settings.get("data_dir") else [])


def timed_rerun(run_dir: Path) -> tuple[dict[str, list[float]], list[float], dict[str, Any]]:
    """One cached re-run in this process: seconds per phase, the total (cpu, wall) and its results.json."""
    from w2sbench import cli, executors, results, run_pairs
    from w2sbench_plugins import _sst2

    _sst2._parsed_sst2.cache_clear()  # each pass parses its data as a fresh process does
    clock = Clock()
    saved = [(run_pairs, "build_property_result"), (run_pairs, "write_results"), (results, "cached_resample_scores"),
             (executors.LoadedPipelines, "data"), (executors.LocalExecutor, "run")]
    originals = [getattr(owner, attr) for owner, attr in saved]
    for (owner, attr), name in zip(saved, ("results", "writing", "findings", "data", "stage lookups"), strict=True):
        clock.wrap(owner, attr, name)
    try:
        with clock.phase("total"), contextlib.redirect_stdout(open(os.devnull, "w")):
            code = cli.main([*run_argv(run_dir), "--quiet"])
    finally:
        for (owner, attr), original in zip(saved, originals, strict=True):
            setattr(owner, attr, original)
    if code != 0:
        raise SystemExit(f"the re-run failed with exit code {code}")
    seconds = clock.seconds
    for part in ("findings",):  # nested inside "results"
        if part in seconds and "results" in seconds:
            seconds["results"] = [a - b for a, b in zip(seconds["results"], seconds[part], strict=True)]
    return seconds, seconds.pop("total"), json.loads((run_dir / "results.json").read_text())


def uncached_findings_seconds(run_dir: Path) -> float:
    """CPU seconds of the findings' bootstrap computed afresh (its cache entries removed first)."""
    from w2sbench import findings_cache

    shutil.rmtree(run_dir / "cache" / findings_cache.KIND, ignore_errors=True)
    seconds, _total, _document = timed_rerun(run_dir)
    return seconds["findings"][0]


def _row(name: str, cpu: float, wall: float, note: str = "") -> str:
    return f"{name:<15} {cpu:8.2f} {wall:8.2f}  {note}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a finished run directory (not modified)")
    parser.add_argument("--uncached", action="store_true", help="also time the findings' bootstrap computed afresh")
    args = parser.parse_args(argv)
    print("load average:", " ".join(f"{x:.2f}" for x in os.getloadavg()))
    bare = _interpreter_seconds("pass")
    imported = _interpreter_seconds(IMPORTS)
    importing = [imported[0] - bare[0], imported[1] - bare[1]]
    lazy = _interpreter_seconds(f"{IMPORTS}; {LAZY_IMPORTS}")
    lazy_importing = [lazy[0] - imported[0], lazy[1] - imported[1]]
    with tempfile.TemporaryDirectory(prefix="cached-rerun-") as tmp:
        run_dir = copy_run(args.run_dir.resolve(), Path(tmp) / "run")
        _first, first_total, _ = timed_rerun(run_dir)  # fills the findings cache of a run made before it existed
        seconds, total, document = timed_rerun(run_dir)
        command = _interpreter_seconds("", argv=["-m", "w2sbench", *run_argv(run_dir), "--quiet"])
        fresh = uncached_findings_seconds(run_dir) if args.uncached else None
    timing = document.get("timing", {})
    print(f"stages computed {timing.get('stages_computed')}, served from cache {timing.get('stages_cached')}")
    print(f"{'phase':<15} {'cpu s':>8} {'wall s':>8}")
    print(_row("import", *importing, f"({imported[0] / bare[0]:.1f}x a bare interpreter's {bare[0]:.2f} cpu s)"))
    for name in PHASES:
        cpu, wall = seconds.get(name, [0.0, 0.0])
        note = ""
        if name == "findings" and fresh is not None:
            note = f"({cpu / max(fresh, 1e-9):.3f}x the bootstrap computed afresh: {fresh:.2f} cpu s)"
        print(_row(name, cpu, wall, note))
    other = [t - sum(seconds.get(n, [0.0, 0.0])[i] for n in PHASES) for i, t in enumerate(total)]
    print(_row("other", *other))
    print(_row("re-run total", *total, f"({total[0] / max(first_total[0], 1e-9):.2f}x the first re-run's cpu s)"))
    print(_row("with import", total[0] + importing[0], total[1] + importing[1]))
    print(_row("lazy imports", *lazy_importing, f"({LAZY_IMPORTS}: the in-process re-run above had them)"))
    print(_row("the command", *command, "(python -m w2sbench run ... --quiet, fresh interpreter, best of 3)"))
    print("load average:", " ".join(f"{x:.2f}" for x in os.getloadavg()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
