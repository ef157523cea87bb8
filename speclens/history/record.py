"""A series in the warehouse: record an audit run against the previous run of its series
(``mode_matches`` rows, the thresholds it crossed in its ``runs`` row), read a series'
history back, and give series to runs made before series existed (backfill)."""

from __future__ import annotations

import json

from speclens.history.matching import match_modes, mode_cores
from speclens.history.model import ModeMatch, SeriesHistory
from speclens.history.series import (
    history_of,
    rules_of,
    series_key,
    significant,
    stored_rules,
    with_defaults,
)
from speclens.storage.warehouse import Warehouse, sql_literal


def series_names(wh: Warehouse) -> list[str]:
    rows = wh.query("SELECT DISTINCT series FROM runs WHERE series IS NOT NULL ORDER BY series")
    return [r["series"] for r in rows.to_pylist()]


def series_runs(wh: Warehouse, series: str) -> list[dict]:
    """The series' succeeded runs, oldest first."""
    sql = (
        f"SELECT * FROM runs WHERE series = {sql_literal(series)} AND status = 'succeeded' "
        "ORDER BY created_at, run_id"
    )
    return wh.query(sql).to_pylist()


def series_datasets(wh: Warehouse) -> dict[str, set[str]]:
    """Each series' datasets (one, unless a name was reused)."""
    out: dict[str, set[str]] = {}
    rows = wh.query("SELECT DISTINCT series, dataset FROM runs WHERE series IS NOT NULL")
    for r in rows.to_pylist():
        out.setdefault(r["series"], set()).add(r["dataset"])
    return out


def _modes(wh: Warehouse, run_id: str) -> tuple[dict, dict, dict]:
    """(core members by mode, direction by mode, modes rows by mode) of a run's live modes: a
    mode with a zero eigenvalue (identical inputs) or no core is no mode."""
    modes = {r["mode"]: r for r in wh.read("modes", run_id).to_pylist() if r["eigenvalue"] != 0}
    cores = mode_cores(r for r in wh.read("members", run_id).to_pylist() if r["mode"] in modes)
    cores = {m: c for m, c in cores.items() if c}
    return cores, {m: modes[m]["direction"] for m in cores}, modes


def match_runs(wh: Warehouse, run_id: str, previous: str, rules: dict) -> list[ModeMatch]:
    """The run's modes matched to the previous run's, with labels and significance."""
    now, d_now, rows_now = _modes(wh, run_id)
    before, d_before, rows_before = _modes(wh, previous)
    matches = match_modes(now, before, d_now, d_before, rules["jaccard"])
    for m in matches:
        row = rows_now[m.mode] if m.mode is not None else rows_before[m.previous_mode]
        m.label = row.get("label")
        p = row.get("p_adjusted")
        m.significant = None if p is None else bool(p < rules["p_value"])
    return matches


def record_run(wh: Warehouse, run_id: str, rules: dict | None) -> dict:
    """Match the run's modes to the previous run of its series (``mode_matches``), evaluate
    ``rules`` (None: no alert set; the verdict still uses the defaults) and write both into
    its ``runs`` row. Returns the series, previous run, alerts fired and mode counts (the
    series' verdict: :func:`load_history`)."""
    run = wh.read("runs", run_id).to_pylist()[0]
    series = run["series"]
    runs = [r for r in series_runs(wh, series) if r["run_id"] != run_id]
    earlier = [r for r in runs if (r["created_at"], r["run_id"]) < (run["created_at"], run_id)]
    previous = earlier[-1]["run_id"] if earlier else None
    used = with_defaults(rules)
    matches = match_runs(wh, run_id, previous, used) if previous else []
    wh.write("mode_matches", run_id, _match_rows(series, previous, matches))
    scores = wh.read("pair_scores", run_id).to_pylist()[0]
    fired = significant(scores, used, matches) if rules else []
    run.update(alert_rules=json.dumps(rules) if rules else None, alerts=json.dumps(fired))
    wh.write("runs", run_id, [run])
    return {
        "series": series,
        "run_id": run_id,
        "previous_run_id": previous,
        "alerts": fired,
        "matches": {s: sum(m.status == s for m in matches) for s in ("persisting", "new", "gone")},
        "scores": {k: v for k, v in scores.items() if k.startswith("spec_diff")},
    }


def _match_rows(series: str, previous: str | None, matches: list[ModeMatch]) -> list[dict]:
    return [
        {
            "series": series,
            "previous_run_id": previous,
            "direction": m.direction,
            "mode": m.mode,
            "previous_mode": m.previous_mode,
            "status": m.status,
            "jaccard": m.jaccard,
        }
        for m in matches
    ]


def load_history(wh: Warehouse, series: str) -> SeriesHistory | None:
    """The series' history (None when no succeeded run has this series)."""
    runs = series_runs(wh, series)
    if not runs:
        return None
    ids = [r["run_id"] for r in runs]
    scores = {r["run_id"]: r for r in wh.query(_in("pair_scores", ids)).to_pylist()}
    rows = wh.query(_in("mode_matches", ids)).to_pylist()
    matches: dict[str, list[ModeMatch]] = {}
    modes = {(r["run_id"], r["mode"]): r for r in wh.query(_in("modes", ids)).to_pylist()}
    rules_by_run = {x["run_id"]: rules_of(x) for x in runs}
    for r in rows:
        rules = rules_by_run[r["run_id"]]
        mine = r["mode"] if r["mode"] is not None else r["previous_mode"]
        source = r["run_id"] if r["mode"] is not None else r["previous_run_id"]
        mode = modes.get((source, mine), {})
        p = mode.get("p_adjusted")
        matches.setdefault(r["run_id"], []).append(
            ModeMatch(
                r["direction"],
                r["mode"],
                r["previous_mode"],
                r["status"],
                r["jaccard"],
                mode.get("label"),
                None if p is None else bool(p < rules["p_value"]),
            )
        )
    return history_of(series, runs, scores, matches)


def _in(table: str, run_ids: list[str]) -> str:
    return f"SELECT * FROM {table} WHERE run_id IN ({', '.join(map(sql_literal, run_ids))})"


def backfill(wh: Warehouse) -> dict[str, int]:
    """Give every succeeded run without a series the key an audit would derive (its encoders
    as the names), then match each series' runs in time order. Returns runs per series
    touched. Runs already in a series keep it."""
    rows = wh.query(
        "SELECT * FROM runs WHERE series IS NULL AND status = 'succeeded' ORDER BY created_at"
    ).to_pylist()
    touched: dict[str, int] = {}
    for run in rows:
        run["series"] = series_key(run["dataset"], run["encoder_x"], run["encoder_y"], run)
        wh.write("runs", run["run_id"], [run])
        touched[run["series"]] = touched.get(run["series"], 0) + 1
    for series in touched:  # in time order: each run against the one before it
        for run in series_runs(wh, series):
            record_run(wh, run["run_id"], stored_rules(run))
    return touched
