"""HTML building blocks of the report: one page with inline CSS (no scripts, no network),
the run header, SPEC-diff boxes, mode cards with label bars and member grids, and the K x K
SPEC-diff matrix. Every user string goes through ``esc`` (html.escape)."""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from datetime import UTC
from html import escape

from speclens.report.numbers import (
    UNCERTAINTY_HEADS,
    caveats,
    fmt,
    has_uncertainty,
    mode_numbers,
    uncertainty_cells,
    weak,
)
from speclens.report.plots import X_COLOUR, Y_COLOUR

CSS = """
:root { --x: X_COLOUR; --y: Y_COLOUR; --ink: #0f172a; --muted: #64748b; --line: #e2e8f0; }
* { box-sizing: border-box; }
body { margin: 0; background: #f1f5f9; color: var(--ink);
  font: 14px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }
main { max-width: 1120px; margin: 0 auto; padding: 24px 20px 48px; }
h1 { font-size: 24px; margin: 0 0 2px; } h2 { font-size: 18px; margin: 28px 0 10px; }
h3 { font-size: 16px; margin: 0; }
.sub { color: var(--muted); margin: 0 0 16px; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 10px; padding: 16px 18px;
  margin: 0 0 14px; box-shadow: 0 1px 2px rgba(15, 23, 42, .04); }
.params { display: grid; grid-template-columns: repeat(auto-fill, minmax(190px, 1fr));
  gap: 6px 18px; margin: 0; }
.params div { min-width: 0; } .params .wide { grid-column: span 2; }
.params dt { color: var(--muted); font-size: 12px; }
.params dd { margin: 0; overflow-wrap: anywhere; }
.diffs { display: grid; grid-template-columns: 1fr 1fr; gap: 14px; }
.diff { border-left: 5px solid var(--x); } .diff.y { border-left-color: var(--y); }
.diff .v { font-size: 26px; font-weight: 650; } .diff p { margin: 4px 0 0; color: #334155; }
.spectrum img { width: 100%; height: auto; }
table { border-collapse: collapse; } td, th { padding: 4px 8px; text-align: left; }
.overview { width: 100%; } .overview th { color: var(--muted); font-weight: 500;
  border-bottom: 1px solid var(--line); } .overview td { border-bottom: 1px solid #f1f5f9; }
.num { text-align: right; font-variant-numeric: tabular-nums; }
.overview td.num { white-space: nowrap; }
.wide { overflow-x: auto; } .overview td.id { overflow-wrap: anywhere; min-width: 8em; }
.badge { display: inline-block; border-radius: 999px; padding: 1px 10px; font-size: 12px;
  color: #fff; background: var(--x); } .badge.y { background: var(--y); }
.mode { border-top: 4px solid var(--x); } .mode.y { border-top-color: var(--y); }
.mode header { display: flex; flex-wrap: wrap; align-items: baseline; gap: 6px 12px; }
.stats { color: #334155; margin: 6px 0 2px; } .summary { color: var(--muted); margin: 0 0 10px; }
.cols { display: grid; grid-template-columns: 260px 1fr; gap: 18px; align-items: start; }
.hist { width: 100%; font-size: 12px; } .hist td { padding: 2px 4px; }
.hist .lab { max-width: 110px; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.hist .bar { width: 60%; } .hist .bar span { display: block; height: 10px; border-radius: 3px;
  background: var(--x); } .y .hist .bar span { background: var(--y); }
.hist caption { text-align: left; color: var(--muted); font-size: 12px; padding-bottom: 4px; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(104px, 1fr)); gap: 10px; }
figure { margin: 0; min-width: 0; }
figure img { width: 100%; aspect-ratio: 1; object-fit: contain; background: #f8fafc;
  border-radius: 6px; border: 1px solid var(--line); }
img.px { image-rendering: pixelated; }
figcaption { font-size: 11px; line-height: 1.3; margin-top: 3px; overflow: hidden;
  display: -webkit-box; -webkit-line-clamp: 3; -webkit-box-orient: vertical; }
figcaption b { display: block; font-weight: 600; white-space: nowrap; overflow: hidden;
  text-overflow: ellipsis; }
.texts { margin: 0; padding: 0; list-style: none; }
.weak { opacity: .55; } .caveat { color: #b45309; margin: 4px 0 0; }
.verdict { font-size: 15px; margin: 0 0 14px; }
.texts li { padding: 5px 0; border-bottom: 1px solid #f1f5f9; }
.texts .r { color: var(--muted); display: inline-block; width: 34px; }
.muted { color: var(--muted); }
.matrix td, .matrix th { border: 1px solid var(--line); text-align: center; min-width: 84px; }
.matrix th { background: #f8fafc; font-weight: 500; }
footer { color: var(--muted); font-size: 12px; margin-top: 28px; }
details summary { cursor: pointer; color: var(--muted); }
@media (max-width: 760px) { .cols, .diffs { grid-template-columns: 1fr; } }
""".replace("X_COLOUR", X_COLOUR).replace("Y_COLOUR", Y_COLOUR)

