"""Match the modes of two runs of a series by the overlap of their members.

A mode is identified by the samples it ties together, not by its index (eigenvalues reorder
from night to night) nor its eigenvector (a different draw of random features rotates it
inside a near-degenerate cluster). Each mode's **core** is its members scoring at least
``CORE_SHARE`` of its top member's score (the same rule as ``samples.top_mode``): the rows
that carry the mode, without the tail that any random direction would also rank. Within each
direction (``x_over_y``, ``y_over_x``) the two runs' cores are paired by the assignment that
maximises the total Jaccard overlap of the pairs at or above ``min_jaccard`` (Hungarian
algorithm; pairs below it count as 0, so two weak overlaps never break up a match): those are
the same mode (``persisting``), the others ``new`` (this run) or ``gone`` (previous).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from scipy.optimize import linear_sum_assignment

from speclens.history.model import DIRECTIONS, ModeMatch

#: A member belongs to its mode's core when its score is at least this share of the top score.
CORE_SHARE = 0.5
#: Two cores at least this Jaccard overlap are the same mode.
MIN_JACCARD = 0.5


def mode_cores(members: Iterable[dict], share: float = CORE_SHARE) -> dict[int, frozenset]:
    """Per mode, the sample ids of its core (``members`` rows: mode, score, sample_id)."""
    by_mode: dict[int, list[tuple[float, str]]] = {}
    for row in members:
        by_mode.setdefault(int(row["mode"]), []).append((float(row["score"]), row["sample_id"]))
    cores = {}
    for mode, rows in by_mode.items():
        top = max(score for score, _ in rows)
        cores[mode] = frozenset(sid for score, sid in rows if top > 0 and score >= share * top)
    return cores


def jaccard(a: frozenset, b: frozenset) -> float:
    union = len(a | b)
    return len(a & b) / union if union else 0.0


def match_modes(
    current: dict[int, frozenset],
    previous: dict[int, frozenset],
    directions: dict[int, str],
    previous_directions: dict[int, str],
    min_jaccard: float = MIN_JACCARD,
) -> list[ModeMatch]:
    """Every mode of both runs, matched within its direction (module docstring): persisting
    pairs first, then new and gone modes, each group in mode order."""
    out: list[ModeMatch] = []
    for d in DIRECTIONS:
        now = sorted(m for m in current if directions[m] == d)
        before = sorted(m for m in previous if previous_directions[m] == d)
        J = np.array([[jaccard(current[a], previous[b]) for b in before] for a in now])
        pairs = []
        if J.size:  # only pairs that would persist count: two weak ones never outvote a match
            rows, cols = linear_sum_assignment(np.where(J >= min_jaccard, J, 0.0), maximize=True)
            pairs = [(now[r], before[c], J[r, c]) for r, c in zip(rows, cols, strict=True)]
        kept = [(a, b, j) for a, b, j in pairs if j >= min_jaccard]
        out += [ModeMatch(d, a, b, "persisting", float(j)) for a, b, j in sorted(kept)]
        matched_now, matched_before = {a for a, _, _ in kept}, {b for _, b, _ in kept}
        out += [ModeMatch(d, a, None, "new", None) for a in now if a not in matched_now]
        out += [ModeMatch(d, None, b, "gone", None) for b in before if b not in matched_before]
    return out
