"""The modes table of a run's page: one row per mode (direction, eigenvalue, the uncertainty's
columns when the run has them, share of mass, dominant label), greyed rows for modes not to rely
on, and the data the page's script sorts and filters by (``data-value`` on numeric cells,
``data-search``, ``data-significant``, ``data-stable`` on rows) with its filter controls."""

from __future__ import annotations

import math

from speclens.report.html import direction_words, dominant, esc, is_x
from speclens.report.numbers import (
    ALPHA,
    UNCERTAINTY_HEADS,
    caveats,
    fmt,
    has_uncertainty,
    uncertainty_cells,
    weak,
)
from speclens.spec.inference import STABLE


def overview_table(modes: list[dict], run: dict) -> str:
    """One row per mode; with the uncertainty also its interval, held-out value, adjusted
    p-value and stability, and a greyed row (the reason on hover) for a mode not to rely on.
    Numeric cells carry their value (``data-value``) and rows their label and summary
    (``data-search``) and verdicts, for the script's sorting and filters."""
    sure = any(has_uncertainty(m) for m in modes)
    head = "".join(f'<th class="num">{h}</th>' for h in UNCERTAINTY_HEADS) if sure else ""
    rows = "".join(
        f"<tr{_weak(m)}{_row_data(m)}>"
        f'<td data-value="{esc(m["mode"])}"><a href="#mode-{esc(m["mode"])}">#{esc(m["mode"])}</a>'
        f'</td><td><span class="badge{"" if is_x(m) else " y"}">{esc(direction_words(m, run))}'
        f"</span></td>{num_cell(m.get('eigenvalue'), fmt(m.get('eigenvalue')))}"
        + (_uncertainty_cells(m) if sure else "")
        + num_cell(m.get("mass_share"), fmt(m.get("mass_share"), ".1%"))
        + f"<td>{esc(dominant(m))}</td></tr>"
        for m in modes
    )
    return (
        _mode_filters(sure) + '<table class="overview sortable" id="modes-table"><thead><tr>'
        f'<th>mode</th><th>direction</th><th class="num">eigenvalue</th>{head}'
        '<th class="num">share of mass</th><th>dominant label</th></tr></thead>'
        f"<tbody>{rows}</tbody></table>"
    )


def _mode_filters(sure: bool) -> str:
    """The modes table's filters, hidden until the script shows them (they need it): a text
    box on labels and summaries and, with the uncertainty, the significant and stable modes."""
    boxes = ""
    if sure:
        boxes = (
            '<label><input type="checkbox" id="modes-significant">only significant '
            f"(p &lt; {ALPHA} after Holm)</label>"
            '<label><input type="checkbox" id="modes-stable">only stable '
            f"(stability ≥ {STABLE})</label>"
        )
    return (
        '<div class="controls" id="modes-controls" hidden><input type="search" '
        'id="modes-filter" placeholder="filter by label or summary" '
        f'aria-label="Filter modes by label or summary">{boxes}'
        '<span class="muted" id="modes-count" aria-live="polite"></span></div>'
    )


def _row_data(m: dict) -> str:
    """A modes row's data for the filters: label and summary, significant, stable."""
    search = " ".join(str(m.get(k) or "") for k in ("label", "summary")).lower()
    out = f' data-search="{esc(search)}"'
    if has_uncertainty(m):
        significant = (m.get("p_adjusted") or 1.0) < ALPHA
        stable = (m.get("stability") or 0.0) >= STABLE
        out += f' data-significant="{int(significant)}" data-stable="{int(stable)}"'
    return out


def num_cell(value, text: str) -> str:
    """A right-aligned cell that sorts by ``value`` (none when missing: sorted last)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    data = f' data-value="{number!r}"' if math.isfinite(number) else ""
    return f'<td class="num"{data}>{esc(text)}</td>'


def _uncertainty_cells(m: dict) -> str:
    keys = ("eigenvalue_low", "heldout_eigenvalue", "p_adjusted", "stability")
    return "".join(
        num_cell(m.get(k), text) for k, text in zip(keys, uncertainty_cells(m), strict=True)
    )


def _weak(mode: dict) -> str:
    """The class (greyed: not to rely on) and hover text (every caveat) of a mode's row."""
    reasons = "; ".join(caveats(mode))
    greyed = ' class="weak"' if weak(mode) else ""
    return f'{greyed} title="{esc(reasons)}"' if reasons else greyed
