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
    run.add_argument("--metrics", help="comma-separated trust metrics [all registered]")
    run.add_argument("--strategies", help="comma-separated strategies [all registered]")
    run.add_argument("--seeds", default="0", help="comma-separated seeds or a range, e.g. 0,1,2 or 0-4 [0]")
    run.add_argument("--finetune", help="head, lora or full, or WEAK:STRONG such as head:full [GPU: full; CPU: the pair's choice]")
    run.add_argument("--option", action="append", default=[], metavar="METRIC.KEY=VALUE", help="trust-metric option")
    run.add_argument("--train", action="append", default=[], metavar="MODE.KEY=VALUE", help="training setting, e.g. full.epochs=3")
    run.add_argument("--data-dir", help="local dataset mirror [$W2SBENCH_DATA_DIR; else download from upstream]")
    run.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N [auto]")
    run.add_argument("--out", help="run directory [runs/<weak>__<strong>-<settings hash>]")
    run.add_argument("--cache-dir", help="stage cache shared between runs [<out>/cache]")
    run.add_argument("--reconfigure", action="store_true", help="accept settings that differ from the run directory's")
    run.add_argument("--quiet", action="store_true", help="no progress bars or tables")
    run.add_argument("--json", action="store_true", help="print the results document as JSON")

    lst = sub.add_parser("list", help="list registered pairs, models, strategies, metrics or exporters")
    lst.add_argument("what", choices=["pairs", "models", "strategies", "metrics", "exporters"])

    sub.add_parser("plugins", help="list loaded plugins with their package and version")

    rep = sub.add_parser("report", help="re-render a run's results table from results.json")
    rep.add_argument("run", help="run directory or results.json")
    rep.add_argument("--json", action="store_true", help="print the results document as JSON")

    exp = sub.add_parser("export", help="write run results with a registered exporter")
    exp.add_argument("runs", nargs="+", help="run directories")
    exp.add_argument("--format", required=True, help="exporter name (`w2sbench list exporters`)")
    exp.add_argument("--to", required=True, help="destination file")
    return parser


def _console(stderr: bool = False):  # noqa: ANN202
    from rich.console import Console

    return Console(stderr=stderr)


def _plugins():  # noqa: ANN202
    from w2sbench.plugin_manager import get_plugins

    plugins = get_plugins()
    plugins.collect_all()
    for problem in plugins.problems:
        warnings.warn(str(problem), stacklevel=1)
    return plugins


def cmd_run(args: argparse.Namespace) -> int:
    from w2sbench.data import default_data_dir
    from w2sbench.progress import Progress, RichProgress
    from w2sbench.report import render_tables
    from w2sbench.runner import RunRequest, default_run_dir, execute, prepare
    from w2sbench.settings import data_dir_arg, parse_options, parse_seeds

    plugins = _plugins()
    request = RunRequest(
        pair=args.pair,
        metrics=args.metrics,
        strategies=args.strategies,
        seeds=parse_seeds(args.seeds),
        finetune=args.finetune,
        options=parse_options(args.option),
        train=parse_options(args.train),
        data_dir=data_dir_arg(args.data_dir or default_data_dir()),
        device=args.device,
    )
    settings, pair = prepare(request, plugins)
    run_dir = Path(args.out) if args.out else default_run_dir(settings)
    progress = Progress() if (args.quiet or args.json) else RichProgress()
    try:
        results = execute(settings, pair, run_dir, plugins, progress, reconfigure=args.reconfigure,
                          cache_dir=Path(args.cache_dir) if args.cache_dir else None)
    finally:
        progress.close()
    if args.json:
        print(json.dumps(results, indent=2))
    elif not args.quiet:
        console = _console()
        render_tables(results, console)
        console.print(f"[dim]results: {run_dir / 'results.json'}[/]")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from rich.table import Table

    plugins = _plugins()
    table = Table()
    if args.what == "pairs":
        for col in ("pair", "weak", "strong", "CPU fine-tune", "description", "plugin"):
            table.add_column(col)
        for name, p in plugins.pairs.items.items():
            table.add_row(name, p.weak, p.strong, p.cpu_finetune or "head", p.description, plugins.pairs.owners[name])
        table.caption = "Any WEAK:STRONG of model names also works; see `w2sbench list models`."
    elif args.what == "models":
        for col in ("family", "name", "size / notes", "plugin"):
            table.add_column(col)
        for fname, family in plugins.model_families.items.items():
            for model in family.names():
                table.add_row(fname, model, family.describe(model), plugins.model_families.owners[fname])
    elif args.what == "strategies":
        for col in ("strategy", "regularize weak", "regularize strong", "transfer", "description", "plugin"):
            table.add_column(col)
        for name, s in plugins.strategies.items.items():
            table.add_row(name, str(s.regularize_weak), str(s.regularize_strong), s.transfer, s.description, plugins.strategies.owners[name])
    elif args.what == "metrics":
        for col in ("trust metric", "primary", "metrics (↑ higher is better)", "description", "plugin"):
            table.add_column(col)
        for name, m in plugins.trust_metrics.items.items():
            listed = ", ".join(f"{x.name}{'↑' if x.higher_is_better else '↓'}" for x in m.metrics)
            table.add_row(name, m.primary, listed, m.description, plugins.trust_metrics.owners[name])
    else:
        for col in ("exporter", "description", "plugin"):
            table.add_column(col)
        for name, e in plugins.exporters.items.items():
            table.add_row(name, e.description, plugins.exporters.owners[name])
    _console().print(table)
    return 0


def cmd_plugins(args: argparse.Namespace) -> int:
    from rich.table import Table

    plugins = _plugins()
    table = Table()
    for col in ("plugin", "package", "version", "module"):
        table.add_column(col)
    for info in plugins.info.values():
        table.add_row(info.name, info.package, info.version, info.module)
    console = _console()
    console.print(table)
    for problem in plugins.problems:
        console.print(f"[red]problem:[/] {problem}")
    if plugins.disabled:
        console.print(f"disabled by W2SBENCH_DISABLE_PLUGINS: {', '.join(plugins.disabled)}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from w2sbench.report import render_tables
    from w2sbench.results import load_results

    results = load_results(Path(args.run))
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        render_tables(results, _console())
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


COMMANDS = {"run": cmd_run, "list": cmd_list, "plugins": cmd_plugins, "report": cmd_report, "export": cmd_export}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    debug = args.debug or os.environ.get("W2SBENCH_DEBUG") == "1"
    try:
        return COMMANDS[args.command](args)
    except W2SBenchError as exc:
        if debug:
            traceback.print_exc()
        _console(stderr=True).print(f"[bold red]error:[/] {exc.problem}" + (f"\n[bold]fix:[/] {exc.fix}" if exc.fix else ""), highlight=False)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted; finished stages are cached, run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
