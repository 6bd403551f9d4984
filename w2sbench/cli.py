"""The ``w2sbench`` command line: one handler per subcommand (the arguments: w2sbench/cli_parser.py).

Each handler imports what its subcommand needs when it runs, so ``w2sbench --help`` stays instant."""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from w2sbench.cli_parser import LIST_KINDS, build_parser
from w2sbench.errors import W2SBenchError

if TYPE_CHECKING:  # the plugin manager loads on use: `w2sbench --help` stays instant
    from w2sbench.plugin_manager import Plugins

__all__ = ["main", "build_parser"]


def _console(stderr: bool = False):  # noqa: ANN202
    from rich.console import Console

    # Errors on stderr are never hard-wrapped: a message stays greppable in logs whatever the width.
    return Console(stderr=stderr, soft_wrap=stderr)


def _plugins(warn: bool = True):  # noqa: ANN202
    """Every plugin loaded; each problem a warning unless the caller shows them itself (``warn=False``)."""
    from w2sbench.plugin_manager import get_plugins

    plugins = get_plugins()
    plugins.collect_all()
    for problem in plugins.problems if warn else ():
        warnings.warn(str(problem), stacklevel=1)
    return plugins


def _properties_argument(args: argparse.Namespace) -> str | None:
    """--properties, or its deprecated name --metrics (with a warning); never both, which nothing would merge."""
    if args.metrics is not None:
        if args.properties is not None:
            raise W2SBenchError("--properties and --metrics (its old name) are both given.", "Pass only --properties.")
        warnings.warn("--metrics is renamed --properties; the old name works for one more release.", FutureWarning, stacklevel=1)
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
        train=parse_options(args.train, "--train"),
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

    executor = make_executor(args.executor, args.ray_address, progress=progress, workers=args.workers, device=settings.device)
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
    if args.what is not None:
        _list(args.what, plugins)
        return 0
    # `w2sbench list`: every kind, each under a rule naming the command that shows it alone.
    for what in LIST_KINDS:
        _console().rule(f"w2sbench list {what}")
        _list(what, plugins)
    return 0


def _list(what: str, plugins: Plugins) -> None:
    """`w2sbench list WHAT`: one kind of registered thing."""
    from w2sbench.cli_tables import ListTable, list_metrics, list_options

    table = ListTable()  # identifiers whole; names such as hf:<org>/<name>[@revision] are text, not rich markup
    if what == "pairs":
        for col in ("pair", "weak -> strong", "CPU fine-tune", "description"):
            table.add_column(col)
        for name, p in plugins.pairs.items.items():
            description = f"{p.description} (plugin {plugins.pairs.owners[name]})"
            table.add_row(name, f"{p.weak} -> {p.strong}", p.cpu_finetune or "head", description)
        table.caption = "Any WEAK:STRONG of model names also works; see `w2sbench list models`."
    elif what == "models":
        for col in ("family", "name", "size / notes", "plugin"):
            table.add_column(col)
        for fname, family in plugins.model_families.items.items():
            for model in family.names():
                table.add_row(fname, model, family.describe(model), plugins.model_families.owners[fname])
    elif what == "strategies":
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
        return
    elif what in ("properties", "metrics"):
        list_metrics(_console(), plugins)
        return
    elif what == "options":
        list_options(_console(), plugins.trust_properties.items.values())
        return
    else:
        for col in ("exporter", "description", "plugin"):
            table.add_column(col)
        for name, e in plugins.exporters.items.items():
            table.add_row(name, e.description, plugins.exporters.owners[name])
    _console().print(table)


def cmd_plugins(args: argparse.Namespace) -> int:
    from rich.markup import escape
    from rich.table import Table

    plugins = _plugins(warn=False)  # its problems are part of this listing, printed once below
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
        cache_dir=Path(args.cache_dir) if args.cache_dir else None,
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


# Deprecated export-lm-eval flags (one release): flag -> the trust property whose --rows it sets.
_OLD_ROWS_FLAGS = {"adult_rows": "fairness", "style_rows": "ood"}


def _export_rows(args: argparse.Namespace) -> tuple[int | None, dict[str, int]]:
    """--rows, plus the deprecated --adult-rows / --style-rows (each with a FutureWarning)."""
    from w2sbench.lm_eval_export import parse_rows

    rows, per_property = parse_rows(args.rows) if args.rows is not None else (None, {})
    for attribute, name in _OLD_ROWS_FLAGS.items():
        value, flag = getattr(args, attribute), "--" + attribute.replace("_", "-")
        if value is None:
            continue
        warnings.warn(f"{flag} is renamed --rows {name}=N; the old name works for one more release.", FutureWarning, stacklevel=1)
        if per_property.setdefault(name, value) != value:
            raise W2SBenchError(f"--rows {name}={per_property[name]} and {flag} {value} (its old name) differ.",
                                f"Pass only --rows {name}=N.")
    return rows, per_property