STOPWORDS = frozenset(
    "a an the and or of on in at to with for from by is are was were be this that there "
    "some its it his her their into onto over under near next while has have".split()
)


def esc(value) -> str:
    return escape("" if value is None else str(value), quote=True)


def page(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head>"
        f"<body><main>{body}</main></body></html>\n"
    )


def is_x(mode: dict) -> bool:
    if mode.get("direction") in ("x_over_y", "y_over_x"):
        return mode["direction"] == "x_over_y"
    return (mode.get("eigenvalue") or 0) > 0


def direction_words(mode: dict, run: dict) -> str:
    ex, ey = run.get("encoder_x", "X"), run.get("encoder_y", "Y")
    return f"captured by {ex}, not by {ey}" if is_x(mode) else f"captured by {ey}, not by {ex}"


def run_header(run: dict) -> str:
    """Title and the run's parameters as a definition grid."""

    def kernel(axis: str) -> str:
        k, s = run.get(f"kernel_{axis}"), run.get(f"sigma_{axis}")
        return f"{k} (σ = {fmt(s)})" if s is not None else str(k)

    items = [
        ("dataset", run.get("dataset")),
        ("samples", fmt(run.get("n"), ",")),
        ("encoder X", run.get("encoder_x")),
        ("encoder Y", run.get("encoder_y")),
        ("kernel X", kernel("x")),
        ("kernel Y", kernel("y")),
        ("random features", fmt(run.get("rff_dim"), ",")),
        ("bandwidth scale", fmt(run.get("sigma_scale"))),
        ("eta", fmt(run.get("eta"))),
        ("modes each way", run.get("n_modes")),
        ("seed", run.get("seed")),
        ("status", run.get("status")),
        ("created", _when(run.get("created_at"))),
        ("dataset hash", run.get("dataset_hash")),
        ("group", run.get("group_id")),
        ("parent run", run.get("parent_run_id")),
        ("stage timings", _timings(run)),
    ]
    cells = "".join(_param(k, v) for k, v in items if v not in (None, ""))
    versions = _json(run.get("library_versions"))
    lib = ""
    if versions:
        lib = (
            "<details><summary>library versions</summary><p>"
            + esc(", ".join(f"{k} {v}" for k, v in sorted(versions.items())))
            + "</p></details>"
        )
    return (
        f"<h1>SPEC run {esc(run.get('run_id'))}</h1>"
        f'<p class="sub">What {esc(run.get("encoder_x"))} and {esc(run.get("encoder_y"))} '
        f"group differently in {esc(run.get('dataset'))}</p>"
        f'<div class="card"><dl class="params">{cells}</dl>{lib}</div>'
    )


def diff_boxes(run: dict, x_over_y: float, y_over_x: float, detail: tuple = ("", "")) -> str:
    """Both SPEC-diffs (``detail``: a line of uncertainty under each, or nothing)."""
    ex, ey = esc(run.get("encoder_x")), esc(run.get("encoder_y"))
    dx, dy = (f'<div class="muted">{esc(d)}</div>' if d else "" for d in detail)
    return (
        '<div class="diffs">'
        f'<div class="card diff"><div class="muted">SPEC-diff {ex} over {ey}</div>'
        f'<div class="v">{fmt(x_over_y)}</div>{dx}<p>The largest eigenvalue: how strongly the '
        f"tightest group that {ex} ties together is missed by {ey}.</p></div>"
        f'<div class="card diff y"><div class="muted">SPEC-diff {ey} over {ex}</div>'
        f'<div class="v">{fmt(y_over_x)}</div>{dy}<p>Minus the smallest eigenvalue: how strongly '
        f"the tightest group that {ey} ties together is missed by {ex}.</p></div></div>"
    )


