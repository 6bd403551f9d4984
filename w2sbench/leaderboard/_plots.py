"""The board's inline SVG plots (no scripts, no network): the primary trust score against the strong
model's size, and the trust gap recovered per strategy with its 95% interval over seeds."""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from w2sbench.interfaces import TrustProperty

if TYPE_CHECKING:
    from w2sbench.leaderboard._board import BoardRow

__all__ = ["gap_plot", "size_plot"]

_PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22")


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _params(n: int | None) -> str:
    if not n:
        return "?"
    if n >= 1e9:
        return f"{n / 1e9:.1f}B"
    return f"{n / 1e6:.0f}M" if n >= 1e6 else f"{n / 1e3:.0f}k"


def _interval(summary: Mapping[str, Any] | None) -> tuple[float | None, float | None, float | None]:
    summary = summary or {}
    ci = summary.get("ci95") or [None, None]
    return summary.get("mean"), ci[0], ci[1]


def _ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    return [lo + (hi - lo) * i / (count - 1) for i in range(count)]


def size_plot(metric: TrustProperty, rows: Sequence[BoardRow]) -> str:
    """Primary trust score (mean with 95% interval) against the strong model's parameter count, per strategy."""
    primary = metric.primary
    points = []
    for row in rows:
        mean, lo, hi = _interval(row.scores.get(primary))
        if mean is not None and row.strong_params:
            points.append((math.log10(row.strong_params), mean, lo if lo is not None else mean, hi if hi is not None else mean, row))
    if not points:
        return '<p class="note">No entry records its strong model\'s size, so there is nothing to plot.</p>'
    w, h, left, right, top, bottom = 720, 380, 64, 20, 16, 48
    xs = [p[0] for p in points]
    ys = [v for p in points for v in p[1:4]]
    x0, x1 = min(xs), max(xs)
    if x1 - x0 < 0.2:
        x0, x1 = x0 - 0.5, x1 + 0.5
    y0, y1 = min(ys), max(ys)
    pad = (y1 - y0) * 0.1 or 0.05
    y0, y1 = y0 - pad, y1 + pad

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * (w - left - right)

    def sy(y: float) -> float:
        return top + (y1 - y) / (y1 - y0) * (h - top - bottom)

    strategies = sorted({p[4].strategy for p in points})
    color = {s: _PALETTE[i % len(_PALETTE)] for i, s in enumerate(strategies)}
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" class="plot" role="img" '
        f'aria-label="{_e(primary)} against strong model size">',
        f'<rect x="{left}" y="{top}" width="{w - left - right}" height="{h - top - bottom}" fill="none" stroke="#999"/>',
    ]
    for y in _ticks(y0, y1):
        parts.append(f'<line x1="{left - 4}" x2="{left}" y1="{sy(y):.1f}" y2="{sy(y):.1f}" stroke="#999"/>')
        parts.append(f'<text x="{left - 6}" y="{sy(y) + 4:.1f}" text-anchor="end">{y:.3f}</text>')
    for x in sorted(set(xs)):
        parts.append(f'<line x1="{sx(x):.1f}" x2="{sx(x):.1f}" y1="{h - bottom}" y2="{h - bottom + 4}" stroke="#999"/>')
        parts.append(f'<text x="{sx(x):.1f}" y="{h - bottom + 18}" text-anchor="middle">{_e(_params(round(10 ** x)))}</text>')
    parts.append(f'<text x="{(left + w - right) / 2}" y="{h - 8}" text-anchor="middle">strong model parameters (log scale)</text>')
    parts.append(
        f'<text transform="translate(14 {(top + h - bottom) / 2}) rotate(-90)" text-anchor="middle">{_e(primary)} '
        f'({"higher" if next((m.higher_is_better for m in metric.metrics if m.name == primary), True) else "lower"} is better)</text>'
    )
    for k, strategy in enumerate(strategies):
        mine = sorted((p for p in points if p[4].strategy == strategy), key=lambda p: (p[0], p[1]))
        c = color[strategy]
        dodge = (k - (len(strategies) - 1) / 2) * 7  # strategies at the same size sit side by side, not on top

        def px(x: float, dodge: float = dodge) -> float:
            return sx(x) + dodge

        if len(mine) > 1:
            path = " ".join(f"{px(p[0]):.1f},{sy(p[1]):.1f}" for p in mine)
            parts.append(f'<polyline points="{path}" fill="none" stroke="{c}" stroke-opacity=".5"/>')
        for x, mean, lo, hi, row in mine:
            parts.append(f'<line x1="{px(x):.1f}" x2="{px(x):.1f}" y1="{sy(lo):.1f}" y2="{sy(hi):.1f}" stroke="{c}"/>')
            label = f"{row.submission}: {row.weak} → {row.strong} ({row.finetune}), {strategy}: {primary} = {mean:.4f}"
            parts.append(f'<circle cx="{px(x):.1f}" cy="{sy(mean):.1f}" r="5" fill="{c}" fill-opacity=".8"><title>{_e(label)}</title></circle>')
    parts.append("</svg>")
    legend = "".join(f'<span class="swatch" style="background:{color[s]}"></span>{_e(s)}' for s in strategies)
    return "".join(parts) + f'<p class="legend">{legend}</p>'




# characters of 12px text that fit right of the gap plot's strategy labels (464 of its 600 units; ~6.1 per character
# measured in Chromium: 68 characters spanned 417 units)
_REASON_CHARS = 74


