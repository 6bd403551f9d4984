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
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from w2sbench.design import StrategyDesign
from w2sbench.files import atomic_write_text
from w2sbench.findings import plain_baseline
from w2sbench.interfaces import MetricInfo, TrustProperty
from w2sbench.leaderboard._findings import FINDINGS_BASIS, FINDINGS_TITLE, entry_designs, render_findings
from w2sbench.leaderboard._plots import _e, _interval, _params, gap_plot, size_plot
from w2sbench.leaderboard._validate import ValidationReport
from w2sbench.plugin_manager import get_plugins
from w2sbench.report_values import within_bounds
from w2sbench.results import TASK_METRICS

__all__ = ["BoardRow", "collect_rows", "render_csv", "render_markdown", "render_html", "write_board", "BOARD_PREFIX"]

BOARD_PREFIX = "board-"  # board files are leaderboards/board-<property>.csv|md; stale ones are removed

# How each kind of interval column is computed (shown in its header and explained in the legend).
SCORE_METHOD = "t over seeds"
GAP_METHODS = {"ratio of mean gaps": "run bootstrap"}  # summary method -> label; others: per-seed ratios
CONSTANT_MARK = "‡"
CONSTANT_NOTE = "constant predictions: one class for every example"
LEGEND = (
    "Score cells: mean over seeds [95% t-interval over the per-seed scores, cut at the score's range]. "
    "Gap-recovered cells: the run's ratio of mean gaps [its 95% bootstrap interval over seeds × test examples] "
    "(older submissions: mean of the per-seed ratios [t over seeds])."
)


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
    entry: str = ""  # which submission entry (submission#index): rows of one entry are paired by seed
    seed_scores: dict[str, dict[str, Any]] = field(default_factory=dict)  # seed -> metric -> score
    gap_references: dict[str, str] = field(default_factory=dict)  # {"weak": cell, "ceiling": cell}
    constant: bool = False  # the strong model predicts one class for every main-test example on every seed


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "property"


def cut_at_bounds(summary: Mapping[str, Any], bounds: Sequence[float | None] | None) -> dict[str, Any]:
    """A score's summary with its 95% interval cut at the score's range (``report_values.within_bounds``:
    the cut interval covers the true value as often, since that cannot lie outside the range)."""
    ci = summary.get("ci95") or [None, None]
    value = {"mean": summary.get("mean"), "lo": ci[0], "hi": ci[1], "method": SCORE_METHOD}
    cut = within_bounds(value, bounds)
    return dict(summary) if cut is value else {**summary, "ci95": [cut["lo"], cut["hi"]]}


def collect_rows(reports: Sequence[ValidationReport], metrics: Mapping[str, TrustProperty]) -> dict[str, list[BoardRow]]:
    """Rows per property from the valid reports, best primary trust score first; a cell with constant
    predictions goes last. Score intervals are cut at the installed metric's bounds (``MetricInfo.bounds``),
    so submissions that do not record them are covered too."""
    rows: dict[str, list[BoardRow]] = {}
    for report in reports:
        if not report.ok or report.submission is None:
            continue
        for index, (entry, result) in enumerate(zip(report.submission["entries"], report.entries, strict=True)):
            models = entry["models"]
            bounds = {m.name: m.bounds for m in (*TASK_METRICS, *metrics[entry["property"]].metrics)}
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
                        scores={k: cut_at_bounds(v, bounds.get(k)) for k, v in body["summary"].items()},
                        gaps={k: v["summary"] for k, v in (body.get("gap_recovered") or {}).items()},
                        not_verifiable=list(result.not_verifiable),
                        entry=f"{report.submission['name']}#{index}",
                        seed_scores=dict(body.get("seeds") or {}),
                        gap_references=dict(body.get("references") or {}),
                        constant=cell in result.constant_cells,
                    )
                )
    for prop, prop_rows in rows.items():
        primary = metrics[prop].primary
        higher = next((m.higher_is_better for m in metrics[prop].metrics if m.name == primary), True)

        def order(row: BoardRow, primary: str = primary, higher: bool = higher) -> tuple[Any, ...]:
            mean = (row.scores.get(primary) or {}).get("mean")
            return (row.constant, mean is None, -(mean or 0.0) if higher else (mean or 0.0), row.submission, row.strong, row.strategy)

        prop_rows.sort(key=order)
    return rows


