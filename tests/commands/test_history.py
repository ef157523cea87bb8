"""`speclens history` on a warehouse of runs made before series existed: --backfill gives them
the series an audit would derive, matches each run's modes to the previous run's by members
(not by index), prints verdicts and writes the series page; unknown series and missing
warehouses are one sentence."""

from __future__ import annotations

import json
from datetime import timedelta

from typer.testing import CliRunner
from warehouse_rows import fill, run_rows

from speclens.cli import app
from speclens.history.record import load_history, series_names
from speclens.storage.warehouse import Warehouse


def _rerun_swapped(wh: Warehouse, run_id: str) -> None:
    """Pair 0 again a day later, its modes 0 and 1 numbered the other way round."""
    rows = run_rows(0, run_id)
    rows["runs"][0]["created_at"] += timedelta(days=1)
    swap = {0: 1, 1: 0}
    for row in rows["modes"] + rows["members"]:
        row["mode"] = swap.get(row["mode"], row["mode"])
    for table in ("modes", "members", "samples", "pair_scores", "runs"):
        wh.write(table, run_id, rows[table])


def test_backfill_matches_modes_by_members_and_prints_the_series(tmp_path):
    root, wh_url = tmp_path / "out", str(tmp_path / "warehouse")
    wh = Warehouse(wh_url)
    fill(wh)
    runner = CliRunner()
    result = runner.invoke(app, ["history", "--root", str(root), "--warehouse", wh_url])
    assert result.exit_code == 0 and "no series" in result.output
    _rerun_swapped(wh, "emb-004")
    args = ["history", "--root", str(root), "--warehouse", wh_url, "--backfill"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "backfill: 4 run(s) into 3 series." in result.output
    names = series_names(wh)
    assert len(names) == 3
    runs = {r["run_id"]: r for r in wh.read("runs").to_pylist()}
    assert runs["emb-001"]["series"] == runs["emb-004"]["series"] != runs["emb-002"]["series"]
    assert runs["emb-001"]["series"].startswith("embedded.hue-hist.vs.grad-hist.")
    matches = wh.read("mode_matches", "emb-004").to_pylist()
    assert {(m["mode"], m["previous_mode"]) for m in matches} == {
        (i, {0: 1, 1: 0}.get(i, i)) for i in range(6)
    }
    assert all(m["status"] == "persisting" and m["jaccard"] == 1.0 for m in matches)
    assert {m["previous_run_id"] for m in matches} == {"emb-001"}
    assert wh.read("mode_matches", "emb-001").num_rows == 0  # a series' first run
    assert json.loads(runs["emb-004"]["alerts"] or "[]") == []  # no alert was set
    series = runs["emb-004"]["series"]
    history = load_history(wh, series)
    assert [r.run_id for r in history.runs] == ["emb-001", "emb-004"]
    # no uncertainty in these rows: the plug-in SPEC-diff alone decides (above 0.02)
    assert history.verdict == "changed significantly since 2025-06-01 09:00 UTC"
    assert f"series {series}: changed significantly since 2025-06-01 09:00 UTC" in result.output
    assert "x_over_y: mode 0 persisting (was mode 1, Jaccard 1.00)" in result.output
    assert (root / "reports" / "series" / series / "index.html").exists()
    again = runner.invoke(app, args)
    assert again.exit_code == 0 and "backfill: 0 run(s) into 0 series." in again.output
    one = runner.invoke(app, ["history", series, "--root", str(root), "--warehouse", wh_url])
    assert one.exit_code == 0 and one.output.count("\nseries ") == 1
    js = runner.invoke(
        app, ["history", series, "--warehouse", wh_url, "--root", str(root), "--json"]
    )
    (parsed,) = json.loads(js.output)
    assert parsed["series"] == series and [r["run_id"] for r in parsed["runs"]] == [
        "emb-001",
        "emb-004",
    ]
    assert parsed["verdict"] == history.verdict and parsed["page"].endswith("index.html")


def test_unknown_series_and_missing_warehouse_are_one_sentence(tmp_path):
    wh_url = str(tmp_path / "warehouse")
    runner = CliRunner()
    result = runner.invoke(app, ["history", "--root", str(tmp_path), "--warehouse", wh_url])
    assert result.exit_code == 2 and f"no warehouse at {wh_url}" in result.output
    fill(Warehouse(wh_url))
    result = runner.invoke(app, ["history", "nope", "--warehouse", wh_url, "--backfill"])
    assert result.exit_code == 2 and "no series 'nope' in" in result.output
    assert "known: embedded." in result.output
