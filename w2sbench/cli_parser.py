"""The ``w2sbench`` command line's arguments: every subcommand, option, default and help text.

Nothing here imports the benchmark itself (only the leaderboard's own argument definitions, when the
parser is built), so ``w2sbench --help`` starts at once.
"""

from __future__ import annotations

import argparse
from typing import Any

from w2sbench import __version__

__all__ = ["build_parser", "LIST_KINDS"]

# What `w2sbench list` shows, in this order, when no kind is named (every kind but "metrics", the old name of
# "properties").
LIST_KINDS = ("pairs", "models", "strategies", "properties", "exporters", "options")

WORKERS_HELP = ("processes of the local executor, each with its share of the cores: a number, or auto (2 on a "
                "CPU with 2+ cores, else 1) [$W2SBENCH_WORKERS, else auto]")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="w2sbench",
        description="Weak-to-strong trustworthiness benchmark: train a weak model, let it label data for a "
        "strong model, and measure whether trust properties carry over.",
    )
    parser.add_argument("--version", action="version", version=f"w2sbench {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    _add_run(sub)
    _add_sweep_list_report_export(sub)
    _add_lm_eval(sub)
    from w2sbench.leaderboard._cli import add_parser as _add_leaderboard_parser

    _add_leaderboard_parser(sub)
    return parser


def _add_run(sub: Any) -> None:
    """`w2sbench run`."""
    run = sub.add_parser("run", help="run (or resume) a benchmark")
    run.add_argument("--pair", default="default", help="WEAK:STRONG (e.g. pythia-160m:pythia-1b) or a named pair [default]")
    run.add_argument("--properties", help="comma-separated trust properties, e.g. fairness,ood [all registered]")
    run.add_argument("--metrics", help=argparse.SUPPRESS)  # deprecated name of --properties (one release)
    run.add_argument("--strategies", help="comma-separated strategies [the default ones in `w2sbench list strategies`]")
    run.add_argument("--seeds", default="0-2", help="comma-separated seeds or a range, e.g. 0,1,2 or 0-4; intervals "
                     "resample seeds x test examples, so more seeds narrow them (one seed: test examples only) [0-2]")
    run.add_argument("--finetune", help="head, lora or full, or WEAK:STRONG such as head:full [GPU: full; CPU: the pair's choice]")
    run.add_argument("--option", action="append", default=[], metavar="PROPERTY.KEY=VALUE", help="trust-property option, e.g. fairness.weight=2")
    run.add_argument("--train", action="append", default=[], metavar="MODE.KEY=VALUE", help="training setting, e.g. full.epochs=3")
    run.add_argument("--data-dir", help="local dataset mirror [$W2SBENCH_DATA_DIR; else download from upstream]")
    run.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N [auto]")
    run.add_argument("--out", help="run directory [runs/<weak>__<strong>-<settings hash>]")
    run.add_argument("--cache-dir", help="stage cache shared between runs: a folder, or an fsspec URL such as "
                     "s3://bucket/prefix (docs/scale-out.md) [<out>/cache]")
    run.add_argument("--allow-weak-larger", action="store_true", help="run a pair whose weak model is the larger one")
    run.add_argument("--reconfigure", action="store_true", help="accept settings that differ from the run directory's")
    run.add_argument("--quiet", action="store_true", help="no progress bars or tables")
    run.add_argument("--json", action="store_true", help="print the results document as JSON")
    run.add_argument("--executor", choices=["local", "ray"], default="local", help="where the seeds run: this process or a Ray cluster [local]")
    run.add_argument("--ray-address", help="Ray cluster address, e.g. HOST:6379 [start a local cluster]")
    run.add_argument("--workers", help=WORKERS_HELP)


def _add_sweep_list_report_export(sub: Any) -> None:
    """`sweep`, `list`, `plugins`, `report` and `export`."""
    swp = sub.add_parser("sweep", help="run a grid of pairs x trust properties x strategies x seeds from a YAML file")
    swp.add_argument("config", help="sweep YAML file (docs/scale-out.md)")
    swp.add_argument("--executor", choices=["local", "ray"], help="where tasks run [the file's, else local]")
    swp.add_argument("--ray-address", help="Ray cluster address, e.g. HOST:6379 [the file's, else a local cluster]")
    swp.add_argument("--max-retries", type=int, help="Ray retries per failed task [the file's, else 2]")
    swp.add_argument("--workers", help=WORKERS_HELP)
    swp.add_argument("--reconfigure", action="store_true", help="accept settings that differ from the run directories'")
    swp.add_argument("--quiet", action="store_true", help="no progress bars or summary table")

    lst = sub.add_parser("list", help="list registered pairs, models, strategies, trust properties, exporters, or every "
                         "--option and --train setting with its default and valid range [all of them]")
    lst.add_argument("what", nargs="?", choices=[*LIST_KINDS, "metrics"], help="what to list [everything]")

    sub.add_parser("plugins", help="list loaded plugins with their package and version")

    rep = sub.add_parser("report", help="re-render runs' results tables (with intervals and comparisons) and plots")
    rep.add_argument("runs", nargs="+", metavar="RUN", help="run directories or results.json files")
    rep.add_argument("--json", action="store_true", help="print the results document(s) as JSON, with a 'report' section")
    rep.add_argument("--quiet", action="store_true", help="print nothing (e.g. with --plots)")
    rep.add_argument("--plots", metavar="DIR", help="write PNG and SVG figures to DIR")
    rep.add_argument("--bootstrap", type=int, default=None, metavar="N",
                     help="bootstrap resamples for the findings and intervals: N other than results.json's "
                          "recomputes them (the test data are reloaded; 1-2 minutes for N=1000 on the default run), "
                          "0 leaves them out [what results.json holds: 200]")
    rep.add_argument("--cache-dir", metavar="DIR", help="stage cache for the reloaded test data and the recomputed bootstrap "
                     "(read only when not writable) [RUN/cache]")
    rep.add_argument("--data-dir", help="dataset mirror for the bootstrap's test labels [the run's]")

    exp = sub.add_parser("export", help="write run results with a registered exporter")
    exp.add_argument("runs", nargs="+", help="run directories")
    exp.add_argument("--format", required=True, help="exporter name (`w2sbench list exporters`)")
    exp.add_argument("--to", required=True, help="destination file")


def _add_lm_eval(sub: Any) -> None:
    """`export-lm-eval` and `capability`: the lm-eval bridges."""
    lme = sub.add_parser("export-lm-eval", help="write trust evaluations as lm-eval tasks (YAML + JSONL) into DIR")
    lme.add_argument("dir", help="output folder; then run `lm_eval --include_path DIR --tasks w2sbench ...`")
    lme.add_argument("--data-dir", help="local dataset mirror [$W2SBENCH_DATA_DIR; else download from upstream]")
    lme.add_argument("--properties", help="comma-separated trust properties to export [every registered one with lm-eval tasks]")
    lme.add_argument("--rows", metavar="N|PROPERTY=N,...", help="most test rows per task, for every property or per "
                     "property, e.g. 100 or fairness=2000,ood=100 [each property's default]")
    lme.add_argument("--fewshot-rows", type=int, default=16, help="demonstration rows per task for --num_fewshot, where "
                     "a property samples them [16]")
    lme.add_argument("--adult-rows", type=int, help=argparse.SUPPRESS)  # deprecated: --rows fairness=N (one release)
    lme.add_argument("--style-rows", type=int, help=argparse.SUPPRESS)  # deprecated: --rows ood=N (one release)

    cap = sub.add_parser("capability", help="evaluate a run's final strong models with lm-eval (capability retention)")
    cap.add_argument("run", help="a finished run directory (decoder strong model)")
    cap.add_argument("--tasks", required=True, help="comma-separated lm-eval tasks, e.g. hellaswag,arc_easy")
    cap.add_argument("--limit", type=int, help="examples per task [all]")
    cap.add_argument("--num-fewshot", type=int, help="few-shot examples [each task's default]")
    cap.add_argument("--cells", help="comma-separated strong cells [ceiling, ceiling-reg and every strategy]")
    cap.add_argument("--include-path", help="folder of extra lm-eval task YAMLs (e.g. from export-lm-eval)")
    cap.add_argument("--cache-dir", help="the stage cache (folder or URL) the run used [<run>/cache]")
    cap.add_argument("--device", help="cpu, cuda or cuda:N [cuda when available]")
    cap.add_argument("--batch-size", type=int, default=8, help="lm-eval batch size [8]")
    cap.add_argument("--json", action="store_true", help="print the capability results as JSON")
