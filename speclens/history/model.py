"""The values of an audit series' history: its runs over time, the latest run's modes matched
to the previous run's, and the verdict. Built from the warehouse by
:mod:`speclens.history.series`; rendered by ``speclens history`` and the series page."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

DIRECTIONS = ("x_over_y", "y_over_x")
#: a mode's status against the previous run of its series
STATUSES = ("new", "persisting", "gone")


@dataclass
class SeriesRun:
    """One run of a series. Per direction (``x_over_y``, ``y_over_x``): the plug-in SPEC-diff,
    the held-out value, the interval and the p-value (the last three None without the
    uncertainty). ``significant``: the series' rule holds for this run (held-out SPEC-diff
    above its threshold with p below its level, or a new significant mode); ``alerts``: the
    messages of the thresholds it crossed (empty when none, or no alert was set)."""

    run_id: str
    created_at: datetime
    encoder_x: str
    encoder_y: str
    spec_diff: dict[str, float]
    heldout: dict[str, float | None]
    low: dict[str, float | None]
    high: dict[str, float | None]
    p: dict[str, float | None]
    significant: bool
    alerts: list[str] = field(default_factory=list)


@dataclass
class ModeMatch:
    """A mode of the latest run against the previous run of its series: ``persisting`` (matched
    by member overlap, ``jaccard``), ``new`` (no match: ``previous_mode`` None) or ``gone`` (a
    previous mode with no match: ``mode`` None). ``label``: the mode's (or the gone mode's)
    dominant label; ``significant``: its adjusted p-value under the series' level (None
    without the uncertainty)."""

    direction: str
    mode: int | None
    previous_mode: int | None
    status: str
    jaccard: float | None
    label: str | None = None
    significant: bool | None = None


@dataclass
class SeriesHistory:
    """A series: what it compares, its runs (oldest first), the latest run's mode matches and
    the verdict line (``changed significantly since <date>`` or ``no significant change``)."""

    series: str
    dataset: str
    baseline: str
    candidate: str
    runs: list[SeriesRun]
    matches: list[ModeMatch]
    verdict: str
    previous_run_id: str | None = None
