"""A bandwidth sweep's page and summary, from the warehouse rows of its runs (the runs whose
``parent_run_id`` is the sweep's id)."""

from __future__ import annotations

from speclens.storage.layout import Layout
from speclens.storage.warehouse import Warehouse


def sweep_entries(wh: Warehouse, sweep_id: str) -> list[dict]:
    """Per run of the sweep: ``{"run", "scores", "modes"}`` (its warehouse rows)."""
    from speclens.report.sweep import sweep_of

    runs = [r for r in wh.read("runs").to_pylist() if sweep_of(r) == sweep_id]
    return [
        {
            "run": r,
            "scores": wh.read("pair_scores", r["run_id"]).to_pylist()[0],
            "modes": wh.read("modes", r["run_id"]).sort_by("mode").to_pylist(),
        }
        for r in runs
    ]


def write_sweep_report(root: str, sweep_id: str, warehouse: str | None = None) -> str:
    """``reports/<sweep id>/index.html``: the sweep page of the runs published so far."""
    from speclens.report.sweep import write_sweep_page

    layout = Layout(root)
    entries = sweep_entries(Warehouse(layout.warehouse(warehouse)), sweep_id)
    return write_sweep_page(layout.report(sweep_id), sweep_id, entries)
