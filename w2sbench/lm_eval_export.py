"""Export w2sbench trust evaluations as lm-eval tasks: YAML task files plus local JSONL data beside them.

Each registered trust property contributes the tasks its ``lm_eval_tasks`` returns (``LmEvalTask``,
w2sbench/interfaces/lm_eval.py); this module writes them, atomically, as ``DIR/<folder>/<task>.yaml`` with
their JSONL files, every task tagged ``w2sbench``, and a README naming the tags and tasks. Run them with
``lm_eval --include_path DIR --tasks w2sbench`` (every task), or a task or tag name.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from w2sbench.errors import W2SBenchError
from w2sbench.files import atomic_write_text
from w2sbench.interfaces import DataContext, LmEvalTask

__all__ = ["export_lm_eval", "parse_rows", "ALL_TAG"]

ALL_TAG = "w2sbench"
_TASK_NAME = re.compile(r"[A-Za-z0-9_]+")


def parse_rows(text: str) -> tuple[int | None, dict[str, int]]:
    """``--rows``: ``N`` (every property), ``PROPERTY=N`` items, or both, comma-separated
    (``100,fairness=2000``) -> (N or None, {property: N}). Raises W2SBenchError for anything else."""
    default: int | None = None
    per_property: dict[str, int] = {}
    seen: set[str] = set()
    for item in (x.strip() for x in text.split(",")):
        name, sep, number = (part.strip() for part in item.rpartition("="))
        if not (number.isascii() and number.isdigit()) or (sep and not name) or name in seen:
            raise W2SBenchError(f'--rows "{text}": "{item}" is not N or PROPERTY=N, or repeats one.',
                                "Pass e.g. --rows 100 or --rows fairness=2000,ood=100 (each property once).")
        seen.add(name)
        if sep:
            per_property[name] = int(number)
        else:
            default = int(number)
    return default, per_property


def _write_jsonl(path: Path, rows: Sequence[Mapping[str, Any]]) -> Path:
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False, allow_nan=False) + "\n" for r in rows))
    return path


def _write_yaml(path: Path, config: Mapping[str, Any]) -> Path:
    import yaml

    atomic_write_text(path, yaml.safe_dump(dict(config), sort_keys=False, allow_unicode=True, width=1000))
    return path


def _plain_name(name: object) -> bool:
    return isinstance(name, str) and name not in ("", ".", "..") and "/" not in name and "\\" not in name


def _check_task(task: object, where: str) -> LmEvalTask:
    """``task`` if it is a well-formed LmEvalTask, else W2SBenchError naming the property and its plugin."""
    fix = "Fix the property's lm_eval_tasks (see CONTRIBUTING.md, TrustProperty.lm_eval_tasks) or leave it out with --properties."
    if not isinstance(task, LmEvalTask):
        raise W2SBenchError(f"{where} returned {type(task).__name__}, not an LmEvalTask.", fix)
    if not _TASK_NAME.fullmatch(task.name) or task.name == ALL_TAG:
        raise W2SBenchError(f'{where} returned the task name "{task.name}"; lm-eval task names are letters, digits '
                            f'and underscores (and not "{ALL_TAG}", the tag of every task).', fix)
    reserved = {"task", "tag", "dataset_path", "dataset_kwargs"} & set(task.config)
    if reserved:
        raise W2SBenchError(f'{where}: task "{task.name}" sets {", ".join(sorted(reserved))}, which the export writes.', fix)
    if not all(isinstance(v, tuple) and len(v) == 2 for v in task.data.values()):
        raise W2SBenchError(f'{where}: task "{task.name}" has data that is not split -> (file name, rows).', fix)
    files = [file for file, _ in task.data.values()]
    if not _plain_name(task.folder) or not all(_plain_name(f) for f in files) or len(set(files)) != len(files):
        raise W2SBenchError(f'{where}: task "{task.name}" has a folder or data file name that is not one distinct '
                            f"plain name ({task.folder!r}, {files}).", fix)
    return task


def _property_tasks(
    plugins: Any, name: str, ctx: DataContext, rows: int | None, fewshot_rows: int
) -> list[LmEvalTask]:
    prop = plugins.trust_properties.get(name)
    where = f'Trust property "{name}" (plugin {plugins.trust_properties.owners.get(name, "?")})'
    try:
        tasks = prop.lm_eval_tasks(ctx, prop.options(), rows, fewshot_rows)
    except W2SBenchError:
        raise
    except Exception as exc:  # noqa: BLE001 - a plugin's bug is named, not shown as the core's traceback
        raise W2SBenchError(f"{where} failed to build its lm-eval tasks ({type(exc).__name__}: {exc}).",
                            "Report it to the plugin's authors; --debug shows the traceback.") from exc
    return [_check_task(task, where) for task in tasks]


def _check_sizes(rows: int | None, rows_by_property: Mapping[str, int], fewshot_rows: int) -> None:
    sizes = [(f"--rows {rows}", rows), *((f"--rows {k}={v}", v) for k, v in rows_by_property.items())]
    for what, value in sizes:
        if value is not None and value < 1:
            raise W2SBenchError(f"{what}: an exported task needs at least one test row.",
                                "Pass a positive number, or leave it out for each property's own default size.")
    if fewshot_rows < 0:
        raise W2SBenchError(f"--fewshot-rows {fewshot_rows} is negative.", "Pass 0 or more (16 by default).")


def _check_unique(tasks: Sequence[tuple[str, LmEvalTask]]) -> None:
    """No two tasks share a name, and no two write the same file."""
    owner: dict[str, str] = {}
    for name, task in tasks:
        paths = [f"{task.folder}/{file}" for file, _ in task.data.values()] + [f"{task.folder}/{task.name}.yaml"]
        for key in [task.name, *paths]:
            if key in owner:
                raise W2SBenchError(f'Trust properties "{owner[key]}" and "{name}" both export lm-eval task or file "{key}".',
                                    "Export one of them (--properties), or rename one task.")
            owner[key] = name


def _collect(
    plugins: Any, ctx: DataContext, properties: Sequence[str] | None, rows: int | None,
    rows_by_property: Mapping[str, int], fewshot_rows: int,
) -> list[LmEvalTask]:
    """Every selected property's tasks (all registered properties when ``properties`` is None)."""
    _check_sizes(rows, rows_by_property, fewshot_rows)
    chosen = list(properties) if properties is not None else plugins.trust_properties.names()
    for name in [*chosen, *rows_by_property]:
        plugins.trust_properties.get(name)  # an unknown name: did-you-mean error
    stray = [name for name in rows_by_property if name not in chosen]
    if stray:
        raise W2SBenchError(f"--rows names {', '.join(stray)}, which --properties leaves out.", "Drop it or add it to --properties.")
    tasks: list[tuple[str, LmEvalTask]] = []
    for name in chosen:
        own = _property_tasks(plugins, name, ctx, rows_by_property.get(name, rows), fewshot_rows)
        if not own and properties is not None:
            raise W2SBenchError(f'Trust property "{name}" exports no lm-eval tasks.', "Leave it out of --properties.")
        tasks += [(name, task) for task in own]
    _check_unique(tasks)
    if not tasks:
        raise W2SBenchError("No registered trust property exports lm-eval tasks.",
                            "Install a plugin whose trust property does (`w2sbench list properties`).")
    return [task for _, task in tasks]


