"""Audit series: the key that lines runs of one comparison up over time, and a series' history
read back from the warehouse.

A series key is given (``--series NAME``) or derived from what makes two runs the same
comparison: the dataset's name, the baseline's and the candidate's names (a candidate whose
checkpoint changes every night keeps a stable name) and the parameters that change the
numbers' meaning (kernels, bandwidth rule, feature count, eta), digested. The same derivation
reads them off a ``runs`` row, so ``speclens history --backfill`` gives runs made before series
existed the key an audit would have given them.
"""

from __future__ import annotations

import hashlib
import json
import re

from speclens.history.model import DIRECTIONS, ModeMatch, SeriesHistory, SeriesRun
from speclens.storage.layout import dataset_name

#: Letters, digits, '.', '_', '-' (a series names a folder of the series pages).
SERIES_PATTERN = r"^[A-Za-z0-9._-]+$"
#: The alert thresholds when a series sets none (they still decide each run's verdict).
DEFAULT_RULES = {"spec_diff": 0.02, "p_value": 0.01, "new_mode": True, "jaccard": 0.5}


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "series"


def comparison(run: dict) -> dict:
    """The parameters of a ``runs`` row that make runs the same comparison."""
    kernels = (run["kernel_x"], run["kernel_y"])
    gaussian = "gaussian" in kernels
    out = {"kernels": list(kernels), "eta": float(run["eta"])}
    if gaussian:
        rff = run.get("rff_dim")
        out["rff_dim"] = "auto" if run.get("rff_dim_auto") else (None if rff is None else int(rff))
        if run.get("sigma_scale") is not None:
            out["sigma_scale"] = float(run["sigma_scale"])
        else:
            out["sigma"] = [run.get("sigma_x"), run.get("sigma_y")]
    return out


def series_key(dataset: str, baseline: str, candidate: str, run: dict) -> str:
    """The derived key: ``<dataset>.<baseline>.vs.<candidate>.<digest of the comparison>``."""
    what = json.dumps(comparison(run), sort_keys=True, default=str)
    digest = hashlib.sha256(what.encode()).hexdigest()[:6]
    return slug(f"{dataset_name(dataset)}.{baseline}.vs.{candidate}") + "." + digest


def run_series(named: str | None, names: tuple[str, str] | None, run: dict) -> str | None:
    """A run's series: ``named`` (a sweep's runs: with their bandwidth scale appended), else
    the key derived from ``names`` (baseline, candidate) and the row, else None (no audit)."""
    if named:
        scale = run.get("sigma_scale")
        return named if run.get("parent_run_id") is None or scale is None else f"{named}-s{scale:g}"
    if names is None:
        return None
    return series_key(run["dataset"], names[0], names[1], run)


def significant(row: dict, rules: dict, new_modes: list[ModeMatch] = ()) -> list[str]:
    """The thresholds a run crosses, one sentence each (``row``: its ``pair_scores`` row):
    a direction's held-out SPEC-diff (plug-in without the uncertainty) above
    ``rules['spec_diff']`` with its p-value under ``rules['p_value']`` (no p-value: the value
    alone), and with ``rules['new_mode']`` each new mode significant at that level."""
    out = []
    for d in DIRECTIONS:
        held = row.get(f"spec_diff_{d}_heldout")
        value = held if held is not None else row[f"spec_diff_{d}"]
        p = row.get(f"spec_diff_{d}_p")
        if value > rules["spec_diff"] and (p is None or p < rules["p_value"]):
            what = "held-out SPEC-diff" if held is not None else "SPEC-diff"
            why = f"p = {p:.2g} < {rules['p_value']:g}" if p is not None else "no p-value"
            out.append(f"{what} {d} {value:.4g} above {rules['spec_diff']:g} ({why})")
    if rules.get("new_mode"):
        for m in new_modes:
            if m.status == "new" and m.significant:
                label = f", label {m.label}" if m.label else ""
                out.append(f"new significant mode {m.mode} ({m.direction}{label})")
    return out


def verdict(runs: list[SeriesRun]) -> str:
    """``changed significantly since <date>`` (the first run of the latest unbroken stretch of
    significant runs) or ``no significant change`` (the latest run is not significant)."""
    if not runs or not runs[-1].significant:
        return "no significant change"
    first = len(runs) - 1
    while first > 0 and runs[first - 1].significant:
        first -= 1
    return f"changed significantly since {runs[first].created_at:%Y-%m-%d %H:%M} UTC"


def series_run(run: dict, scores: dict, rules: dict, matches: list[ModeMatch]) -> SeriesRun:
    """A :class:`SeriesRun` from a run's ``runs`` and ``pair_scores`` rows."""
    alerts = run.get("alerts")
    fired = json.loads(alerts) if isinstance(alerts, str) else list(alerts or [])
    per = {k: {} for k in ("spec_diff", "heldout", "low", "high", "p")}
    for d in DIRECTIONS:
        per["spec_diff"][d] = scores[f"spec_diff_{d}"]
        for what in ("heldout", "low", "high", "p"):
            per[what][d] = scores.get(f"spec_diff_{d}_{what}")
    return SeriesRun(
        run["run_id"],
        run["created_at"],
        run["encoder_x"],
        run["encoder_y"],
        **per,
        significant=bool(significant(scores, rules, matches)),
        alerts=fired,
    )


def stored_rules(run: dict) -> dict | None:
    """The alert thresholds a ``runs`` row records (None: no alert was set)."""
    raw = run.get("alert_rules")
    return json.loads(raw) if isinstance(raw, str) else raw


def with_defaults(rules: dict | None) -> dict:
    """``rules`` over the defaults (every key present)."""
    return {**DEFAULT_RULES, **(rules or {})}


def rules_of(run: dict) -> dict:
    """The run's alert thresholds, or the defaults when it set none."""
    return with_defaults(stored_rules(run))


def history_of(
    series: str, runs: list[dict], scores: dict, matches: dict[str, list[ModeMatch]]
) -> SeriesHistory:
    """A series' history from its ``runs`` rows (any order), their ``pair_scores`` rows by run
    id and each run's mode matches by run id (empty for a series' first run)."""
    runs = sorted(runs, key=lambda r: r["created_at"])
    items = [
        series_run(r, scores[r["run_id"]], rules_of(r), matches.get(r["run_id"], [])) for r in runs
    ]
    last = runs[-1]
    return SeriesHistory(
        series,
        last["dataset"],
        last["encoder_x"],
        last["encoder_y"],
        items,
        matches.get(last["run_id"], []),
        verdict(items),
        runs[-2]["run_id"] if len(runs) > 1 else None,
    )
