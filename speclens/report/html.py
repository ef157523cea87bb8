"""HTML building blocks of the report: one page with inline CSS (``assets/report.css``) and,
on a run's page, ``report.js`` beside it (no network: the page opens from disk), the run
header, SPEC-diff boxes, the sortable and filterable modes table, mode cards with label bars and
member grids (paged by the script, every member present without it), and the K x K SPEC-diff
matrix. Every user string goes through ``esc`` (html.escape)."""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from datetime import UTC
from functools import cache
from html import escape
from importlib import resources

from speclens.report.numbers import caveats, fmt, mode_numbers, weak
from speclens.report.plots import X_COLOUR, Y_COLOUR

#: The script a run's page loads from beside its index.html (see :func:`asset`).
SCRIPT = "report.js"
#: Members a mode's grid shows at once; the script pages through the rest.
PAGE_SIZE = 16

STOPWORDS = frozenset(
    "a an the and or of on in at to with for from by is are was were be this that there "
    "some its it his her their into onto over under near next while has have".split()
)


def esc(value) -> str:
    return escape("" if value is None else str(value), quote=True)


@cache
def asset(name: str) -> str:
    """A file shipped in ``speclens/report/assets`` (package data), as text."""
    return resources.files("speclens.report").joinpath("assets", name).read_text("utf-8")


def css() -> str:
    """The pages' style, with the direction colours of the plots."""
    return asset("report.css").replace("X_COLOUR", X_COLOUR).replace("Y_COLOUR", Y_COLOUR)


def page(title: str, body: str, script: bool = False) -> str:
    """A whole page; ``script``: load :data:`SCRIPT` from beside it (a run's page: sorting,
    filters, member pages, the map), the caller copies it there."""
    tail = f'<script src="{SCRIPT}"></script>' if script else ""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{css()}</style></head>"
        f"<body><main>{body}</main>{tail}</body></html>\n"
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


def mode_card(
    mode: dict,
    run: dict,
    members: list[dict],
    thumbs: list[tuple[str, bool] | None],
    common_words: frozenset[str] = frozenset(),
) -> str:
    """One mode: header, numbers, summary, label bars and its top members (images when
    ``thumbs`` holds, per member, its relative path and whether it is small, or None for a
    member without an image; captions when it is empty)."""
    y = "" if is_x(mode) else " y"
    label = dominant(mode)
    stats = [
        f"eigenvalue {esc(mode_numbers(mode))}",
        f"{fmt(mode.get('mass_share'), '.1%')} of the spectrum's mass",
    ]
    if label:
        stats.append(f"dominant label <b>{esc(label)}</b>")
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
    return (
        head + f'<div class="cols">{bars}{_members(members, thumbs, mode["mode"])}</div></section>'
    )


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


def _members(members: list[dict], thumbs: list[tuple[str, bool] | None], mode) -> str:
    """The members as a grid of images (``thumbs``: per member its relative path and whether
    it is small, or None) that the script pages by :data:`PAGE_SIZE`, or captions (no image)."""
    if thumbs:
        figs = [
            figure(
                thumb,
                f"{m.get('sample_id')}: {m.get('caption') or ''}",
                m.get("label") or m.get("sample_id"),
                f"<b>#{esc(m.get('rank'))} {esc(m.get('label') or '')}</b>"
                + esc(m.get("caption") or ""),
            )
            for m, thumb in zip(members, thumbs, strict=False)
        ]
        return (  # the script adds the pager inside .members, under the grid
            f'<div class="members"><div class="grid" data-page-size="{PAGE_SIZE}" '
            f'aria-label="Members of mode {esc(mode)}">{"".join(figs)}</div></div>'
        )
    items = "".join(
        f'<li><span class="r">#{esc(m.get("rank"))}</span>'
        f"{'<b>' + esc(m['label']) + '</b> · ' if m.get('label') else ''}"
        f'{esc(m.get("caption") or m.get("sample_id"))} <span class="muted">'
        f"({fmt(m.get('score'), '.3f')})</span></li>"
        for m in members[:12]
    )
    return f'<ol class="texts">{items}</ol>'


def figure(thumb: tuple[str, bool] | None, title: str, alt, caption: str) -> str:
    """A thumbnail (``thumb``: relative path, small; None: an empty box) with its caption
    (``caption`` is HTML, already escaped)."""
    if thumb is None:
        picture = '<div class="noimg" role="img" aria-label="no image"></div>'
    else:
        px = ' class="px"' if thumb[1] else ""
        picture = f'<img src="{esc(thumb[0])}" alt="{esc(alt)}" loading="lazy"{px}>'
    return f'<figure title="{esc(title)}">{picture}<figcaption>{caption}</figcaption></figure>'


def _param(name: str, value) -> str:
    wide = ' class="wide"' if len(str(value)) > 26 else ""  # long paths and hashes: two columns
    return f"<div{wide}><dt>{esc(name)}</dt><dd>{esc(value)}</dd></div>"


def dominant(mode: dict) -> str:
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
