"""Statistics of the published numbers: standard errors, intervals, p-values, stability.

Arrays in, arrays out; the passes that gather their inputs are :mod:`speclens.spec.crossfit`.

* **Plug-in standard error** (delta method). For a simple eigenvalue ``lam`` of the difference
  kernel with unit eigenvector ``v`` over n samples, sample i's influence on ``lam`` is
  ``lam (n v_i^2 - 1)``, so ``se^2 = lam^2 (sum_i v_i^4 - 1/n)``: a mode carried by k samples
  (``v_i^2 ~ 1/k`` on them) has relative error about ``1/sqrt(k)``.
* **Held-out eigenvalue** (cross-fitted): the Rayleigh quotient of a direction found on the other
  half of the samples, evaluated on pairs of held-out samples from different groups (an
  incomplete U-statistic, so no sample is paired with itself). Its standard error is the
  jackknife over the groups (delete one group, recompute the ratio), which is valid both when
  the embeddings differ and when they do not (the statistic is then degenerate, with mean 0).
* **p-value**: one-sided, from the held-out value and its standard error (normal
  approximation); H0: the two embeddings induce the same kernel on the population.
  Holm's step-down adjustment over a run's modes.
* **Stability**: the weighted Jaccard overlap of where the directions found on the two halves
  put their weight (``v_i^2`` over the samples), each half's direction being the one that
  matches the mode best (modes with near-equal eigenvalues can come in another order in a
  half). Weighted, not the top k rows: a group of equal members has no reproducible order
  within it, only a reproducible extent.
"""

from __future__ import annotations

import numpy as np

#: Reading of the member-stability Jaccard (the usual bootstrap-clustering thresholds).
STABLE, DISSOLVED = 0.75, 0.5


def z_value(confidence: float) -> float:
    """The two-sided normal quantile of an interval of ``confidence`` (0.9 -> 1.645)."""
    from scipy.special import ndtri  # here: a compare without intervals never imports it

    return float(ndtri(0.5 + confidence / 2.0))


def plugin_se(eigenvalues: np.ndarray, sum_v4: np.ndarray, n: int) -> np.ndarray:
    """Delta-method standard error of each eigenvalue from the sum of its unit eigenvector's
    fourth powers over the n samples."""
    excess = np.maximum(np.asarray(sum_v4, dtype=np.float64) - 1.0 / max(n, 1), 0.0)
    return np.abs(np.asarray(eigenvalues, dtype=np.float64)) * np.sqrt(excess)


def pair_count(counts: np.ndarray) -> float:
    """The number of ordered sample pairs between different groups (``counts``: per group)."""
    n = counts.sum()
    return float(n * n - (counts * counts).sum())


def pair_sums(cross: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, float]:
    """(sum over ordered pairs of different groups of ``cross[b, b']``, number of sample
    pairs between different groups); ``cross`` is (G, G) per mode on the last axis."""
    total = cross.sum(axis=(0, 1)) - np.trace(cross, axis1=0, axis2=1)
    return total, pair_count(counts)


def heldout_ratio(cross: np.ndarray, counts: np.ndarray, sq: np.ndarray) -> tuple:
    """The held-out Rayleigh quotient of each mode and its jackknife standard error.

    ``cross``: (G, G, c), ``g_b^T S g_b'`` for the group sums ``g_b = sum_{i in b} psi_i f_i``
    of the held-out samples (features of an independent draw); ``counts``: (G,) samples per
    group; ``sq``: (G, c) ``sum_{i in b} f_i^2``. Groups without samples are ignored.
    Returns (value (c,), se (c,)); NaN where no direction has any weight.
    """
    keep = counts > 0
    cross, counts, sq = cross[keep][:, keep], counts[keep], sq[keep]
    G = counts.size
    num, pairs = pair_sums(cross, counts)
    den = sq.sum(axis=0) / counts.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        value = (num / pairs) / den
        if G < 3:
            return value, np.full_like(value, np.nan)
        row = cross.sum(axis=1) + cross.sum(axis=0) - 2 * np.einsum("bbc->bc", cross)
        drops = np.empty((G, value.size))
        for b in range(G):  # the ratio with group b left out
            rest = counts.sum() - counts[b]
            pairs_b = pairs - 2 * counts[b] * rest
            den_b = (sq.sum(axis=0) - sq[b]) / rest
            drops[b] = ((num - row[b]) / pairs_b) / den_b
        se = np.sqrt((G - 1) / G * ((drops - drops.mean(axis=0)) ** 2).sum(axis=0))
    return value, se


def one_sided_p(
    values: np.ndarray, se: np.ndarray, positive: np.ndarray, dof: np.ndarray | None = None
) -> np.ndarray:
    """P(a value at least this far in its direction | the population value is 0): ``positive``
    True for ``x_over_y`` modes (the alternative is > 0), False for ``y_over_x`` (< 0);
    Student's t with ``dof`` degrees of freedom (the standard errors are estimated), else
    normal."""
    z = np.where(positive, values, -values) / se
    from scipy.special import ndtr, stdtr

    p = 1.0 - ndtr(z) if dof is None else stdtr(np.asarray(dof, dtype=np.float64), -z)
    return np.where(np.isfinite(p), p, 1.0)


def holm(p: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error over the given p-values)."""
    p = np.asarray(p, dtype=np.float64)
    order = np.argsort(p, kind="stable")
    scaled = (p.size - np.arange(p.size)) * p[order]
    adjusted = np.minimum(np.maximum.accumulate(scaled), 1.0)
    out = np.empty_like(p)
    out[order] = adjusted
    return out


def matched_stability(overlap: np.ndarray, n_modes: int) -> np.ndarray:
    """Member stability of each mode of the whole fit, between 0 and 1.

    ``overlap`` (3, c, c): ``sum_i min(p_i, q_i)`` for the squared entries of two unit
    directions over all n samples (``p_i = v_i^2``, each summing to 1): the whole fit's modes
    against half A's directions, against half B's, and A's against B's. Mode j is matched in
    each half to the direction of the same sign with the largest overlap (a half's modes can
    come in another order: near-equal eigenvalues swap), and its stability is the weighted
    Jaccard of the two matched half directions, fitted on disjoint samples:
    ``sum min / sum max = s / (2 - s)``.
    """
    overlap = np.clip(np.asarray(overlap, dtype=np.float64), 0.0, 1.0)
    c = overlap.shape[1]
    out = np.empty(c)
    for j in range(c):
        start = 0 if j < n_modes else n_modes
        block = slice(start, start + n_modes)
        a = start + int(np.argmax(overlap[0, j, block]))
        b = start + int(np.argmax(overlap[1, j, block]))
        out[j] = overlap[2, a, b] / (2.0 - overlap[2, a, b])
    return out


def near_ties(eigenvalues: np.ndarray, se: np.ndarray, n_modes: int, z: float) -> np.ndarray:
    """True where a mode's eigenvalue is within ``z`` of its own standard errors of a
    neighbour's in the same direction (near-tied modes swap members between samples)."""
    lam = np.asarray(eigenvalues, dtype=np.float64)
    out = np.zeros(lam.size, dtype=bool)
    for block in (np.arange(n_modes), np.arange(n_modes, 2 * n_modes)):
        for i, j in zip(block[:-1], block[1:], strict=True):
            gap = abs(lam[i] - lam[j])
            out[i] |= gap < z * se[i]
            out[j] |= gap < z * se[j]
    return out
