"""The page of an audit series: the same comparison (baseline vs candidate on one dataset) run
night after night. Its verdict first, SPEC-diff both ways against the runs' dates as an inline
SVG (no script, no network: the page opens from disk), the runs newest first with their
intervals, p-values and alerts, and the latest run's modes matched to the previous run's."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import quote

from speclens.history.model import DIRECTIONS, ModeMatch, SeriesHistory, SeriesRun
from speclens.report import html
from speclens.report.numbers import fmt, p_text
from speclens.report.plots import X_COLOUR, Y_COLOUR
from speclens.report.sweep import _interval
from speclens.storage import urls
from speclens.storage.layout import REPORTS, encoder_slug

#: The folder under ``<root>/reports`` that holds one folder per series.
SERIES = "series"
COLOURS = {"x_over_y": X_COLOUR, "y_over_x": Y_COLOUR}
#: The chart's size (SVG user units; it scales to the page's width) and its margins.
WIDTH, HEIGHT = 900, 300
LEFT, RIGHT, TOP, BOTTOM = 60, 20, 16, 40
GRID, AXIS = "#e2e8f0", "#64748b"

ReportHref = Callable[[str], "str | None"]


def series_page_html(history: SeriesHistory, report_href: ReportHref) -> str:
    """The whole page of ``history``; ``report_href(run_id)``: the relative link to a run's
    report, or None (no link)."""
    h = history
    base, cand = html.esc(h.baseline), html.esc(h.candidate)
    runs = "run" if len(h.runs) == 1 else "runs"
    body = (
        f"<h1>Series {html.esc(h.series)}</h1>"
        f'<p class="sub">{base} (baseline) vs {cand} (candidate) on {html.esc(h.dataset)}: '
        f"{len(h.runs)} {runs}</p>"
        f'<p class="verdict" id="verdict" style="font-size:18px;font-weight:650">'
        f"{html.esc(h.verdict)}</p>"
        f'<div class="card">{chart_svg(h)}{_legend(h)}</div>'
        f'<h2>Runs</h2><div class="card wide">{_runs_table(h, report_href)}</div>'
        f"<h2>Modes of the latest run</h2>{_matches(h, report_href)}"
        f"<footer>speclens · SPEC (arXiv 2506.06231) · series {html.esc(h.series)}</footer>"
    )
    return html.page(f"SPEC series {h.series}", body)


def write_series_page(
    root: str, history: SeriesHistory, report_href: ReportHref | None = None
) -> str:
    """Write ``<root>/reports/series/<series>/index.html``; returns its URL. Without
    ``report_href`` each run links to its report beside the series folder,
    ``<root>/reports/<run_id>/index.html``."""
    href = report_href or _default_href
    index = urls.join(root, REPORTS, SERIES, encoder_slug(history.series), "index.html")
    urls.write_bytes(index, series_page_html(history, href).encode("utf-8"))
    return index


def _default_href(run_id: str) -> str:
    return f"../../{quote(run_id)}/index.html"


def point_value(run: SeriesRun, d: str) -> float | None:
    """The value a run is drawn at in direction ``d``: the plug-in SPEC-diff, the estimate its
    interval (the whisker) belongs to; the held-out value is in the tooltip."""
    value = run.spec_diff.get(d)
    return value if _finite(value) else None


def chart_svg(history: SeriesHistory) -> str:
    """SPEC-diff both ways against the runs' dates: a line per direction, a point per run
    (filled: significant; hollow: not), its interval as a whisker, a tooltip per point."""
    runs = history.runs
    if not runs:
        return '<p class="muted">No runs yet.</p>'
    times = [_utc(r.created_at).timestamp() for r in runs]
    x_of = _time_scale(min(times), max(times))
    lo, hi, ticks = _value_range(runs)

    def y_of(v: float) -> float:
        return TOP + (hi - v) / (hi - lo) * (HEIGHT - TOP - BOTTOM)

    parts = [_y_axis(ticks, y_of), _x_axis(min(times), max(times), x_of)]
    for d in DIRECTIONS:
        parts.append(_direction(history, d, [x_of(t) for t in times], y_of))
    return (
        f'<svg id="history-chart" class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" '
        f'role="img" aria-label="SPEC-diff of each run of the series, both ways, over time" '
        f'xmlns="http://www.w3.org/2000/svg" style="display:block;height:auto">'
        f"{''.join(parts)}</svg>"
    )


def _direction(history: SeriesHistory, d: str, xs: list[float], y_of) -> str:
    """One direction's line, whiskers and points."""
    colour, shift = COLOURS[d], -3 if d == "x_over_y" else 3
    line, marks = [], []
    for run, x in zip(history.runs, xs, strict=True):
        value = point_value(run, d)
        if value is None:
            continue
        x += shift
        line.append(f"{x:.1f},{y_of(value):.1f}")
        low, high = run.low.get(d), run.high.get(d)
        if _finite(low) and _finite(high):
            marks.append(
                f'<line class="whisker" x1="{x:.1f}" x2="{x:.1f}" y1="{y_of(low):.1f}" '
                f'y2="{y_of(high):.1f}" stroke="{colour}" stroke-width="1.5"/>'
            )
        fill = colour if run.significant else "#fff"
        marks.append(
            f'<circle class="point" data-run="{html.esc(run.run_id)}" data-direction="{d}" '
            f'data-significant="{str(run.significant).lower()}" cx="{x:.1f}" '
            f'cy="{y_of(value):.1f}" r="5" fill="{fill}" stroke="{colour}" stroke-width="2">'
            f"<title>{html.esc(_tooltip(history, run, d))}</title></circle>"
        )
    path = (
        f'<polyline points="{" ".join(line)}" fill="none" stroke="{colour}" '
        f'stroke-opacity=".5" stroke-width="1.5"/>'
        if len(line) > 1
        else ""
    )
    return f'<g class="direction {d}">{path}{"".join(marks)}</g>'