def _write_task(out_dir: Path, task: LmEvalTask) -> list[Path]:
    folder = out_dir / task.folder
    try:
        files = {split: _write_jsonl(folder / file, rows) for split, (file, rows) in task.data.items()}
    except (TypeError, ValueError) as exc:
        raise W2SBenchError(f'The rows of lm-eval task "{task.name}" are not finite JSON ({exc}); nothing non-finite is written.',
                            "Fix the trust property's lm_eval_tasks.") from None
    # Absolute data paths: datasets resolves relative ones against the working directory, not the YAML.
    config = {
        "task": task.name,
        "tag": [*task.tags, ALL_TAG],
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {split: str(path.resolve()) for split, path in files.items()}},
        **task.config,
    }
    return [_write_yaml(folder / f"{task.name}.yaml", config), *files.values()]


def _readme(out_dir: Path, tasks: Sequence[LmEvalTask]) -> Path:
    tags: dict[str, str] = {ALL_TAG: "all"}
    for task in tasks:
        for tag, description in task.tags.items():
            tags.setdefault(tag, description)
    untagged = [f"`{t.name}`" for t in tasks if not t.tags]
    listing = f"Tags: {', '.join(f'`{tag}` ({what})' for tag, what in tags.items())}"
    if untagged:
        listing += f"; task{'s' if len(untagged) > 1 else ''} {', '.join(untagged)}"
    readme = out_dir / "README.md"
    atomic_write_text(
        readme,
        "# w2sbench tasks for lm-eval\n\nWritten by `w2sbench export-lm-eval`. Run with\n\n"
        f"    lm_eval --model hf --model_args pretrained=MODEL --include_path {out_dir.resolve()} --tasks {ALL_TAG}\n\n"
        f"{listing}. Data files are referenced by absolute path: re-run the export after moving this folder.\n",
    )
    return readme


def export_lm_eval(
    out_dir: Path, plugins: Any, data_dir: str | None = None, rows: int | None = None, fewshot_rows: int = 16,
    properties: Sequence[str] | None = None, rows_by_property: Mapping[str, int] | None = None,
) -> list[Path]:
    """Write the lm-eval tasks of ``properties`` (default: every registered one that exports any) under
    ``out_dir``; returns the files written (README first).

    ``rows``: the most test rows per task (None: each property's own default); ``rows_by_property``
    overrides it per property name; ``fewshot_rows``: demonstrations per task where a property samples
    them. Raises W2SBenchError for an unknown property, a size below 1 (``fewshot_rows`` below 0), a
    selected property without tasks, two tasks of one name, or a malformed task.
    """
    out_dir = Path(out_dir)
    ctx = DataContext(data_dir=Path(data_dir) if data_dir else None, cache_dir=out_dir / ".downloads")
    tasks = _collect(plugins, ctx, properties, rows, dict(rows_by_property or {}), fewshot_rows)
    files = [path for task in tasks for path in _write_task(out_dir, task)]
    return [_readme(out_dir, tasks), *files]
