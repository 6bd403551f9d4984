"""Render the leaderboard from validated submissions: a CSV and a Markdown table per property, and
one self-contained static HTML page (inline CSS/JS/SVG, no network) that works from a file URL.

Every string that came from a submission is escaped for its output format; the page also carries a
Content-Security-Policy that lets only its own script (by hash) run.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import html
import io
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from w2sbench.files import atomic_write_text
from w2sbench.interfaces import MetricInfo, TrustMetric
from w2sbench.leaderboard._validate import ValidationReport
from w2sbench.results import TASK_METRICS

__all__ = ["BoardRow", "collect_rows", "render_csv", "render_markdown", "render_html", "write_board", "BOARD_PREFIX"]

BOARD_PREFIX = "board-"  # board files are leaderboards/board-<property>.csv|md; stale ones are removed
_PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22")


@dataclass
class BoardRow:
    """One (submission entry, strategy) line of a property's table."""

    submission: str
    pair: str
    weak: str
    strong: str
    weak_params: int | None
    strong_params: int | None
    finetune: str
    strategy: str
    seeds: int
    scores: dict[str, dict[str, Any]]  # metric -> summary (mean, ci95, ...)
    gaps: dict[str, dict[str, Any]]  # metric -> summary of the gap-recovered ratio
    not_verifiable: list[str] = field(default_factory=list)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "property"


def collect_rows(reports: Sequence[ValidationReport], metrics: Mapping[str, TrustMetric]) -> dict[str, list[BoardRow]]:
    """Rows per property from the valid reports, best primary trust score first."""
    rows: dict[str, list[BoardRow]] = {}
    for report in reports:
        if not report.ok or report.submission is None:
            continue
        for entry, result in zip(report.submission["entries"], report.entries, strict=True):
            models = entry["models"]
            for cell in entry["strategies"]:
                body = entry["cells"][cell]
                rows.setdefault(entry["property"], []).append(
                    BoardRow(
                        submission=report.submission["name"],
                        pair=entry["pair"],
                        weak=models["weak"]["name"],
                        strong=models["strong"]["name"],
                        weak_params=models["weak"].get("params"),
                        strong_params=models["strong"].get("params"),
                        finetune=f"{entry['finetune']['weak']}:{entry['finetune']['strong']}",
                        strategy=cell,
                        seeds=len(entry["seeds"]),
                        scores=body["summary"],
                        gaps={k: v["summary"] for k, v in (body.get("gap_recovered") or {}).items()},
                        not_verifiable=list(result.not_verifiable),
                    )
                )
    for prop, prop_rows in rows.items():
        primary = metrics[prop].primary
        higher = next((m.higher_is_better for m in metrics[prop].metrics if m.name == primary), True)

        def order(row: BoardRow, primary: str = primary, higher: bool = higher) -> tuple[Any, ...]:
            mean = (row.scores.get(primary) or {}).get("mean")
            return (mean is None, -(mean or 0.0) if higher else (mean or 0.0), row.submission, row.strong, row.strategy)

        prop_rows.sort(key=order)
    return rows


def _columns(metric: TrustMetric, rows: Sequence[BoardRow]) -> tuple[list[MetricInfo], list[MetricInfo]]:
    """Score columns (task metrics present, then trust metrics, primary first) and gap-recovered columns."""
    present = {name for row in rows for name in row.scores}
    task = [m for m in TASK_METRICS if m.name in present]
    trust = sorted((m for m in metric.metrics if m.name in present), key=lambda m: m.name != metric.primary)
    gap = [m for m in task[:1] + trust[:1] if any(m.name in row.gaps for row in rows)]
    return task + trust, gap


def _interval(summary: Mapping[str, Any] | None) -> tuple[float | None, float | None, float | None]:
    summary = summary or {}
    ci = summary.get("ci95") or [None, None]
    return summary.get("mean"), ci[0], ci[1]


def _text(summary: Mapping[str, Any] | None, mark: str = "") -> str:
    mean, lo, hi = _interval(summary)
    if mean is None:
        return "–"
    return f"{mean:.3f}{mark}" + (f" [{lo:.3f}, {hi:.3f}]" if lo is not None else "")


def _params(n: int | None) -> str:
    if not n:
        return "?"
    if n >= 1e9:
        return f"{n / 1e9:.1f}B"
    return f"{n / 1e6:.0f}M" if n >= 1e6 else f"{n / 1e3:.0f}k"