def _tooltip(history: SeriesHistory, run: SeriesRun, d: str) -> str:
    lines = [
        f"run {run.run_id}",
        html._when(run.created_at),
        f"SPEC-diff {_words(history, d)}: {fmt(point_value(run, d))}",
    ]
    if _finite(run.low.get(d)):
        lines.append(f"interval [{fmt(run.low[d])}, {fmt(run.high.get(d))}]")
    if _finite(run.heldout.get(d)):
        lines.append(f"held-out {fmt(run.heldout[d])}")
    if _finite(run.p.get(d)):
        lines.append(p_text(run.p[d]))
    lines.append("significant" if run.significant else "no significant change")
    return "\n".join(lines)


def _time_scale(t0: float, t1: float) -> Callable[[float], float]:
    """Seconds since the epoch to the chart's x (one time: the middle)."""
    pad = 56  # room for the points and for half a date label at each end
    span = WIDTH - LEFT - RIGHT - 2 * pad
    if t1 <= t0:
        return lambda t: LEFT + pad + span / 2
    return lambda t: LEFT + pad + (t - t0) / (t1 - t0) * span


def _value_range(runs: list[SeriesRun]) -> tuple[float, float, list[float]]:
    """The y axis: from 0 (or below, for a negative value) to above the highest value or
    interval end, rounded out to its ticks."""
    values = [0.0]
    for run in runs:
        for d in DIRECTIONS:
            values += [point_value(run, d), run.low.get(d), run.high.get(d)]
    values = [v for v in values if _finite(v)]
    lo, hi = min(values), max(values)
    if hi - lo <= 0:
        hi = lo + 1.0
    raw = (hi - lo) / 5
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    lo, hi = math.floor(lo / step) * step, math.ceil(hi / step) * step
    n = round((hi - lo) / step)
    return lo, hi, [lo + i * step for i in range(n + 1)]


def _y_axis(ticks: list[float], y_of) -> str:
    parts = []
    for v in ticks:
        y = y_of(v)
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="{AXIS if v == 0 else GRID}" stroke-width="{1 if v == 0 else 0.7}"/>'
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" '
            f'fill="{AXIS}">{fmt(v, ".3g")}</text>'
        )
    label_y = (HEIGHT - BOTTOM + TOP) / 2
    parts.append(
        f'<text x="14" y="{label_y:.1f}" transform="rotate(-90 14 {label_y:.1f})" '
        f'text-anchor="middle" font-size="12" fill="{AXIS}">SPEC-diff</text>'
    )
    return f'<g class="y-axis">{"".join(parts)}</g>'


def _x_axis(t0: float, t1: float, x_of) -> str:
    """Up to five dated ticks between the first and the last run (one without a span)."""
    times = [t0] if t1 <= t0 else [t0 + (t1 - t0) * i / 4 for i in range(5)]
    form = "%Y-%m-%d %H:%M" if t1 - t0 < 3 * 86400 and t1 > t0 else "%Y-%m-%d"
    base = HEIGHT - BOTTOM
    parts = [f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{base}" y2="{base}" stroke="{AXIS}"/>']
    for t in times:
        x = x_of(t)
        when = datetime.fromtimestamp(t, UTC).strftime(form)
        parts.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{base}" y2="{base + 5}" stroke="{AXIS}"/>'
            f'<text x="{x:.1f}" y="{base + 19}" text-anchor="middle" font-size="11" '
            f'fill="{AXIS}">{when}</text>'
        )
    return f'<g class="x-axis">{"".join(parts)}</g>'


def _legend(history: SeriesHistory) -> str:
    items = "".join(
        f'<li><span class="sw" style="background:{COLOURS[d]}"></span>'
        f"{html.esc(_words(history, d))}</li>"
        for d in DIRECTIONS
    )
    note = (
        "<li>filled: a significant run · hollow: no significant change · point: the plug-in "
        "SPEC-diff · whisker: its interval (the held-out value is in each point's tooltip)</li>"
    )
    return f'<ul class="legend">{items}{note}</ul>'


