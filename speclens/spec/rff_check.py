"""How far the reported eigenvalues are from the exact kernel's, because of the random features.

With ``D`` random frequencies, an eigenvalue of the random-feature kernel is the exact one plus
a systematic shift (the top of a spectrum is pushed outwards by the features' noise, measured
to halve when ``D`` doubles: a ``1/D`` law) plus a random part (standard deviation ``~1/sqrt
D``). Both are estimated from the features a run already has, with no pass over the data:

* split the ``D`` frequency units (a unit: frequency d's cos and sin columns, X's and Y's
  together) at random into two halves, ``splits`` times; each half is a feature map with
  ``D/2`` frequencies whose Gram is a sub-block of the accumulated one (rescaled by 2);
* the halves' eigenvalues average ``lam(D/2)``; under the ``1/D`` law the shift of ``lam(D)``
  is ``lam(D/2) - lam(D)`` (``bias``), and the spread of the halves, divided by sqrt 2, is the
  random part at ``D`` (``spread``); ``error = sqrt(bias^2 + spread^2)``.

:func:`relative_error` turns the per-mode errors into one number per run: the error of each
direction's leading eigenvalue relative to its size; :func:`suggest_rff_dim` predicts the
feature count that brings it under a target with the slower ``1/sqrt D`` decay (enough under
either law). The same estimate runs on a row sample's features in the dual (n x n) form for
``rff_dim='auto'`` (:func:`choose_rff_dim`), and :func:`dual_ends` gives the random-feature
eigenvalues of a row sample beside :func:`~speclens.spec.exact.exact_ends`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from speclens.spec.eigen import side_signs, solve_modes, symmetric_ends
from speclens.spec.gram import GramState
from speclens.spec.rff_error import frequency_units

#: A leading eigenvalue smaller than this fraction of the larger one is measured against it.
RELATIVE_FLOOR = 0.1
#: Warn when the estimated error exceeds this fraction of the leading eigenvalues.
WARN_RELATIVE_ERROR = 0.1
#: Lanczos residual of the halves' solves: each Ritz value is within this fraction of an
#: eigenvalue (in practice within its square), far below the shifts the check measures.
CHECK_TOL = 1e-6


@dataclass(frozen=True)
class RFFCheck:
    """Per mode: the eigenvalues at D, the halves' mean, and the estimated ``bias`` (signed:
    ``lam(D) - lam(exact)``), ``spread`` (standard deviation over draws) and ``error``."""

    eigenvalues: np.ndarray
    half_mean: np.ndarray
    bias: np.ndarray
    spread: np.ndarray

    @property
    def error(self) -> np.ndarray:
        return np.hypot(self.bias, self.spread)


def unit_halves(D: int, splits: int, seed: int) -> list[np.ndarray]:
    """``2 * splits`` sets of units: each split a seeded random partition into two halves."""
    rng = np.random.default_rng([seed, 0x5EC])
    out = []
    for _ in range(splits):
        perm = rng.permutation(D)
        out += [np.sort(perm[: D // 2]), np.sort(perm[D // 2 :])]
    return out


def keep_units(col_units: np.ndarray, D: int, units: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(columns kept, each column's feature scale) for the feature map on ``units`` only: an
    exact column is always kept with scale 1, a random one rescaled to ``1/sqrt(len(units))``."""
    chosen = np.zeros(D, dtype=bool)
    chosen[units] = True
    keep = np.flatnonzero((col_units < 0) | chosen[np.maximum(col_units, 0)])
    scale = np.where(col_units[keep] < 0, 1.0, math.sqrt(D / len(units)))
    return keep, scale


def check_from_solver(
    solve_units: Callable[[np.ndarray], np.ndarray],
    eigenvalues: np.ndarray,
    D: int,
    splits: int = 2,
    seed: int = 0,
) -> RFFCheck:
    """The estimate from ``solve_units(units) -> eigenvalues`` (same modes, same order)."""
    lam = np.asarray(eigenvalues, dtype=np.float64)
    if D < 4:  # no random features (cosine on both sides), or too few to halve
        zero = np.zeros_like(lam)
        return RFFCheck(lam, lam.copy(), zero, zero)
    halves = np.stack([solve_units(u) for u in unit_halves(D, splits, seed)])
    mean = halves.mean(axis=0)
    return RFFCheck(lam, mean, mean - lam, halves.std(axis=0, ddof=1) / math.sqrt(2.0))


