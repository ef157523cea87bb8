"""`speclens history [SERIES]`: audit series over time, from the warehouse.

Per series: what it compares, the verdict (``changed significantly since <date>`` or ``no
significant change``), each run's SPEC-diff both ways (held-out, interval, p-value) and
verdict, the latest run's modes matched to the previous run's (persisting with the Jaccard
overlap, new, gone), and the series page (``<root>/reports/series/<series>/index.html``,
rewritten). ``--backfill`` first gives runs made before series existed the series an audit
would have given them.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from functools import partial
from typing import Annotated

import typer

from speclens.history.model import DIRECTIONS


def history(
    series: Annotated[
        str | None, typer.Argument(help="Series name (default: every series).")
    ] = None,
    root: Annotated[str, typer.Option("--root", help="Output root.")] = "speclens-out",
    warehouse: Annotated[
        str | None, typer.Option("--warehouse", help="Warehouse URL (default: <root>/warehouse).")
    ] = None,
    backfill: Annotated[
        bool, typer.Option("--backfill", help="Give series to runs made without one, first.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the histories as JSON (for scripts and CI).")
    ] = False,
) -> None:
    """Show audit series over time: SPEC-diff per run, verdicts, modes new / persisting / gone."""
    from speclens.history.record import backfill as run_backfill
    from speclens.history.record import load_history, series_names
    from speclens.report.history_page import write_series_page
    from speclens.storage import urls
    from speclens.storage.layout import Layout
    from speclens.storage.warehouse import Warehouse

    url = Layout(root).warehouse(warehouse)
    if not urls.exists(url):
        typer.echo(
            f"error: no warehouse at {url}; pass --root or --warehouse of an audit's output.",
            err=True,
        )
        raise typer.Exit(2)
    wh = Warehouse(url)
    if backfill:
        touched = run_backfill(wh)
        typer.echo(f"backfill: {sum(touched.values())} run(s) into {len(touched)} series.")
    names = series_names(wh)
    if series is not None and series not in names:
        known = ", ".join(names[:10]) or "none yet (run an audit, or --backfill)"
        typer.echo(f"error: no series {series!r} in {url}; known: {known}.", err=True)
        raise typer.Exit(2)
    histories = [
        (h, write_series_page(root, h))
        for h in map(partial(load_history, wh), [series] if series else names)
        if h
    ]
    if as_json:
        typer.echo(
            json.dumps(
                [{**asdict(h), "page": page} for h, page in histories], default=str, indent=1
            )
        )
        return
    for h, page in histories:
        print_history(h, page)
    if not names:
        typer.echo(f"no series in {url} yet: run `speclens audit`, or pass --backfill.")


def print_history(h, page: str | None) -> None:
    typer.echo(f"\nseries {h.series}: {h.verdict}")
    typer.echo(f"  {h.baseline} (baseline) vs {h.candidate} on {h.dataset}")
    for r in h.runs:
        both = "  ".join(_direction(r, d) for d in DIRECTIONS)
        mark = "significant" if r.significant else "no significant change"
        typer.echo(f"  {r.created_at:%Y-%m-%d %H:%M}  {r.run_id}  {both}  {mark}")
        for a in r.alerts:
            typer.echo(f"      ALERT: {a}")
    if h.previous_run_id is None:
        typer.echo("  modes: the series' first run, nothing to match yet.")
    for m in h.matches:
        if m.status == "persisting":
            what = f"mode {m.mode} persisting (was mode {m.previous_mode}, Jaccard {m.jaccard:.2f})"
        elif m.status == "new":
            what = f"mode {m.mode} new"
        else:
            what = f"mode {m.previous_mode} of {h.previous_run_id} gone"
        label = f", label {m.label}" if m.label else ""
        sig = {True: ", significant", False: ", not significant", None: ""}[m.significant]
        typer.echo(f"  {m.direction}: {what}{label}{sig}")
    if page:
        typer.echo(f"  page: {page}")


def _direction(r, d: str) -> str:
    """``x_over_y 0.2407 [0.2169, 0.2645] held-out 0.1805 p=5e-20`` (what the run has)."""
    text = f"{d} {r.spec_diff[d] + 0.0:.4f}"  # + 0.0: no "-0.0000" for an exact zero
    if r.low[d] is not None and r.high[d] is not None:
        text += f" [{r.low[d] + 0.0:.4f}, {r.high[d] + 0.0:.4f}]"
    if r.heldout[d] is not None:
        text += f" held-out {r.heldout[d] + 0.0:.4f}"
    if r.p[d] is not None:
        text += f" p={r.p[d]:.2g}"
    return text