def _words(history: SeriesHistory, d: str) -> str:
    a, b = history.baseline, history.candidate
    return f"{a} over {b}" if d == "x_over_y" else f"{b} over {a}"


def _runs_table(history: SeriesHistory, report_href: ReportHref) -> str:
    """The runs, newest first."""
    if not history.runs:
        return '<p class="muted">No runs yet.</p>'
    rows = [_run_row(r, report_href) for r in reversed(history.runs)]
    x_words, y_words = (html.esc(_words(history, d)) for d in DIRECTIONS)
    head = (
        "<th>date</th><th>run</th><th>candidate</th>"
        f"<th>SPEC-diff {x_words}</th><th>SPEC-diff {y_words}</th>"
        f"<th>p, {x_words}</th><th>p, {y_words}</th><th>result</th><th>alerts</th>"
    )
    return (
        f'<table class="overview" id="runs-table"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _run_row(run: SeriesRun, report_href: ReportHref) -> str:
    scores = {}
    for d in DIRECTIONS:
        scores.update(
            {
                f"spec_diff_{d}": run.spec_diff.get(d),
                f"spec_diff_{d}_low": run.low.get(d),
                f"spec_diff_{d}_high": run.high.get(d),
                f"spec_diff_{d}_heldout": run.heldout.get(d),
            }
        )
    result = (
        '<span class="badge">significant</span>' if run.significant else "no significant change"
    )
    alerts = "".join(f"<li>{html.esc(a)}</li>" for a in run.alerts)
    alerts = (
        f'<ul class="alerts" style="margin:0;padding-left:16px">{alerts}</ul>' if alerts else "–"
    )
    cls = ' class="significant"' if run.significant else ""
    return (
        f'<tr{cls} data-run="{html.esc(run.run_id)}">'
        f'<td class="num">{html.esc(html._when(run.created_at))}</td>'
        f'<td class="id">{_run_link(run.run_id, report_href)}</td>'
        f"<td>{html.esc(run.encoder_y)}</td>"
        + "".join(f"<td>{html.esc(_interval(scores, d))}</td>" for d in DIRECTIONS)
        + "".join(f'<td class="num">{_p(run.p.get(d))}</td>' for d in DIRECTIONS)
        + f"<td>{result}</td>"
        f"<td>{alerts}</td></tr>"
    )


def _run_link(run_id: str | None, report_href: ReportHref) -> str:
    if run_id is None:
        return "–"
    href = report_href(run_id)
    if href is None:
        return html.esc(run_id)
    return f'<a href="{html.esc(href)}">{html.esc(run_id)}</a>'


def _matches(history: SeriesHistory, report_href: ReportHref) -> str:
    """The latest run's modes against the previous run's, or why there are none."""
    if not history.runs:
        return '<p class="muted">No runs yet.</p>'
    latest = _run_link(history.runs[-1].run_id, report_href)
    if history.previous_run_id is None:
        return (
            f'<p class="muted" id="no-previous">There is no previous run to match the modes of '
            f"the latest run ({latest}) against.</p>"
        )
    intro = (
        f'<p class="sub">The modes of {latest} matched by their members to those of the '
        f"previous run, {_run_link(history.previous_run_id, report_href)}.</p>"
    )
    if not history.matches:
        return intro + '<p class="muted">Neither run has modes to match.</p>'
    rows = "".join(_match_row(history, m) for m in history.matches)
    head = (
        "<th>direction</th><th>mode</th><th>previous mode</th><th>status</th>"
        "<th>Jaccard</th><th>label</th><th>significant</th>"
    )
    return (
        f'{intro}<div class="card wide"><table class="overview" id="modes-table">'
        f"<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></div>"
    )


def _match_row(history: SeriesHistory, m: ModeMatch) -> str:
    y = " y" if m.direction == "y_over_x" else ""
    significant = {True: "yes", False: "no", None: "–"}[m.significant]
    return (
        f'<tr class="{html.esc(m.status)}">'
        f'<td><span class="badge{y}">{html.esc(_words(history, m.direction))}</span></td>'
        f'<td class="num">{fmt(m.mode)}</td><td class="num">{fmt(m.previous_mode)}</td>'
        f"<td>{html.esc(m.status)}</td>"
        f'<td class="num">{fmt(m.jaccard, ".2f")}</td>'
        f"<td>{html.esc(m.label or '–')}</td><td>{significant}</td></tr>"
    )


def _p(p) -> str:
    return p_text(p) if _finite(p) else "–"


def _finite(value) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def _utc(t: datetime) -> datetime:
    """A naive time read as UTC (as the pages print it)."""
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t
