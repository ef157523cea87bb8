"""Per-sample mode scores, their sign convention, and top members.

A mode's scores are the entries of the unit eigenvector of the difference kernel. The sign of
an eigenvector is arbitrary, so it is fixed to make the mode's largest-magnitude entry
positive. Over chunks this is a tiny reduction: each chunk reports its largest-magnitude
signed entry per mode (``extremes``), chunks merge by keeping the larger magnitude, and the
final signs multiply every chunk's scores.
"""

from __future__ import annotations

import numpy as np


def extremes(scores: np.ndarray) -> np.ndarray:
    """Signed value of the largest-magnitude entry of each column (one row of ``scores`` per sample)."""
    if scores.shape[0] == 0:
        return np.zeros(scores.shape[1])
    idx = np.argmax(np.abs(scores), axis=0)
    return scores[idx, np.arange(scores.shape[1])]


def merge_extremes(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Keep, per mode, whichever extreme has the larger magnitude (ties keep ``a``)."""
    return np.where(np.abs(b) > np.abs(a), b, a)


def signs_from_extremes(ext: np.ndarray) -> np.ndarray:
    """+1 or -1 per mode so that the largest-magnitude entry becomes positive."""
    return np.where(ext < 0, -1.0, 1.0)


def fix_signs(scores: np.ndarray) -> np.ndarray:
    """Flip each column of ``scores`` so its largest-magnitude entry is positive (in place)."""
    scores *= signs_from_extremes(extremes(scores))[None, :].astype(scores.dtype)
    return scores


def top_members(scores: np.ndarray, k: int) -> np.ndarray:
    """Row indices of the ``k`` largest scores of each mode, (n_modes, k), best first.

    Ties break by row index, so the result is deterministic.
    """
    n, n_modes = scores.shape
    k = min(int(k), n)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}.")
    out = np.empty((n_modes, k), dtype=np.int64)
    rows = np.arange(n)
    for j in range(n_modes):  # a loop over modes, not samples
        col = scores[:, j]
        cand = np.argpartition(-col, k - 1)[:k] if k < n else rows
        thresh = col[cand].min()
        cand = np.flatnonzero(col >= thresh)  # include all ties at the boundary
        order = np.lexsort((cand, -col[cand]))
        out[j] = cand[order][:k]
    return out