def _columns(metric: TrustProperty, rows: Sequence[BoardRow]) -> tuple[list[MetricInfo], list[MetricInfo]]:
    """Score columns (task metrics present, then trust properties, primary first) and gap-recovered columns."""
    present = {name for row in rows for name in row.scores}
    task = [m for m in TASK_METRICS if m.name in present]
    trust = sorted((m for m in metric.metrics if m.name in present), key=lambda m: m.name != metric.primary)
    gap = [m for m in task[:1] + trust[:1] if any(m.name in row.gaps for row in rows)]
    return task + trust, gap


def _gap_label(rows: Sequence[BoardRow], m: MetricInfo) -> str:
    """How a gap-recovered column's intervals were computed: the run's bootstrap (ratio of mean gaps) or,
    for older submissions, a t-interval over the per-seed ratios."""
    methods = {GAP_METHODS.get(str((row.gaps.get(m.name) or {}).get("method")), SCORE_METHOD) for row in rows if m.name in row.gaps}
    return " / ".join(sorted(methods, reverse=True))


def _strategy(row: BoardRow) -> str:
    return f"{row.strategy} {CONSTANT_MARK}" if row.constant else row.strategy


def _text(summary: Mapping[str, Any] | None, mark: str = "") -> str:
    mean, lo, hi = _interval(summary)
    if mean is None:
        return "–"
    return f"{mean:.3f}{mark}" + (f" [{lo:.3f}, {hi:.3f}]" if lo is not None else "")


def render_csv(metric: TrustProperty, rows: Sequence[BoardRow]) -> str:
    """One line per (submission entry, strategy); interval columns are empty with a single seed."""
    scores, gaps = _columns(metric, rows)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    head = ["submission", "pair", "weak", "strong", "weak_params", "strong_params", "finetune", "strategy", "seeds"]
    for m in scores:
        head += [m.name, f"{m.name}_ci95_low", f"{m.name}_ci95_high"]
    for m in gaps:
        head += [f"gap_recovered_{m.name}", f"gap_recovered_{m.name}_ci95_low", f"gap_recovered_{m.name}_ci95_high"]
    writer.writerow([*head, "not_verifiable", "constant_predictions"])
    for row in rows:
        line: list[Any] = [row.submission, row.pair, row.weak, row.strong, row.weak_params, row.strong_params, row.finetune, row.strategy, row.seeds]
        for m in scores:
            line += list(_interval(row.scores.get(m.name)))
        for m in gaps:
            line += list(_interval(row.gaps.get(m.name)))
        # Spreadsheet programs run cells that start with = + - @; quote such strings (numbers stay numbers).
        writer.writerow([_csv_safe(v) for v in [*line, ";".join(row.not_verifiable), "yes" if row.constant else ""]])
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