def gram_check(
    state: GramState,
    feature_x,
    feature_y,
    eta: float,
    eigenvalues: np.ndarray,
    n_modes: int,
    seed: int = 0,
    splits: int = 2,
    factor: np.ndarray | None = None,
) -> RFFCheck:
    """The estimate for a run's eigenvalues from its accumulated Gram state (sub-blocks).

    ``factor``: the pivoted factor ``B`` (r x m, ``B^T B = G``) of a rank-deficient G (fewer
    samples than features: ``SPEC.factor_``). Each half's G is then ``B_h^T B_h`` with
    ``B_h`` B's columns of the half, scaled, and its eigenvalues those of the r x r
    ``B_h S B_h^T``: no sub-block to gather, no factorization (measured at 500 rows and
    m = 4,000: the check from 1.4 s to 0.33 s; at m = 8,000 from 3.7 s to 1.0 s)."""
    col_units, D = frequency_units(feature_x, feature_y)
    if state.count < 1:
        raise ValueError("the Gram state has seen no rows; accumulate at least one chunk.")
    # G = D (sum / n) D with D = diag(1, sqrt(eta)): each sub-block is read off the sum, so the
    # whole G is never formed
    weight = side_signs(len(col_units), state.m_x, math.sqrt(eta)) / math.sqrt(state.count)
    summed = None  # the sum, formed once (from a state's rows) when a half is read off it

    def solve(units):
        nonlocal summed
        keep, scale = keep_units(col_units, D, units)
        if factor is not None and factor.shape[0] < len(keep):
            Bh = factor[:, keep] * scale
            m_x = int((keep < state.m_x).sum())
            T = (Bh * side_signs(len(keep), m_x)) @ Bh.T
            return symmetric_ends((T + T.T) / 2.0, n_modes, seed)
        if summed is None:
            summed = state.summed()
        sub = summed[np.ix_(keep, keep)]
        c = scale * weight[keep]
        sub *= c[:, None]
        sub *= c
        m_x = int((keep < state.m_x).sum())
        modes = solve_modes(sub, m_x, n_modes, "auto", seed, state.count, False, CHECK_TOL)
        return modes.eigenvalues

    return check_from_solver(solve, eigenvalues, D, splits, seed)


def dual_ends(phi: np.ndarray, m_x: int, eta: float, n_modes: int, seed: int = 0) -> np.ndarray:
    """The run's eigenvalues on a row sample from its features ``phi = [phi_X, phi_Y]`` (n x m):
    those of the n x n ``(Phi_X Phi_X^T - eta Phi_Y Phi_Y^T) / n``."""
    phi = np.asarray(phi, dtype=np.float64)
    s = side_signs(phi.shape[1], m_x, -eta)
    K = (phi * s) @ phi.T / phi.shape[0]
    return symmetric_ends((K + K.T) / 2.0, n_modes, seed)


def dual_check(
    phi: np.ndarray,
    feature_x,
    feature_y,
    eta: float,
    n_modes: int,
    seed: int = 0,
    splits: int = 2,
) -> RFFCheck:
    """The estimate on a row sample's features (dual form: for n below the feature width)."""
    col_units, D = frequency_units(feature_x, feature_y)
    m_x = feature_x.n_features_out_
    lam = dual_ends(phi, m_x, eta, n_modes, seed)

    def solve(units):
        keep, scale = keep_units(col_units, D, units)
        return dual_ends(phi[:, keep] * scale, int((keep < m_x).sum()), eta, n_modes, seed)

    return check_from_solver(solve, lam, D, splits, seed)


def relative_error(check: RFFCheck, n_modes: int) -> float:
    """The estimated error of each direction's leading eigenvalue (modes 0 and ``n_modes``)
    relative to its size, the larger of the two; a leading eigenvalue under
    ``RELATIVE_FLOOR`` of the other is measured against that fraction of it (a direction with
    nothing to report does not ask for more features). 0 when every eigenvalue is 0."""
    lead = np.array([0, n_modes])
    size = np.abs(check.eigenvalues[lead])
    if size.max() <= 0:
        return 0.0
    size = np.maximum(size, RELATIVE_FLOOR * size.max())
    return float((check.error[lead] / size).max())


def suggest_rff_dim(rff_dim: int, relative: float, target: float = WARN_RELATIVE_ERROR) -> int:
    """The feature count that the ``1/sqrt(D)`` decay predicts brings ``relative`` (measured at
    ``rff_dim``) under ``target``, rounded up to a multiple of 250."""
    need = rff_dim * (relative / target) ** 2
    return int(max(rff_dim, math.ceil(need / 250.0) * 250))


@dataclass(frozen=True)
class AutoChoice:
    """``rff_dim='auto'``: the count chosen and, per count tried, the estimated relative error."""

    rff_dim: int
    trail: tuple[tuple[int, float], ...]
    reached: bool


def choose_rff_dim(
    features: Callable[[int], tuple],
    eta: float,
    n_modes: int,
    start: int,
    cap: int,
    target: float,
    seed: int = 0,
) -> AutoChoice:
    """Double the feature count from ``start`` until the estimated relative error of the
    leading eigenvalues on a row sample is under ``target``, or ``cap`` is reached.
    ``features(D) -> (phi, feature_x, feature_y)`` evaluates a sample's features at D."""
    trail, D = [], start
    while True:
        phi, fx, fy = features(D)
        rel = relative_error(dual_check(phi, fx, fy, eta, n_modes, seed), n_modes)
        trail.append((D, rel))
        if rel <= target or D >= cap:
            return AutoChoice(D, tuple(trail), rel <= target)
        D = min(2 * D, cap)
