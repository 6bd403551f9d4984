"""Report figures (PNG and SVG, matplotlib's Agg canvas): per property, scores with 95% intervals, the
trust/task trade-off, and, across runs of one strong-model family, trust against strong-model size."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from w2sbench.report_values import score_interval

__all__ = ["write_plots", "plot_scores", "plot_tradeoff", "plot_scaling", "FORMATS"]

FORMATS = ("png", "svg")
_BASELINE_COLORS = {"weak": "#9e9e9e", "weak-reg": "#616161", "ceiling": "#90caf9", "ceiling-reg": "#1565c0"}
_STRATEGY_COLORS = ["#e65100", "#2e7d32", "#6a1b9a", "#c62828", "#00838f", "#f9a825", "#4e342e"]
_MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    # A bare Figure draws on the Agg canvas: no pyplot state, no display needed.
    return Figure(figsize=(width, height), dpi=120, layout="constrained")


def _save(fig: Any, out_dir: Path, stem: str) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in FORMATS:
        path = out_dir / f"{stem}.{fmt}"
        fig.savefig(path, format=fmt)
        paths.append(path)
    return paths


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "run"


def _colors(cells: Sequence[str]) -> dict[str, str]:
    strategies = [c for c in cells if c not in _BASELINE_COLORS]
    colors = dict(_BASELINE_COLORS)
    colors.update({c: _STRATEGY_COLORS[i % len(_STRATEGY_COLORS)] for i, c in enumerate(strategies)})
    return colors


def _metric(prop: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
    return next((m for m in prop["metrics"] if m["name"] == name), None)


def _label(metric: Mapping[str, Any]) -> str:
    return f"{metric['name'].replace('_', ' ')} ({'higher' if metric['higher_is_better'] else 'lower'} is better)"


def _errors(values: Sequence[Mapping[str, Any]]) -> Any:
    """Asymmetric error-bar lengths from intervals (zero where there is none)."""
    import numpy as np

    low = [v["mean"] - v["lo"] if v["lo"] is not None else 0.0 for v in values]
    high = [v["hi"] - v["mean"] if v["hi"] is not None else 0.0 for v in values]
    return np.array([low, high]).clip(min=0.0)


def _title(results: Mapping[str, Any], prop_name: str) -> str:
    s = results["settings"]
    return f"{prop_name}: {s['weak']} → {s['strong']} ({s['finetune_weak']}:{s['finetune_strong']}, seeds {','.join(map(str, s['seeds']))})"


def _method_note(values: Sequence[Mapping[str, Any]]) -> str:
    methods = sorted({v["method"] for v in values if v.get("method")})
    return "error bars: 95% " + "; ".join(methods) if methods else "no intervals (one seed, no bootstrap)"


def plot_scores(results: Mapping[str, Any], prop_name: str, boot: Mapping[str, Any] | None, out_dir: Path, stem: str) -> list[Path]:
    """Bars of the task score and the primary trust score for every cell, with 95% intervals."""
    prop = results["properties"][prop_name]
    cells = list(prop["cells"])
    colors = _colors(cells)
    panels = [m for m in (_metric(prop, "accuracy"), _metric(prop, prop["primary_trust_metric"])) if m is not None]
    fig = _figure(5.2 * len(panels), 4.2)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    notes = []
    for ax, metric in zip(axes, panels, strict=True):
        values = [score_interval(prop, c, metric["name"], boot) for c in cells]
        notes += values
        shown = [i for i, v in enumerate(values) if v["mean"] is not None]
        ax.bar(
            [i for i in shown],
            [values[i]["mean"] for i in shown],
            yerr=_errors([values[i] for i in shown]),
            color=[colors[cells[i]] for i in shown],
            capsize=4,
            edgecolor="black",
            linewidth=0.5,
        )
        for i in set(range(len(cells))) - set(shown):
            ax.text(i, 0, "undefined", rotation=90, ha="center", va="bottom", fontsize=8)
        ax.set_xticks(range(len(cells)), cells, rotation=35, ha="right")
        ax.set_ylabel(_label(metric))
        ax.set_title(metric["name"].replace("_", " "), fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        ax.axvline(3.5, color="black", linewidth=0.6, linestyle=":")  # baselines | strategies
    fig.suptitle(_title(results, prop_name), fontsize=10)
    fig.supxlabel(_method_note(notes), fontsize=8)
    return _save(fig, out_dir, stem)


def plot_tradeoff(results: Mapping[str, Any], prop_name: str, boot: Mapping[str, Any] | None, out_dir: Path, stem: str) -> list[Path]:
    """Primary trust score against task accuracy, one point (with 95% intervals) per cell."""
    prop = results["properties"][prop_name]
    task, trust = _metric(prop, "accuracy"), _metric(prop, prop["primary_trust_metric"])
    if task is None or trust is None:
        return []
    cells = list(prop["cells"])
    colors = _colors(cells)
    fig = _figure(7.0, 4.4)
    ax = fig.subplots()
    notes = []
    for i, cell in enumerate(cells):
        x = score_interval(prop, cell, task["name"], boot)
        y = score_interval(prop, cell, trust["name"], boot)
        notes += [x, y]
        if x["mean"] is None or y["mean"] is None:
            continue
        ax.errorbar(
            [x["mean"]], [y["mean"]], xerr=_errors([x]), yerr=_errors([y]), fmt=_MARKERS[i % len(_MARKERS)],
            color=colors[cell], markersize=8, capsize=3, label=cell, markeredgecolor="black", markeredgewidth=0.5,
        )
    ax.set_xlabel(_label(task))
    ax.set_ylabel(_label(trust))
    ax.grid(alpha=0.3)
    # Outside the axes, so the legend never covers a point.
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, title="cell", title_fontsize=8)
    ax.set_title(_title(results, prop_name) + "\ntrust vs task trade-off", fontsize=9)
    fig.supxlabel(_method_note(notes), fontsize=8)
    return _save(fig, out_dir, stem)


def plot_scaling(
    runs: Sequence[tuple[Mapping[str, Any], Mapping[str, Any] | None]], prop_name: str, family: str, out_dir: Path, stem: str
) -> list[Path]:
    """Task and trust score against strong-model size, one line per strategy (and the ceilings); ``runs`` are
    (results.json, bootstrap intervals or None) per run."""
    ordered = sorted(runs, key=lambda r: r[0]["models"]["strong"].get("params") or 0)
    props = [r["properties"][prop_name] for r, _ in ordered]
    sizes = [r["models"]["strong"]["params"] for r, _ in ordered]
    cells = [c for c in props[0]["cells"] if c not in {"weak", "weak-reg"} and all(c in p["cells"] for p in props)]
    colors = _colors(list(props[0]["cells"]))
    panels = [m for m in (_metric(props[0], "accuracy"), _metric(props[0], props[0]["primary_trust_metric"])) if m is not None]
    fig = _figure(5.0 * len(panels) + 1.6, 4.2)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    notes = []
    for ax, metric in zip(axes, panels, strict=True):
        for i, cell in enumerate(cells):
            values = [score_interval(p, cell, metric["name"], (b or {}).get(prop_name)) for p, (_, b) in zip(props, ordered, strict=True)]
            notes += values
            points = [(s, v) for s, v in zip(sizes, values, strict=True) if v["mean"] is not None]
            if not points:
                continue
            # A small multiplicative dodge keeps the error bars of different cells apart on the log axis.
            dodge = 1.0 + 0.02 * (i - (len(cells) - 1) / 2)
            ax.errorbar(
                [s * dodge for s, _ in points], [v["mean"] for _, v in points], yerr=_errors([v for _, v in points]),
                color=colors[cell], marker=_MARKERS[i % len(_MARKERS)], capsize=3, label=cell,
                linestyle="--" if cell.startswith("ceiling") else "-",
            )
        ax.set_xscale("log")
        ax.minorticks_off()
        ax.set_xticks(sorted(set(sizes)), [_size_label(n) for n in sorted(set(sizes))])
        ax.set_xlabel(f"strong model parameters ({family})")
        ax.set_ylabel(_label(metric))
        ax.grid(alpha=0.3, which="both")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right upper", fontsize=8, title="cell", title_fontsize=8)
    weak = sorted({r["settings"]["weak"] for r, _ in ordered})
    fig.suptitle(f"{prop_name}: weak {', '.join(weak)} → {family} strong models of {len(sizes)} sizes", fontsize=10)
    fig.supxlabel(_method_note(notes), fontsize=8)
    return _save(fig, out_dir, stem)


def _size_label(params: int) -> str:
    return f"{params / 1e9:.1f}B" if params >= 1e9 else f"{params / 1e6:.1f}M" if params >= 1e6 else f"{params / 1e3:.0f}K"


def write_plots(runs: Sequence[tuple[Mapping[str, Any], Mapping[str, Any] | None, str]], out_dir: Path) -> list[Path]:
    """Every figure for these runs (results, bootstrap intervals per property, label); returns the files."""
    out_dir = Path(out_dir)
    files: list[Path] = []
    for results, intervals, label in runs:
        prefix = f"{_slug(label)}-" if len(runs) > 1 else ""
        for prop_name in results["properties"]:
            boot = (intervals or {}).get(prop_name)
            files += plot_scores(results, prop_name, boot, out_dir, f"{prefix}{_slug(prop_name)}-scores")
            files += plot_tradeoff(results, prop_name, boot, out_dir, f"{prefix}{_slug(prop_name)}-tradeoff")
    families: dict[str, list[tuple[Mapping[str, Any], Mapping[str, Any] | None]]] = {}
    for results, intervals, _ in runs:
        strong = results["models"]["strong"]
        if strong.get("params") and strong.get("family"):
            families.setdefault(strong["family"], []).append((results, intervals))
    for family, members in families.items():
        if len({r["models"]["strong"]["params"] for r, _ in members}) < 2:
            continue
        shared = set.intersection(*(set(r["properties"]) for r, _ in members))
        for prop_name in sorted(shared):
            files += plot_scaling(members, prop_name, family, out_dir, f"scaling-{_slug(family)}-{_slug(prop_name)}")
    return files