def render_csv(metric: TrustMetric, rows: Sequence[BoardRow]) -> str:
    """One line per (submission entry, strategy); interval columns are empty with a single seed."""
    scores, gaps = _columns(metric, rows)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    head = ["submission", "pair", "weak", "strong", "weak_params", "strong_params", "finetune", "strategy", "seeds"]
    for m in scores:
        head += [m.name, f"{m.name}_ci95_low", f"{m.name}_ci95_high"]
    for m in gaps:
        head += [f"gap_recovered_{m.name}", f"gap_recovered_{m.name}_ci95_low", f"gap_recovered_{m.name}_ci95_high"]
    writer.writerow([*head, "not_verifiable"])
    for row in rows:
        line: list[Any] = [row.submission, row.pair, row.weak, row.strong, row.weak_params, row.strong_params, row.finetune, row.strategy, row.seeds]
        for m in scores:
            line += list(_interval(row.scores.get(m.name)))
        for m in gaps:
            line += list(_interval(row.gaps.get(m.name)))
        # Spreadsheet programs run cells that start with = + - @; quote such strings (numbers stay numbers).
        writer.writerow([_csv_safe(v) for v in [*line, ";".join(row.not_verifiable)]])
    return out.getvalue()


def _csv_safe(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return "" if value is None else value


def _md(text: Any) -> str:
    """Markdown table cell text: HTML-escaped, no pipes or line breaks."""
    return html.escape(str(text)).replace("|", "&#124;").replace("\n", " ").replace("\r", " ").replace("`", "&#96;")


def _arrow(m: MetricInfo) -> str:
    return "↑" if m.higher_is_better else "↓"


def render_markdown(metric: TrustMetric, rows: Sequence[BoardRow]) -> str:
    """A GitHub-flavoured Markdown table: mean [95% interval over seeds]."""
    scores, gaps = _columns(metric, rows)
    head = ["#", "submission", "weak → strong", "fine-tune", "strategy", "seeds"]
    head += [f"{m.name} {_arrow(m)}" for m in scores] + [f"gap recovered: {m.name}" for m in gaps]
    lines = [
        f"# {_md(metric.name)} leaderboard",
        "",
        _md(metric.description),
        "",
        f"Primary trust metric: **{_md(metric.primary)}**. Each cell: mean over seeds [95% interval]; "
        "† = reported by the submitter, not recomputable from predictions. Generated by `w2sbench leaderboard build`.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "|".join("---" for _ in head) + "|",
    ]
    for rank, row in enumerate(rows, 1):
        cells = [str(rank), _md(row.submission), f"{_md(row.weak)} → {_md(row.strong)}", _md(row.finetune), _md(row.strategy), str(row.seeds)]
        cells += [_text(row.scores.get(m.name), "†" if m.name in row.not_verifiable else "") for m in scores]
        cells += [_text(row.gaps.get(m.name)) for m in gaps]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- HTML

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:1200px;padding:0 1rem;color:#222}
h1{font-size:1.6rem}h2{margin-top:2.5rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;width:100%;margin:1rem 0;font-variant-numeric:tabular-nums}
th,td{border:1px solid #ddd;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#f4f4f4;cursor:pointer;user-select:none;min-width:3.5em}.scroll{overflow-x:auto}
th[aria-sort=ascending]::after{content:" ▲"}th[aria-sort=descending]::after{content:" ▼"}
td.num{text-align:right;white-space:nowrap}tr:nth-child(even) td{background:#fafafa}
.note{color:#666}.plot{max-width:760px}svg text{font:12px system-ui,sans-serif}
.swatch{display:inline-block;width:.8em;height:.8em;margin:0 .3em 0 1em;border-radius:50%}
"""

_JS = """
(function(){
  function key(td){var v=td.getAttribute('data-value');if(v===null)return td.textContent.trim().toLowerCase();
    if(v==='')return null;return parseFloat(v);}
  function cmp(a,b,dir){if(a===b)return 0;if(a===null)return 1;if(b===null)return -1;
    if(typeof a==='number'&&typeof b==='number')return dir*(a-b);return dir*String(a).localeCompare(String(b));}
  document.querySelectorAll('table.board').forEach(function(table){
    var heads=table.querySelectorAll('thead th');
    heads.forEach(function(th,col){th.tabIndex=0;function sort(){
      var dir=th.getAttribute('aria-sort')==='ascending'?-1:1;
      heads.forEach(function(h){h.removeAttribute('aria-sort');});
      th.setAttribute('aria-sort',dir===1?'ascending':'descending');
      var body=table.tBodies[0];var rows=Array.prototype.slice.call(body.rows);
      rows.sort(function(r1,r2){return cmp(key(r1.cells[col]),key(r2.cells[col]),dir);});
      rows.forEach(function(r){body.appendChild(r);});}
      th.addEventListener('click',sort);th.addEventListener('keydown',function(e){if(e.key==='Enter')sort();});});
  });
})();
"""


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _num_cell(summary: Mapping[str, Any] | None, mark: str = "") -> str:
    mean = (summary or {}).get("mean")
    value = "" if mean is None else repr(float(mean))
    return f'<td class="num" data-value="{value}">{_e(_text(summary, mark))}</td>'


def _table(metric: TrustMetric, rows: Sequence[BoardRow], ident: str) -> str:
    scores, gaps = _columns(metric, rows)
    head = ["#", "submission", "weak", "strong", "strong size", "fine-tune", "strategy", "seeds"]
    head += [f"{m.name} {_arrow(m)}" for m in scores] + [f"gap recovered: {m.name}" for m in gaps]
    titles = ["", "", "", "", "", "", "", ""] + [m.description for m in scores] + ["(strategy − weak) / (ceiling − weak)"] * len(gaps)
    out = [f'<div class="scroll"><table class="board" id="{_e(ident)}"><thead><tr>']
    # <wbr> after underscores lets long metric names wrap inside their header.
    out += [f'<th scope="col" title="{_e(t)}">{_e(h).replace("_", "_<wbr>")}</th>' for h, t in zip(head, titles, strict=True)]
    out.append("</tr></thead><tbody>")
    for rank, row in enumerate(rows, 1):
        out.append("<tr>")
        out.append(f'<td class="num" data-value="{rank}">{rank}</td>')
        out += [f"<td>{_e(v)}</td>" for v in (row.submission, row.weak, row.strong)]
        out.append(f'<td class="num" data-value="{row.strong_params or ""}">{_e(_params(row.strong_params))}</td>')
        out += [f"<td>{_e(v)}</td>" for v in (row.finetune, row.strategy)]
        out.append(f'<td class="num" data-value="{row.seeds}">{row.seeds}</td>')
        out += [_num_cell(row.scores.get(m.name), "†" if m.name in row.not_verifiable else "") for m in scores]
        out += [_num_cell(row.gaps.get(m.name)) for m in gaps]
        out.append("</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def _ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    return [lo + (hi - lo) * i / (count - 1) for i in range(count)]


def _plot(metric: TrustMetric, rows: Sequence[BoardRow]) -> str:
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


def render_html(boards: Mapping[str, tuple[TrustMetric, Sequence[BoardRow]]], submissions: Sequence[str]) -> str:
    """The whole static page; only the inline script whose hash is in the CSP may run."""
    script_hash = base64.b64encode(hashlib.sha256(_JS.encode()).digest()).decode()
    csp = f"default-src 'none'; style-src 'unsafe-inline'; img-src data:; script-src 'sha256-{script_hash}'"
    body = [
        "<h1>w2sbench leaderboard</h1>",
        '<p class="note">Weak-to-strong trustworthiness: a strong model trained on a weak model\'s labels, per strategy. '
        "Every score was recomputed from the submitted predictions by <code>w2sbench leaderboard validate</code>; "
        "† marks scores that need the model itself and are shown as reported. Cells show the mean over seeds "
        "[95% interval]. Click a column header to sort.</p>",
    ]
    if boards:
        body.append("<nav><ul>" + "".join(f'<li><a href="#{_e(_slug(p))}">{_e(p)}</a></li>' for p in boards) + "</ul></nav>")
    else:
        body.append('<p class="note">No valid submissions yet.</p>')
    for prop, (metric, rows) in boards.items():
        ident = _slug(prop)
        body.append(f'<section id="{_e(ident)}"><h2>{_e(prop)}</h2><p>{_e(metric.description)}. Primary trust metric: '
                    f"<strong>{_e(metric.primary)}</strong>.</p>")
        body.append(_table(metric, rows, f"table-{ident}"))
        body.append(f"<h3>{_e(metric.primary)} against strong model size</h3>")
        body.append(_plot(metric, rows))
        body.append("</section>")
    body.append(f'<p class="note">Built from {len(submissions)} submission(s): {_e(", ".join(submissions))}.</p>')
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f'<meta http-equiv="Content-Security-Policy" content="{_e(csp)}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="icon" href="data:,">'
        f"<title>w2sbench leaderboard</title><style>{_CSS}</style></head><body>\n"
        + "\n".join(body)
        + f"\n<script>{_JS}</script>\n</body></html>\n"
    )


def write_board(reports: Sequence[ValidationReport], metrics: Mapping[str, TrustMetric], out_dir: Path) -> list[Path]:
    """Write board-<property>.csv/.md and index.html into ``out_dir``; remove board files of vanished properties."""
    out_dir = Path(out_dir)
    rows = collect_rows(reports, metrics)
    written: list[Path] = []
    boards: dict[str, tuple[TrustMetric, list[BoardRow]]] = {}
    for prop in sorted(rows):
        metric = metrics[prop]
        boards[prop] = (metric, rows[prop])
        for suffix, text in ((".csv", render_csv(metric, rows[prop])), (".md", render_markdown(metric, rows[prop]))):
            path = out_dir / f"{BOARD_PREFIX}{_slug(prop)}{suffix}"
            atomic_write_text(path, text)
            path.chmod(0o644)  # committed files, readable by everyone
            written.append(path)
    for stale in [*out_dir.glob(f"{BOARD_PREFIX}*.csv"), *out_dir.glob(f"{BOARD_PREFIX}*.md")]:
        if stale not in written:
            stale.unlink()
    names = sorted(r.submission["name"] for r in reports if r.ok and r.submission)
    index = out_dir / "index.html"
    atomic_write_text(index, render_html(boards, names))
    index.chmod(0o644)
    written.append(index)
    return written