def _undefined_reason(row: BoardRow, defined: int, short: bool = False) -> str:
    """Why a gap recovered is undefined; ``short``: a form that fits the gap plot's row (the full one is its tooltip)."""
    refs = row.gap_references or {}
    weak, ceiling = refs.get("weak", "weak"), refs.get("ceiling", "ceiling")
    if defined == 0:
        reason = f"undefined on every seed: {ceiling} not more trustworthy than {weak}"
        return f"undefined on every seed: {ceiling} not above {weak}" if short and len(reason) > _REASON_CHARS else reason
    return f"defined on {defined} of {row.seeds} seeds"


def _text_band(x: float, y: float, width: float, step: int) -> str:
    """A white band behind a row of text only (an entry's label, an undefined ratio): no grid line crosses it."""
    return f'<rect x="{x}" y="{y - step / 2 + 1:.1f}" width="{width}" height="{step - 2}" fill="#fff"/>'


def gap_plot(metric: TrustProperty, groups: Sequence[tuple[str, Sequence[BoardRow]]]) -> str:
    """Trust gap recovered on the primary metric, (strategy - weak) / (ceiling - weak), per strategy: the mean
    over the seeds where it is defined, with its 95% t-interval; 0 = the weak reference, 1 = the ceiling.
    Undefined ratios are written out with the reason. ``groups`` is (entry label, its strategy rows)."""
    primary = metric.primary
    items: list[tuple[str, Any]] = []
    values: list[float] = []
    for label, rows in groups:
        items.append(("group", label))
        for row in rows:
            mean, lo, hi = _interval(row.gaps.get(primary))
            items.append(("row", (row, mean, lo, hi)))
            values += [v for v in (mean, lo, hi) if v is not None]
    x0 = max(-2.0, math.floor(min([-0.25, *values]) * 2) / 2)
    x1 = min(3.0, math.ceil(max([1.25, *values]) * 2) / 2)
    w, left, right, top, step = 600, 130, 20, 8, 24
    h = top + step * len(items) + 44

    def sx(x: float) -> float:
        return left + (min(max(x, x0), x1) - x0) / (x1 - x0) * (w - left - right)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" class="plot gap" role="img" '
             f'aria-label="trust gap recovered on {_e(primary)} per strategy">']
    base = top + step * len(items)
    # a wide axis gets whole-number ticks, so "0 (weak)" and "1 (ceiling)" keep room for their words
    step_x = 0.5 if x1 - x0 <= 3 else 1.0
    tick = math.ceil(x0 / step_x) * step_x
    while tick <= x1 + 1e-9:
        dash = "" if tick in (0.0, 1.0) else ' stroke-dasharray="2 3"'
        parts.append(f'<line x1="{sx(tick):.1f}" x2="{sx(tick):.1f}" y1="{top}" y2="{base}" stroke="#bbb"{dash}/>')
        name = {0.0: " (weak)", 1.0: " (ceiling)"}.get(tick, "")
        parts.append(f'<text x="{sx(tick):.1f}" y="{base + 16}" text-anchor="middle">{tick:g}{name}</text>')
        tick += step_x
    # short enough to fit the 600-unit-wide plot with a long metric name (the screenshot cut the longer one)
    parts.append(f'<text x="{(left + w - right) / 2}" y="{base + 36}" text-anchor="middle">gap recovered on '
                 f"{_e(primary)}: mean over seeds, 95% CI</text>")
    strategies = sorted({it[1][0].strategy for it in items if it[0] == "row"})
    color = {s: _PALETTE[i % len(_PALETTE)] for i, s in enumerate(strategies)}
    for k, (kind, item) in enumerate(items):
        y = top + step * k + step / 2
        if kind == "group":
            parts.append(_text_band(0, y, w, step))
            parts.append(f'<text x="4" y="{y + 4:.1f}" font-weight="bold">{_e(item)}</text>')
            continue
        row, mean, lo, hi = item
        defined = int((row.gaps.get(primary) or {}).get("n") or 0)
        parts.append(f'<text x="{left - 8}" y="{y + 4:.1f}" text-anchor="end">{_e(row.strategy)}</text>')
        if mean is None:
            parts.append(_text_band(left, y, w - left, step))
            parts.append(f'<text x="{left + 6}" y="{y + 4:.1f}" fill="#666"><title>{_e(_undefined_reason(row, 0))}</title>'
                         f"{_e(_undefined_reason(row, 0, short=True))}</text>")
            continue
        c = color[row.strategy]
        if lo is not None and hi is not None:
            parts.append(f'<line x1="{sx(lo):.1f}" x2="{sx(hi):.1f}" y1="{y:.1f}" y2="{y:.1f}" stroke="{c}" stroke-width="2"/>')
        tip = f"{row.strategy}: {mean:.3f}" + (f" [{lo:.3f}, {hi:.3f}]" if lo is not None else " (no interval)")
        if defined < row.seeds:
            tip += f"; {_undefined_reason(row, defined)}"
        parts.append(f'<circle cx="{sx(mean):.1f}" cy="{y:.1f}" r="5" fill="{c}"><title>{_e(tip)}</title></circle>')
        if not x0 <= mean <= x1:  # off the axis: the dot sits at the edge, the value is written beside it
            edge, anchor = (sx(x1) - 9, "end") if mean > x1 else (sx(x0) + 9, "start")
            parts.append(f'<text x="{edge:.1f}" y="{y + 4:.1f}" text-anchor="{anchor}" class="halo">{mean:.2f} (off the axis)</text>')
        if defined < row.seeds:
            parts.append(f'<text x="{w - right}" y="{y + 4:.1f}" text-anchor="end" fill="#777">{defined}/{row.seeds} seeds</text>')
    parts.append("</svg>")
    return '<div class="scroll">' + "".join(parts) + "</div>"