def cmd_export_lm_eval(args: argparse.Namespace) -> int:
    from w2sbench.data import default_data_dir
    from w2sbench.lm_eval_export import export_lm_eval
    from w2sbench.settings import parse_list

    rows, per_property = _export_rows(args)
    properties = parse_list(args.properties, "trust properties") if args.properties is not None else None
    files = export_lm_eval(Path(args.dir), _plugins(), args.data_dir or default_data_dir(), rows, args.fewshot_rows,
                           properties, per_property)
    tasks = sorted(p.stem for p in files if p.suffix == ".yaml")
    _console().print(f"wrote {len(tasks)} lm-eval tasks to {args.dir}: {', '.join(tasks)}", highlight=False)
    _console().print("run them with:", highlight=False)
    # the command on a line of its own, never wrapped: it is copied from logs as well as terminals
    _console().print(f"lm_eval --model hf --model_args pretrained=MODEL --include_path {args.dir} --tasks w2sbench",
                     soft_wrap=True, highlight=False, markup=False)
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
    device = "cpu" if all(job.settings.device == "cpu" for job in jobs) else "cuda"
    executor = make_executor(kind, args.ray_address or config.ray_address, config.resources, retries, progress, args.workers, device)
    try:
        outcome = execute_pairs(jobs, plugins, progress, executor, config.shared_cache, args.reconfigure)
    finally:
        executor.close()
        progress.close()
    if follower:
        return 1 if outcome.failures else 0
    summary = write_sweep_summary(config.out, jobs, outcome, kind)
    if not args.quiet:
        table = Table(title=f"sweep: {len(jobs)} pair{'' if len(jobs) == 1 else 's'} on the {kind} executor")
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


def _refuse_extras(parser: argparse.ArgumentParser, argv: Sequence[str], extras: Sequence[str], command: str | None) -> None:
    """Arguments no parser took: the likely mistake named where it is known, else argparse's own error."""
    if command and "--debug" in extras:
        raise W2SBenchError(
            f"--debug is an option of w2sbench itself, so it goes before the subcommand, not after `{command}`.",
            f"Write w2sbench --debug {command} ... (or set W2SBENCH_DEBUG=1).",
        )
    for i in range(2, len(argv)):  # `--option fairness.weight 0.5`: the value after a space is left over
        flag, name, value = argv[i - 2], argv[i - 1], argv[i]
        if flag in ("--option", "--train") and "=" not in name and value in extras:
            form = "an option is PROPERTY.KEY=VALUE" if flag == "--option" else "a training setting is MODE.KEY=VALUE"
            raise W2SBenchError(
                f'Unrecognized argument "{value}" after {flag} {name}: {form}, one word.',
                f"Write {flag} {name}={value} (no spaces around =).",
            )
    parser.error(f"unrecognized arguments: {' '.join(extras)}")


def _stdout_closed() -> bool:
    """Whether stdout is a pipe whose reader has gone: a BrokenPipeError from anything else (a worker's
    connection) is a real failure."""
    import select

    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(event & (select.POLLERR | select.POLLHUP) for _, event in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll() (Windows), or stdout is no file (a test's capture)
        return False


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    if args.command is None and not extras:
        parser.print_help()
        return 2
    debug = args.debug or os.environ.get("W2SBENCH_DEBUG") == "1"
    if not debug:  # a user reads "warning: ...", not the source line that raised it
        warnings.formatwarning = lambda message, category, *_a, **_k: f"warning: {message}\n"
    try:
        if extras:
            _refuse_extras(parser, sys.argv[1:] if argv is None else argv, extras, args.command)
        code = COMMANDS[args.command](args)
        sys.stdout.flush()  # a closed pipe shows here, where it is handled, not at interpreter exit
        return code
    except BrokenPipeError as exc:
        if not _stdout_closed():
            return _unexpected(exc, debug)
        # `w2sbench report RUN --json | head`: the reader has what it wanted; not a bug, nothing to say. Python's
        # recipe: stdout onto devnull, so the interpreter's final flush cannot fail again, and exit status 1, the
        # status rich's Console gives (its on_broken_pipe does the same), so every subcommand ends alike whether
        # it prints tables or JSON.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
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
        return _unexpected(exc, debug)


def _unexpected(exc: Exception, debug: bool) -> int:
    """A bug in w2sbench or a plugin: one paragraph saying so (with --debug, the traceback instead)."""
    if debug:
        raise exc
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
