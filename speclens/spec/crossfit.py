"""Cross-fitting: the two passes that gather what :mod:`speclens.spec.inference` needs, as
mergeable states (so a Dask map-reduce and an in-memory fit share one code path).

Every sample belongs to one of ``2 * groups`` groups by a seeded hash of its key (the sample
id in the pipeline, the row index in memory): groups ``0 .. groups-1`` form half A, the rest
half B.

* **Pass 1** (:class:`HalfGram`): one Gram state per half; their sum is the whole sample's Gram
  (the plug-in), so the pass costs what the plain accumulation costs.
* **Solve**: the whole Gram gives the published modes; each half's gives a direction per mode
  (``weights`` A and B).
* **Pass 2** (:class:`ScorePass`): every sample is scored by the whole fit (its eigenvector
  entries, whose fourth powers give the plug-in standard error) and by both half fits (the
  overlaps of the three fits' squared scores give the stability: each half's direction matched
  to the mode, then compared with the other half's); each held-out sample also adds ``psi2 * f`` to its group's
  sum, with ``f`` the direction of the *other* half and ``psi2`` the features of an independent
  draw of frequencies. The group sums give the held-out Rayleigh quotients and their
  jackknife standard errors (:func:`speclens.spec.inference.heldout_ratio`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from speclens.spec.eigen import side_signs
from speclens.spec.gram import GramAccumulator, GramState, merge_states, take_rows
from speclens.spec.inference import (
    heldout_ratio,
    holm,
    matched_stability,
    near_ties,
    one_sided_p,
    pair_count,
    plugin_se,
    z_value,
)
from speclens.spec.rff_error import frequency_units, unit_spread

#: groups per half: the jackknife of the held-out value leaves one out at a time
GROUPS = 16
#: the second, independent draw of frequencies uses the seed plus this offset
DRAW2_OFFSET = 2**32


def groups_of(keys, seed: int, groups: int = GROUPS) -> np.ndarray:
    """The group (``0 .. 2*groups-1``; below ``groups``: half A) of each key, by a seeded
    hash, so a sample keeps its group whatever else is in the data and in whatever order."""
    out = np.empty(len(keys), dtype=np.int16)
    salt = f"{int(seed)}\x00".encode()
    for i, key in enumerate(keys):
        digest = hashlib.blake2b(salt + str(key).encode(), digest_size=8).digest()
        out[i] = int.from_bytes(digest, "little") % (2 * groups)
    return out


def half_counts(groups: np.ndarray, n_groups: int = GROUPS) -> tuple[int, int]:
    """Samples in half A and in half B."""
    a = int((np.asarray(groups) < n_groups).sum())
    return a, len(groups) - a


class HalfGram:
    """Pass 1: a Gram accumulator per half (same feature maps, same layout)."""

    def __init__(self, make_accumulator, n_groups: int = GROUPS):
        self.halves = (make_accumulator(), make_accumulator())
        self.n_groups = n_groups

    def update(self, x, y, groups, proj=(None, None)) -> HalfGram:
        """Fold a block (``proj``: each side's ``x @ W`` when already computed)."""
        in_a = np.asarray(groups) < self.n_groups
        for acc, rows in zip(self.halves, (in_a, ~in_a), strict=True):
            if rows.any():
                acc.update(x[rows], y[rows], take_rows(proj, rows))
        return self

    def states(self, copy: bool = True) -> tuple[GramState, GramState]:
        return self.halves[0].state(copy), self.halves[1].state(copy)


def merge_halves(*pairs: tuple[GramState, GramState]) -> tuple[GramState, GramState]:
    """Merge per-half states (e.g. of several blocks) half by half."""
    return merge_states(*(p[0] for p in pairs)), merge_states(*(p[1] for p in pairs))


@dataclass
class ScoreState:
    """What pass 2 gathers: ``sum_v4`` (c,) of the whole fit's eigenvector entries over ``n``
    samples; per group ``g`` (2G, m, c) sums of ``psi2 * f`` of the other half's direction,
    ``sq`` (2G, c) sums of ``f^2`` and ``count`` (2G,) samples; ``overlap`` (3, c, c) sums of
    ``min(p_i, q_i)`` of the unit-sum squared scores of the whole fit against half A's, the
    whole against half B's, and A's against B's (:func:`~speclens.spec.inference.matched_stability`)."""

    sum_v4: np.ndarray
    n: int
    g: np.ndarray
    sq: np.ndarray
    count: np.ndarray
    overlap: np.ndarray

    def __add__(self, other: ScoreState) -> ScoreState:
        return ScoreState(
            self.sum_v4 + other.sum_v4,
            self.n + other.n,
            self.g + other.g,
            self.sq + other.sq,
            self.count + other.count,
            self.overlap + other.overlap,
        )


def mass_norms(state, weights: np.ndarray) -> np.ndarray:
    """``sum_i score_i^2`` of each score-weight column over all the accumulated rows, read off
    their Gram state (``w^T (sum_i phi_i^T phi_i) w``, :meth:`GramState.masses`): dividing by
    it makes each fit's squared scores a distribution over the samples within the one scoring
    pass."""
    return state.masses(weights)


class ScorePass:
    """Pass 2 over blocks of rows: ``update(x, y, groups)`` returns the block's scores
    (columns: the whole fit's c modes, then half A's c directions, then half B's) and folds the
    block into :attr:`state`."""

    def __init__(
        self,
        scorer: GramAccumulator,
        scorer2: GramAccumulator,
        weights,
        weights_a,
        weights_b,
        norms: np.ndarray,
        n_groups: int = GROUPS,
    ):
        self.scorer, self.scorer2 = scorer, scorer2
        self.weights = np.hstack([weights, weights_a, weights_b])
        # a direction without weight (a zero mode) puts no mass anywhere
        self.inv_norms = np.where(norms > 0, 1.0 / np.where(norms > 0, norms, 1.0), 0.0)
        self.c, self.n_groups = weights.shape[1], n_groups
        m, G2, c = scorer2.m, 2 * n_groups, self.c
        self.state = ScoreState(
            np.zeros(c),
            0,
            np.zeros((G2, m, c)),
            np.zeros((G2, c)),
            np.zeros(G2, dtype=np.int64),
            np.zeros((3, c, c)),
        )

    def _phi(self, acc: GramAccumulator, x, y, proj=(None, None)) -> np.ndarray:
        """The block's features as numpy, in the accumulator's dtype."""
        phi = acc.features(acc._as_backend(x), acc._as_backend(y), proj=proj)
        return phi if isinstance(phi, np.ndarray) else phi.detach().cpu().numpy()

    def update(self, x, y, groups, proj=((None, None), (None, None))) -> np.ndarray:
        """Score a block and fold it in; ``proj``: each side's ``x @ W`` for the whole fit's
        features and for the second draw's, when already computed."""
        groups = np.asarray(groups)
        scores = self._phi(self.scorer, x, y, proj[0]).astype(np.float64) @ self.weights
        c, s = self.c, self.state
        s.sum_v4 += (scores[:, :c] ** 4).sum(axis=0)
        s.n += scores.shape[0]
        mass = scores**2 * self.inv_norms
        whole, a, b = mass[:, :c], mass[:, c : 2 * c], mass[:, 2 * c :]
        for k, (p, q) in enumerate(((whole, a), (whole, b), (a, b))):
            s.overlap[k] += np.minimum(p[:, :, None], q[:, None, :]).sum(axis=0)
        # the second draw's features of the rows sorted by group: each group is one slice;
        # its products in the features' dtype (as the Gram's block products are: a group has
        # about n / 32 rows, the Gram's blocks 8,192), summed in float64
        order = np.argsort(groups, kind="stable")
        phi2 = self._phi(self.scorer2, x[order], y[order], take_rows(proj[1], order))
        bounds = np.searchsorted(groups[order], np.arange(2 * self.n_groups + 1))
        for gid in range(2 * self.n_groups):
            lo, hi = bounds[gid], bounds[gid + 1]
            if lo == hi:
                continue
            # a sample of half A is held out from half B's fit, and the reverse
            other = slice(2 * c, 3 * c) if gid < self.n_groups else slice(c, 2 * c)
            f = scores[order[lo:hi], other]
            s.g[gid] += phi2[lo:hi].T @ f.astype(phi2.dtype)
            s.sq[gid] += (f * f).sum(axis=0)
            s.count[gid] += int(hi - lo)
        return scores


@dataclass
class Uncertainty:
    """Per mode (in the order of the eigenvalues): plug-in standard error, held-out value, its
    sampling standard error and its random-feature spread, the plug-in's random-feature error,
    one-sided and Holm-adjusted p-values (from the held-out value against both of its errors),
    member stability and the near-tie flag; ``confidence`` of the (sampling) intervals."""

    confidence: float
    eigenvalue_se: np.ndarray
    heldout: np.ndarray
    heldout_se: np.ndarray
    heldout_rff: np.ndarray
    rff_error: np.ndarray
    p_value: np.ndarray
    p_adjusted: np.ndarray
    stability: np.ndarray
    near_tie: np.ndarray

    @property
    def z(self) -> float:
        return z_value(self.confidence)

    def interval(self, values: np.ndarray, se: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return values - self.z * se, values + self.z * se


def _quotients(state: ScoreState, weight: np.ndarray, n_groups: int):
    """The two halves' held-out quotients (half A's direction on B's samples, then the reverse)
    with features weighted by ``weight`` (the sign and scale of each feature column), with
    their jackknife standard errors."""
    out = []
    for part in _held_out_parts(n_groups):
        g = state.g[part].transpose(2, 0, 1)  # (c, G, m): one batched product per mode
        cross = ((g * weight) @ g.transpose(0, 2, 1)).transpose(1, 2, 0)
        out.append(heldout_ratio(cross, state.count[part], state.sq[part]))
    return out


def _held_out_parts(n_groups: int) -> tuple[slice, slice]:
    """The groups held out from half A's fit (half B's), then those held out from B's."""
    return slice(n_groups, 2 * n_groups), slice(0, n_groups)


def _column_terms(state: ScoreState, weight: np.ndarray, n_groups: int) -> np.ndarray:
    """(m, c): each feature column's term of the mean of the two held-out quotients (the
    numerator ``sum_{b != b'} g_b^T W g_b'`` is a sum over columns; the denominators are not
    random features)."""
    terms = []
    for part in _held_out_parts(n_groups):
        g, counts = state.g[part], state.count[part]
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = 1.0 / (pair_count(counts) * (state.sq[part].sum(axis=0) / counts.sum()))
        column = weight[:, None] * (g.sum(axis=0) ** 2 - (g * g).sum(axis=0))
        terms.append(column * scale)
    return (terms[0] + terms[1]) / 2.0


def heldout(
    state: ScoreState,
    m_x: int,
    eta: float,
    feature_x2=None,
    feature_y2=None,
    n_groups: int = GROUPS,
) -> tuple:
    """(value, se, rff, dof) per mode: the mean of the two halves' held-out Rayleigh quotients,
    its sampling standard error (jackknife over groups), the part of its spread due to the
    evaluation's random features (an infinitesimal jackknife over the second draw's
    frequencies, given its maps) and the degrees of freedom of their combination."""
    sign = side_signs(state.g.shape[1], m_x, -eta)
    (ab, se_ab), (ba, se_ba) = _quotients(state, sign, n_groups)
    diagonal = (1.0 - eta) / max(state.n, 1)  # the i = i terms the pairs leave out
    value = (ab + ba) / 2.0 + diagonal
    se = np.sqrt(se_ab**2 + se_ba**2) / 2.0
    rff, D = np.zeros_like(value), 0
    if feature_x2 is not None:
        units, D = frequency_units(feature_x2, feature_y2)
        rff = unit_spread(_column_terms(state, sign, n_groups), units, D)
    return value, se, rff, _dof(se, rff, 2 * (n_groups - 1), max(D - 1, 0))


def _dof(se, rff, dof_se: int, dof_rff: int) -> np.ndarray:
    """Welch-Satterthwaite degrees of freedom of ``sqrt(se^2 + rff^2)``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = se**4 / dof_se + (rff**4 / dof_rff if dof_rff else 0.0)
        dof = (se**2 + rff**2) ** 2 / terms
    return np.where(np.isfinite(dof), dof, float(dof_se))


def assess(
    eigenvalues,
    state: ScoreState,
    m_x: int,
    eta: float,
    n_modes: int,
    confidence: float,
    rff_error,
    maps2: tuple = (None, None),
) -> Uncertainty:
    """Every per-mode number of :class:`Uncertainty` from the two passes' results (``maps2``:
    the second draw's feature maps, whose random-feature spread joins the sampling error in
    the p-values)."""
    lam = np.asarray(eigenvalues, dtype=np.float64)
    se = plugin_se(lam, state.sum_v4, state.n)
    value, value_se, value_rff, dof = heldout(state, m_x, eta, *maps2)
    total = np.sqrt(value_se**2 + value_rff**2)
    dead = ~np.isfinite(value) | ~np.isfinite(total) | (total <= 0)
    value = np.where(dead, 0.0, value)
    value_se, value_rff = np.where(dead, 0.0, value_se), np.where(dead, 0.0, value_rff)
    positive = np.arange(lam.size) < n_modes
    p = np.where(dead, 1.0, one_sided_p(value, np.where(dead, 1.0, total), positive, dof))
    stability = matched_stability(state.overlap, n_modes)
    return Uncertainty(
        confidence=float(confidence),
        eigenvalue_se=se,
        heldout=value,
        heldout_se=value_se,
        heldout_rff=value_rff,
        rff_error=np.asarray(rff_error, dtype=np.float64),
        p_value=p,
        p_adjusted=holm(p),
        stability=stability,
        near_tie=near_ties(lam, se, n_modes, z_value(confidence)),
    )
