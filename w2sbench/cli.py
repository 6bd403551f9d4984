"""The ``w2sbench`` command line."""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
import warnings
from collections.abc import Sequence
from pathlib import Path

from w2sbench import __version__
from w2sbench.errors import W2SBenchError

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="w2sbench",
        description="Weak-to-strong trustworthiness benchmark: train a weak model, let it label data for a "
        "strong model, and measure whether trust properties carry over.",
    )
    parser.add_argument("--version", action="version", version=f"w2sbench {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="run (or resume) a benchmark")
    run.add_argument("--pair", default="default", help="WEAK:STRONG (e.g. pythia-160m:pythia-1b) or a named pair [default]")
    run.add_argument("--properties", help="comma-separated trust properties, e.g. fairness,ood [all registered]")
    run.add_argument("--metrics", help=argparse.SUPPRESS)  # deprecated name of --properties (one release)
    run.add_argument("--strategies", help="comma-separated strategies [the default ones in `w2sbench list strategies`]")
    run.add_argument("--seeds", default="0-2", help="comma-separated seeds or a range, e.g. 0,1,2 or 0-4; three or more "
                     "give intervals over seeds [0-2]")
    run.add_argument("--finetune", help="head, lora or full, or WEAK:STRONG such as head:full [GPU: full; CPU: the pair's choice]")
    run.add_argument("--option", action="append", default=[], metavar="METRIC.KEY=VALUE", help="trust-metric option")
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

    swp = sub.add_parser("sweep", help="run a grid of pairs x metrics x strategies x seeds from a YAML file")
    swp.add_argument("config", help="sweep YAML file (docs/scale-out.md)")
    swp.add_argument("--executor", choices=["local", "ray"], help="where tasks run [the file's, else local]")
    swp.add_argument("--ray-address", help="Ray cluster address, e.g. HOST:6379 [the file's, else a local cluster]")
    swp.add_argument("--max-retries", type=int, help="Ray retries per failed task [the file's, else 2]")
    swp.add_argument("--reconfigure", action="store_true", help="accept settings that differ from the run directories'")
    swp.add_argument("--quiet", action="store_true", help="no progress bars or summary table")

    lst = sub.add_parser("list", help="list registered pairs, models, strategies, metrics, exporters, or every "
                         "--option and --train setting with its default and valid range")
    lst.add_argument("what", choices=["pairs", "models", "strategies", "properties", "metrics", "exporters", "options"])

    sub.add_parser("plugins", help="list loaded plugins with their package and version")

    rep = sub.add_parser("report", help="re-render runs' results tables (with intervals and comparisons) and plots")
    rep.add_argument("runs", nargs="+", metavar="RUN", help="run directories or results.json files")
    rep.add_argument("--json", action="store_true", help="print the results document(s) as JSON, with a 'report' section")
    rep.add_argument("--quiet", action="store_true", help="print nothing (e.g. with --plots)")
    rep.add_argument("--plots", metavar="DIR", help="write PNG and SVG figures to DIR")
    rep.add_argument("--bootstrap", type=int, default=100, metavar="N",
                     help="bootstrap resamples over test examples for one-seed runs; 0 turns it off [100]")
    rep.add_argument("--data-dir", help="dataset mirror for the bootstrap's test labels [the run's]")

    exp = sub.add_parser("export", help="write run results with a registered exporter")
    exp.add_argument("runs", nargs="+", help="run directories")
    exp.add_argument("--format", required=True, help="exporter name (`w2sbench list exporters`)")
    exp.add_argument("--to", required=True, help="destination file")

    lme = sub.add_parser("export-lm-eval", help="write trust evaluations as lm-eval tasks (YAML + JSONL) into DIR")
    lme.add_argument("dir", help="output folder; then run `lm_eval --include_path DIR --tasks w2sbench ...`")
    lme.add_argument("--data-dir", help="local dataset mirror [$W2SBENCH_DATA_DIR; else download from upstream]")
    lme.add_argument("--adult-rows", type=int, default=2000, help="Adult test rows (fixed subset of adult.test) [2000]")
    lme.add_argument("--style-rows", type=int, help="rows per SST-2 style set [all 872]")
    lme.add_argument("--fewshot-rows", type=int, default=16, help="Adult demonstration rows for --num_fewshot [16]")

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
    from w2sbench.leaderboard._cli import add_parser as _add_leaderboard_parser

    _add_leaderboard_parser(sub)
    return parser


def _console(stderr: bool = False):  # noqa: ANN202
    from rich.console import Console

    # Errors on stderr are never hard-wrapped: a message stays greppable in logs whatever the width.
    return Console(stderr=stderr, soft_wrap=stderr)


def _plugins():  # noqa: ANN202
    from w2sbench.plugin_manager import get_plugins

    plugins = get_plugins()
    plugins.collect_all()
    for problem in plugins.problems:
        warnings.warn(str(problem), stacklevel=1)
    return plugins


def _properties_argument(args: argparse.Namespace) -> str | None:
    """--properties, or its deprecated name --metrics (with a warning)."""
    if args.metrics is not None:
        warnings.warn("--metrics is renamed --properties; the old name works for one more release.", FutureWarning, stacklevel=1)
        if args.properties is not None and args.properties != args.metrics:
            raise W2SBenchError("--properties and --metrics (its old name) name different trust properties.", "Pass only --properties.")
    return args.properties if args.properties is not None else args.metrics


def cmd_run(args: argparse.Namespace) -> int:
    from w2sbench.data import default_data_dir
    from w2sbench.progress import for_stream
    from w2sbench.run_dir import default_run_dir
    from w2sbench.runner import RunRequest, execute, prepare
    from w2sbench.settings import data_dir_arg, parse_options, parse_seeds

    plugins = _plugins()
    request = RunRequest(
        pair=args.pair,
        metrics=_properties_argument(args),
        strategies=args.strategies,
        seeds=parse_seeds(args.seeds),
        finetune=args.finetune,
        options=parse_options(args.option),
        train=parse_options(args.train),
        data_dir=data_dir_arg(args.data_dir or default_data_dir()),
        device=args.device,
        allow_weak_larger=args.allow_weak_larger,
    )
    settings, pair = prepare(request, plugins)
    run_dir = Path(args.out) if args.out else default_run_dir(settings)
    from w2sbench.training.distributed import launched_rank

    follower = launched_rank() > 0  # another rank of `accelerate launch`: rank 0 reports
    progress = for_stream(quiet=args.quiet or args.json or follower)
    from w2sbench.executors import make_executor

    executor = make_executor(args.executor, args.ray_address, progress=progress)
    try:
        results = execute(settings, pair, run_dir, plugins, progress, reconfigure=args.reconfigure,
                          cache_dir=args.cache_dir or None, executor=executor)
    finally:
        executor.close()
        progress.close()
    if follower:
        return 0
    if args.json:
        from w2sbench.finite import json_safe

        print(json.dumps(json_safe(results), indent=2, allow_nan=False))
    elif not args.quiet:
        from w2sbench.cli_tables import end_screen

        end_screen(_console(), results, run_dir)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    plugins = _plugins()
    from w2sbench.cli_tables import ListTable, list_metrics, list_options

    table = ListTable()  # identifiers whole; names such as hf:<org>/<name>[@revision] are text, not rich markup
    if args.what == "pairs":
        for col in ("pair", "weak -> strong", "CPU fine-tune", "description"):
            table.add_column(col)
        for name, p in plugins.pairs.items.items():
            description = f"{p.description} (plugin {plugins.pairs.owners[name]})"
            table.add_row(name, f"{p.weak} -> {p.strong}", p.cpu_finetune or "head", description)
        table.caption = "Any WEAK:STRONG of model names also works; see `w2sbench list models`."
    elif args.what == "models":
        for col in ("family", "name", "size / notes", "plugin"):
            table.add_column(col)
        for fname, family in plugins.model_families.items.items():
            for model in family.names():
                table.add_row(fname, model, family.describe(model), plugins.model_families.owners[fname])
    elif args.what == "strategies":
        from w2sbench.teachers import strategy_columns

        # Two tables so each fits 80 columns: every name a user can type with its settings, then each
        # method's description with room to wrap (a composition M+weak-tft shares M's description).
        for col in ("strategy", "regularize", "teachers", "targets, loss", "default"):
            table.add_column(col)
        described = ListTable()
        for col in ("strategy", "description", "plugin"):
            described.add_column(col)
        for name, strategy in plugins.strategies.items.items():
            table.add_row(name, *strategy_columns(strategy))
            base = name.rsplit("+", 1)[0]
            if "+" not in name or base not in plugins.strategies:
                described.add_row(name, strategy.description, plugins.strategies.owners[name])
        if any("+" in name for name in plugins.strategies.names()):
            table.caption = "M+S: transfer method M with strategy S's regularized phases (docs/strategies.md)"
        _console().print(table)
        _console().print(described)
        return 0
    elif args.what in ("properties", "metrics"):
        list_metrics(_console(), plugins)
        return 0
    elif args.what == "options":
        list_options(_console(), plugins.trust_properties.items.values())
        return 0
    else:
        for col in ("exporter", "description", "plugin"):
            table.add_column(col)
        for name, e in plugins.exporters.items.items():
            table.add_row(name, e.description, plugins.exporters.owners[name])
    _console().print(table)
    return 0


def cmd_plugins(args: argparse.Namespace) -> int:
    from rich.markup import escape
    from rich.table import Table

    plugins = _plugins()
    table = Table()
    for col in ("plugin", "package", "version", "module"):
        table.add_column(col, overflow="fold")  # never an ellipsis: these are names a user types
    for info in plugins.info.values():
        table.add_row(info.name, info.package, info.version, info.module)
    console = _console()
    console.print(table)
    for problem in plugins.problems:
        console.print(f"[red]problem:[/] {escape(str(problem))}")
    if plugins.disabled:
        console.print(f"disabled by W2SBENCH_DISABLE_PLUGINS: {', '.join(plugins.disabled)}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from w2sbench.report import render_report

    render_report(
        [Path(r) for r in args.runs], _console(), _plugins(), plots=Path(args.plots) if args.plots else None,
        quiet=args.quiet, as_json=args.json, resamples=args.bootstrap, data_dir=args.data_dir,
    )
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from w2sbench.results import load_results

    plugins = _plugins()
    exporter = plugins.exporters.get(args.format)
    run_dirs = [Path(r) for r in args.runs]
    results = [load_results(r) for r in run_dirs]
    path = exporter.export(results, Path(args.to), run_dirs)
    _console().print(f"wrote {path}")
    return 0


def cmd_export_lm_eval(args: argparse.Namespace) -> int:
    from w2sbench.data import default_data_dir
    from w2sbench.lm_eval_export import export_lm_eval

    files = export_lm_eval(Path(args.dir), _plugins(), args.data_dir or default_data_dir(), args.adult_rows, args.style_rows, args.fewshot_rows)
    tasks = sorted(p.stem for p in files if p.suffix == ".yaml")
    _console().print(f"wrote {len(tasks)} lm-eval tasks to {args.dir}: {', '.join(tasks)}\n"
                     f"run them with: lm_eval --model hf --model_args pretrained=MODEL --include_path {args.dir} --tasks w2sbench")
    return 0


def cmd_capability(args: argparse.Namespace) -> int:
    from w2sbench.capability import run_capability
    from w2sbench.report import render_tables
    from w2sbench.results import load_results
    from w2sbench.settings import parse_list

    capability = run_capability(
        Path(args.run), _plugins(), parse_list(args.tasks, "lm-eval tasks"), limit=args.limit, num_fewshot=args.num_fewshot,
        cells=parse_list(args.cells, "cells") if args.cells else None,
        include_path=Path(args.include_path) if args.include_path else None,
        cache_dir=args.cache_dir or None, device=args.device, batch_size=args.batch_size,
    )
    if args.json:
        from w2sbench.finite import json_safe

        print(json.dumps(json_safe(capability), indent=2, allow_nan=False))
    else:
        render_tables(load_results(Path(args.run)), _console())
    return 0


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from w2sbench.leaderboard._cli import run_command

    return run_command(args, _plugins)


def cmd_sweep(args: argparse.Namespace) -> int:
    from rich.markup import escape
    from rich.table import Table

    from w2sbench.executors import make_executor
    from w2sbench.progress import for_stream
    from w2sbench.run_pairs import execute_pairs
    from w2sbench.sweep import expand_sweep, load_sweep, write_sweep_summary

    config = load_sweep(Path(args.config))
    plugins = _plugins()
    kind = args.executor or config.executor
    jobs = expand_sweep(config, plugins, kind)
    from w2sbench.training.distributed import launched_rank

    follower = launched_rank() > 0  # another rank of `accelerate launch`: rank 0 writes and reports
    progress = for_stream(quiet=args.quiet or follower)
    retries = config.max_retries if args.max_retries is None else args.max_retries
    executor = make_executor(kind, args.ray_address or config.ray_address, config.resources, retries, progress)
    try:
        outcome = execute_pairs(jobs, plugins, progress, executor, config.shared_cache, args.reconfigure)
    finally:
        executor.close()
        progress.close()
    if follower:
        return 1 if outcome.failures else 0
    summary = write_sweep_summary(config.out, jobs, outcome, kind)
    if not args.quiet:
        table = Table(title=f"sweep: {len(jobs)} pairs on the {kind} executor")
        for col in ("pair", "status", "run directory"):
            table.add_column(col, overflow="fold")
        for job in jobs:
            table.add_row(job.settings.pair, "done" if job.run_dir in outcome.results else "[red]failed[/]", str(job.run_dir))
        console = _console()
        console.print(table)
        console.print(f"[dim]summary: {summary}[/]")
    for name, error in outcome.failures:
        _console(stderr=True).print(f"[bold red]failed:[/] {escape(name)}: {escape(error)}", highlight=False)
    return 1 if outcome.failures else 0


COMMANDS = {
    "leaderboard": cmd_leaderboard, "sweep": cmd_sweep,
    "run": cmd_run, "list": cmd_list, "plugins": cmd_plugins, "report": cmd_report, "export": cmd_export,
    "export-lm-eval": cmd_export_lm_eval, "capability": cmd_capability,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    debug = args.debug or os.environ.get("W2SBENCH_DEBUG") == "1"
    if not debug:  # a user reads "warning: ...", not the source line that raised it
        warnings.formatwarning = lambda message, category, *_a, **_k: f"warning: {message}\n"
    try:
        return COMMANDS[args.command](args)
    except W2SBenchError as exc:
        if debug:
            traceback.print_exc()
        from rich.markup import escape

        _console(stderr=True).print(
            f"[bold red]error:[/] {escape(exc.problem)}" + (f"\n[bold]fix:[/] {escape(exc.fix)}" if exc.fix else ""),
            highlight=False,
        )
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted; finished stages are cached, run the same command again to resume", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one paragraph, not a traceback
        if debug:
            raise
        from rich.markup import escape

        _console(stderr=True).print(
            f"[bold red]unexpected error:[/] {type(exc).__name__}: {escape(str(exc))}\n"
            "[bold]fix:[/] this is a bug in w2sbench or a plugin. Finished stages are cached, so nothing is lost. "
            "Rerun with --debug for the traceback and report it.",
            highlight=False,
        )
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