def render_markdown(metric: TrustProperty, rows: Sequence[BoardRow]) -> str:
    """A GitHub-flavoured Markdown table: mean [95% interval], each column naming its interval's method."""
    scores, gaps = _columns(metric, rows)
    head = ["#", "submission", "weak → strong", "fine-tune", "strategy", "seeds"]
    head += [f"{m.name} {_arrow(m)} [{SCORE_METHOD}]" for m in scores]
    head += [f"gap recovered: {m.name} [{_md(_gap_label(rows, m))}]" for m in gaps]
    lines = [
        f"# {_md(metric.name)} leaderboard",
        "",
        _md(metric.description),
        "",
        f"Primary trust metric: **{_md(metric.primary)}**. {LEGEND} "
        "† = reported by the submitter, not recomputable from predictions."
        + (f" {CONSTANT_MARK} = {CONSTANT_NOTE} of the main test set on every seed "
           "(trivially fair); ranked last." if any(r.constant for r in rows) else "")
        + " Generated by `w2sbench leaderboard build`.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "|".join("---" for _ in head) + "|",
    ]
    for rank, row in enumerate(rows, 1):
        cells = [str(rank), _md(row.submission), f"{_md(row.weak)} → {_md(row.strong)}", _md(row.finetune), _md(_strategy(row)), str(row.seeds)]
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
.plot{min-width:600px}svg text.halo{stroke:#fff;stroke-width:4px;paint-order:stroke}table.findings th{cursor:auto}p.entry{font-weight:600;margin:1rem 0 0}
td.verdict{min-width:11em}.verdict.good{color:#1a7f37;font-weight:600}.verdict.bad{color:#b42318;font-weight:600}
.basis{background:#f6f8fa;padding:.5rem .8rem;border-left:3px solid #1f77b4}
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


def _num_cell(summary: Mapping[str, Any] | None, mark: str = "") -> str:
    mean = (summary or {}).get("mean")
    value = "" if mean is None else repr(float(mean))
    return f'<td class="num" data-value="{value}">{_e(_text(summary, mark))}</td>'


def _table(metric: TrustProperty, rows: Sequence[BoardRow], ident: str) -> str:
    scores, gaps = _columns(metric, rows)
    head = ["#", "submission", "weak", "strong", "strong size", "fine-tune", "strategy", "seeds"]
    head += [f"{m.name} {_arrow(m)}" for m in scores] + [f"gap recovered: {m.name}" for m in gaps]
    titles = ["", "", "", "", "", "", "", ""] + [m.description for m in scores] + ["(strategy − weak) / (ceiling − weak)"] * len(gaps)
    unverified = {m for row in rows for m in row.not_verifiable}
    head = [h + (" †" if i >= 8 and i - 8 < len(scores) and scores[i - 8].name in unverified else "") for i, h in enumerate(head)]
    titles = [t + ("; † not recomputed by the validator" if h.endswith("†") else "") for h, t in zip(head, titles, strict=True)]
    methods = [""] * 8 + [SCORE_METHOD] * len(scores) + [_gap_label(rows, m) for m in gaps]
    head = [f"{h} [{k}]" if k else h for h, k in zip(head, methods, strict=True)]
    out = [f'<div class="scroll"><table class="board" id="{_e(ident)}"><thead><tr>']
    # <wbr> after underscores lets long metric names wrap inside their header.
    out += [f'<th scope="col" title="{_e(t)}">{_e(h).replace("_", "_<wbr>")}</th>' for h, t in zip(head, titles, strict=True)]
    out.append("</tr></thead><tbody>")
    for rank, row in enumerate(rows, 1):
        out.append("<tr>")
        out.append(f'<td class="num" data-value="{rank}">{rank}</td>')
        out += [f"<td>{_e(v)}</td>" for v in (row.submission, row.weak, row.strong)]
        out.append(f'<td class="num" data-value="{row.strong_params or ""}">{_e(_params(row.strong_params))}</td>')
        out.append(f"<td>{_e(row.finetune)}</td>")
        out.append(f'<td title="{_e(CONSTANT_NOTE)}">{_e(_strategy(row))}</td>' if row.constant else f"<td>{_e(row.strategy)}</td>")
        out.append(f'<td class="num" data-value="{row.seeds}">{row.seeds}</td>')
        out += [_num_cell(row.scores.get(m.name), "†" if m.name in row.not_verifiable else "") for m in scores]
        out += [_num_cell(row.gaps.get(m.name)) for m in gaps]
        out.append("</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def _designs(members: Sequence[BoardRow]) -> list[StrategyDesign]:
    """The designs of an entry's strategies, from the registered strategies and the submission's references."""
    return entry_designs({r.strategy: r.gap_references or {} for r in members}, get_plugins().strategies.items)


def _entry_groups(rows: Sequence[BoardRow]) -> list[tuple[str, list[BoardRow]]]:
    """Rows grouped by submission entry (first appearance order), plain transfer (vanilla) first within each."""
    groups: dict[str, list[BoardRow]] = {}
    for row in rows:
        groups.setdefault(row.entry, []).append(row)
    out = []
    for members in groups.values():
        base = plain_baseline(_designs(members))
        members.sort(key=lambda r: (r.strategy != base, r.strategy))
        r = members[0]
        out.append((f"{r.submission}: {r.weak} → {r.strong} ({r.finetune}), {r.seeds} seed(s)", members))
    return out


def _references(rows: Sequence[BoardRow]) -> str:
    refs = {r.strategy: r.gap_references for r in rows if r.gap_references}
    return "; ".join(f"{s}: {v.get('weak', '?')} and {v.get('ceiling', '?')}" for s, v in sorted(refs.items()))


def _section(prop: str, metric: TrustProperty, rows: Sequence[BoardRow]) -> str:
    """A property's findings, gap-recovered plot, sortable table and size plot."""
    ident = _slug(prop)
    groups = _entry_groups(rows)
    scores, _ = _columns(metric, rows)
    task = [m for m in scores if m.kind == "task"][:1]
    primary = [m for m in scores if m.name == metric.primary]
    compare = [(m.name, m.higher_is_better) for m in primary + task]
    unverified = sorted({m for r in rows for m in r.not_verifiable})
    findings = [(label, {r.strategy: r.seed_scores for r in members}, compare, _designs(members)) for label, members in groups]
    parts = [
        f'<section id="{_e(ident)}"><h2>{_e(prop)}</h2><p>{_e(metric.description)}. Primary trust metric: '
        f"<strong>{_e(metric.primary)}</strong>.</p>",
        f'<h3 id="findings-{_e(ident)}">{_e(FINDINGS_TITLE)}</h3>',
        '<p class="note">Plain transfer: no trust regularizer, the weak model\'s soft labels, cross-entropy (the '
        "paper's vanilla). Improvement = strategy − plain transfer, paired by seed, positive when the strategy is "
        f"better (more trustworthy or more accurate). {_e(FINDINGS_BASIS)}</p>",
        render_findings(findings, unverified),
        f'<h3 id="gap-{_e(ident)}">Trust gap recovered per strategy</h3>',
        '<p class="note">(strategy − weak) / (ceiling − weak) on the primary trust metric, per seed, with each '
        f"strategy's own reference cells ({_e(_references(rows))}); 0 is the weak reference, 1 the ceiling. "
        "Undefined on a seed where the ceiling is not more trustworthy than the weak reference.</p>",
        gap_plot(metric, groups),
        "<h3>All entries</h3>",
        _table(metric, rows, f"table-{ident}"),
    ]
    if any(r.constant for r in rows):
        parts.append(f'<p class="note constant">{CONSTANT_MARK} {_e(CONSTANT_NOTE)} of the main test set on every seed: '
                     "a constant predictor is trivially fair, so the row is ranked last.</p>")
    if unverified:
        parts.append(f'<p class="note unverified">† {_e(", ".join(unverified))}: not recomputed by the validator. These '
                     "scores need the model itself (live attacks, membership inference on its training rows), so "
                     "they are shown as the submitter reported them.</p>")
    parts += [f"<h3>{_e(metric.primary)} against strong model size</h3>", '<div class="scroll">', size_plot(metric, rows), "</div></section>"]
    return "".join(parts)


def _basis(boards: Mapping[str, tuple[TrustProperty, Sequence[BoardRow]]], submissions: Sequence[str]) -> str:
    """What the page rests on: submissions, entries, model pairs and seeds."""
    rows = [r for _, prop_rows in boards.values() for r in prop_rows]
    entries = {r.entry: r.seeds for r in rows}
    pairs = {(r.weak, r.strong) for r in rows}
    seeds = sorted(set(entries.values()))
    span = "no" if not seeds else str(seeds[0]) if len(seeds) == 1 else f"{seeds[0]}–{seeds[-1]}"
    return (f'<p class="basis"><strong>This board rests on {len(submissions)} submission(s), {len(entries)} '
            f"entr{'y' if len(entries) == 1 else 'ies'} (one per run and trust property), {len(pairs)} weak → strong "
            f"pair(s), {len(boards)} trust propert{'y' if len(boards) == 1 else 'ies'} and {span} seed(s) per entry.</strong></p>")


def render_html(boards: Mapping[str, tuple[TrustProperty, Sequence[BoardRow]]], submissions: Sequence[str]) -> str:
    """The whole static page; only the inline script whose hash is in the CSP may run."""
    script_hash = base64.b64encode(hashlib.sha256(_JS.encode()).digest()).decode()
    csp = f"default-src 'none'; style-src 'unsafe-inline'; img-src data:; script-src 'sha256-{script_hash}'"
    body = [
        "<h1>w2sbench leaderboard</h1>",
        '<p class="note">Weak-to-strong trustworthiness: a strong model trained on a weak model\'s labels, per strategy. '
        "Every score was recomputed from the submitted predictions by <code>w2sbench leaderboard validate</code>; "
        f"† marks scores that need the model itself and are shown as reported. {_e(LEGEND)} {_e(FINDINGS_BASIS)} "
        "Click a column header to sort.</p>",
        _basis(boards, submissions),
    ]
    if boards:
        body.append("<nav><ul>" + "".join(f'<li><a href="#{_e(_slug(p))}">{_e(p)}</a></li>' for p in boards) + "</ul></nav>")
    else:
        body.append('<p class="note">No valid submissions yet.</p>')
    for prop, (metric, rows) in boards.items():
        body.append(_section(prop, metric, rows))
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


def write_board(reports: Sequence[ValidationReport], metrics: Mapping[str, TrustProperty], out_dir: Path) -> list[Path]:
    """Write board-<property>.csv/.md and index.html into ``out_dir``; remove board files of vanished properties."""
    out_dir = Path(out_dir)
    rows = collect_rows(reports, metrics)
    written: list[Path] = []
    boards: dict[str, tuple[TrustProperty, list[BoardRow]]] = {}
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