def overview_table(modes: list[dict], run: dict) -> str:
    """One row per mode; with the uncertainty also its interval, held-out value, adjusted
    p-value and stability, and a greyed row (the reason on hover) for a mode not to rely on."""
    sure = any(has_uncertainty(m) for m in modes)
    head = "".join(f'<th class="num">{h}</th>' for h in UNCERTAINTY_HEADS) if sure else ""
    rows = "".join(
        f'<tr{_weak(m)}><td><a href="#mode-{esc(m["mode"])}">#{esc(m["mode"])}</a></td>'
        f'<td><span class="badge{"" if is_x(m) else " y"}">{esc(direction_words(m, run))}'
        f'</span></td><td class="num">{fmt(m.get("eigenvalue"))}</td>'
        + (_uncertainty_cells(m) if sure else "")
        + f'<td class="num">{fmt(m.get("mass_share"), ".1%")}</td>'
        f"<td>{esc(_dominant(m))}</td></tr>"
        for m in modes
    )
    return (
        '<table class="overview"><thead><tr><th>mode</th><th>direction</th>'
        f'<th class="num">eigenvalue</th>{head}<th class="num">share of mass</th>'
        f"<th>dominant label</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def _uncertainty_cells(m: dict) -> str:
    return "".join(f'<td class="num">{esc(text)}</td>' for text in uncertainty_cells(m))


def _weak(mode: dict) -> str:
    """The class (greyed: not to rely on) and hover text (every caveat) of a mode's row."""
    reasons = "; ".join(caveats(mode))
    greyed = ' class="weak"' if weak(mode) else ""
    return f'{greyed} title="{esc(reasons)}"' if reasons else greyed


def mode_card(
    mode: dict,
    run: dict,
    members: list[dict],
    thumbs: list[tuple[str, bool]],
    common_words: frozenset[str] = frozenset(),
) -> str:
    """One mode: header, numbers, summary, label bars and its top members (images when
    ``thumbs`` holds their relative paths and whether they are small, captions otherwise)."""
    y = "" if is_x(mode) else " y"
    dominant = _dominant(mode)
    stats = [
        f"eigenvalue {esc(mode_numbers(mode))}",
        f"{fmt(mode.get('mass_share'), '.1%')} of the spectrum's mass",
    ]
    if dominant:
        stats.append(f"dominant label <b>{esc(dominant)}</b>")
    reasons = caveats(mode)
    said = "; ".join(reasons)
    warn = f'<p class="caveat">{esc(said[:1].upper() + said[1:])}.</p>' if reasons else ""
    head = (
        f'<section class="card mode{y}{" weak" if weak(mode) else ""}" id="mode-{esc(mode["mode"])}">'
        f'<header><h3>Mode {esc(mode["mode"])}</h3><span class="badge{y}">'
        f"{esc(direction_words(mode, run))}</span></header>"
        f'<div class="stats">{" · ".join(stats)}</div>{warn}'
        f'<p class="summary">{esc(mode.get("summary"))}</p>'
    )
    bars = histogram(members, common_words)
    return head + f'<div class="cols">{bars}{_members(members, thumbs)}</div></section>'


def histogram(members: list[dict], common_words: frozenset[str] = frozenset(), top: int = 8) -> str:
    """Bars of the members' labels, or of their caption words when there are no labels
    (less ``common_words``: words most captions of the run share, like the background)."""
    labels = [m.get("label") for m in members if m.get("label")]
    if labels:
        counts, what = Counter(labels), f"Labels of the top {len(members)} members"
    else:
        words = [w for m in members for w in set(_words(m.get("caption"))) - common_words]
        counts, what = Counter(words), f"Caption words of the top {len(members)} members"
    if not counts:
        return '<p class="muted">No labels or captions.</p>'
    shown = counts.most_common(top)
    rest = sum(counts.values()) - sum(c for _, c in shown)
    if rest and labels:
        shown.append(("other", rest))
    peak = max(c for _, c in shown)
    rows = "".join(
        f'<tr><td class="lab" title="{esc(k)}">{esc(k)}</td><td class="bar">'
        f'<span style="width:{100 * c / peak:.1f}%"></span></td><td class="num">{c}</td></tr>'
        for k, c in shown
    )
    return f'<table class="hist"><caption>{esc(what)}</caption>{rows}</table>'


def matrix_table(encoders: list[str], matrix, bounds=None) -> str:
    """K x K SPEC-diff: cell (row a, column b) = what a captures that b misses; darker = larger;
    ``bounds`` (low, high matrices): each cell's interval under its value."""
    values = [float(v) for row in matrix for v in row]
    finite = [v for v in values if math.isfinite(v)]
    peak = max(finite, default=0.0) or 1.0
    head = "".join(f"<th>{esc(e)}</th>" for e in encoders)
    body = []
    for i, a in enumerate(encoders):
        cells = []
        for j in range(len(encoders)):
            v = float(matrix[i][j])
            if i == j:
                cells.append('<td class="muted">–</td>')
                continue
            t = max(0.0, min(1.0, v / peak)) if math.isfinite(v) else 0.0
            bg = _blend("#ffffff", X_COLOUR, 0.08 + 0.85 * t)
            ink = "#fff" if t > 0.55 else "#0f172a"
            interval = ""
            if bounds is not None and all(math.isfinite(b[i][j]) for b in bounds):
                interval = f"<br><small>[{fmt(bounds[0][i][j])}, {fmt(bounds[1][i][j])}]</small>"
            cells.append(
                f'<td class="num" style="background:{bg};color:{ink}">{fmt(v)}{interval}</td>'
            )
        body.append(f"<tr><th>{esc(a)}</th>{''.join(cells)}</tr>")
    return (
        '<table class="matrix"><thead><tr><th class="muted">captures ↓ · misses →</th>'
        f"{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    )


def _members(members: list[dict], thumbs: list[tuple[str, bool]]) -> str:
    if thumbs:
        figs = []
        for m, (src, small) in zip(members, thumbs, strict=False):
            label = f"<b>#{esc(m.get('rank'))} {esc(m.get('label') or '')}</b>"
            caption = m.get("caption")
            text = esc(caption) if caption else ""
            alt = esc(m.get("label") or m.get("sample_id"))
            px = ' class="px"' if small else ""
            figs.append(
                f'<figure title="{esc(m.get("sample_id"))}: {esc(caption or "")}">'
                f'<img src="{esc(src)}" alt="{alt}" loading="lazy"{px}>'
                f"<figcaption>{label}{text}</figcaption></figure>"
            )
        return f'<div class="grid">{"".join(figs)}</div>'
    items = "".join(
        f'<li><span class="r">#{esc(m.get("rank"))}</span>'
        f"{'<b>' + esc(m['label']) + '</b> · ' if m.get('label') else ''}"
        f'{esc(m.get("caption") or m.get("sample_id"))} <span class="muted">'
        f"({fmt(m.get('score'), '.3f')})</span></li>"
        for m in members[:12]
    )
    return f'<ol class="texts">{items}</ol>'


def _param(name: str, value) -> str:
    wide = ' class="wide"' if len(str(value)) > 26 else ""  # long paths and hashes: two columns
    return f"<div{wide}><dt>{esc(name)}</dt><dd>{esc(value)}</dd></div>"


def _dominant(mode: dict) -> str:
    label, share = mode.get("label"), mode.get("label_share")
    if not label:
        return ""
    return f"{label} ({fmt(share, '.0%')})" if share is not None else str(label)


def common_words(members: list[dict], share: float = 0.6) -> frozenset[str]:
    """Caption words found in at least ``share`` of all members (of 20 or more)."""
    if len(members) < 20:
        return frozenset()
    counts = Counter(w for m in members for w in set(_words(m.get("caption"))))
    return frozenset(w for w, c in counts.items() if c >= share * len(members))


def _words(text) -> list[str]:
    return [
        w
        for w in re.findall(r"[a-z][a-z'-]+", str(text or "").lower())
        if len(w) > 2 and w not in STOPWORDS
    ]


def _json(text) -> dict:
    if isinstance(text, dict):
        return text
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _timings(run: dict) -> str:
    t = _json(run.get("stage_timings"))
    return ", ".join(f"{k} {fmt(v, '.3g')} s" for k, v in t.items()) if t else ""


def _when(value) -> str:
    if value is None:
        return ""
    if not hasattr(value, "strftime"):
        return str(value)
    if getattr(value, "tzinfo", None) is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%d %H:%M UTC")


def _blend(a: str, b: str, t: float) -> str:
    ca = [int(a[i : i + 2], 16) for i in (1, 3, 5)]
    cb = [int(b[i : i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{round(x + (y - x) * t):02x}" for x, y in zip(ca, cb, strict=True))
