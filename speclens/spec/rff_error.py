"""The part of a number's uncertainty due to the random Fourier features alone, with no pass
over the data and no eigensolve: an infinitesimal jackknife over the frequencies.

A Gaussian side's features come in units, one per frequency d: its cos and sin columns, X's
and Y's d-th frequencies together (they are drawn from one seed, common random numbers). The
kernels are averages over the D units, and each published number is a sum over feature
columns:

* the plug-in eigenvalue, ``lam = w^T S w = sum_j s_j w_j^2`` for its direction w in the
  Gram's basis (``S G w = lam w``); each column's term is also the derivative of lam with
  respect to that column's weight in the kernel;
* the held-out numerator, ``sum_j s_j [(sum_b g_bj)^2 - sum_b g_bj^2]`` over the held-out
  groups' sums g (:func:`speclens.spec.crossfit.heldout`).

With ``C_d`` the sum of a unit's terms, a number is ``sum_d C_d`` over D independent units,
whose variance over draws of the frequencies is estimated by ``D var(C_d)``. A side with the
exact cosine features has no units and adds no error.
"""

from __future__ import annotations

import numpy as np

from speclens.spec.eigen import side_signs


def frequency_units(feature_x, feature_y) -> tuple[np.ndarray, int]:
    """(the frequency unit of each column of ``[phi_X, phi_Y]``, -1 for exact features; D)."""
    units, D = [], 0
    for fmap in (feature_x, feature_y):
        width = fmap.n_features_out_
        if fmap.kernel == "gaussian":
            D = fmap.rff_dim
            units.append(np.tile(np.arange(D), 2))  # cos columns, then sin columns
        else:
            units.append(np.full(width, -1))
    return np.concatenate(units), D


def unit_spread(terms: np.ndarray, units: np.ndarray, D: int) -> np.ndarray:
    """Standard deviation over draws of the frequencies of ``terms.sum(axis=0)`` (terms: one
    row per feature column, one column per number), from the spread of the units' sums."""
    terms = np.asarray(terms, dtype=np.float64)
    if D < 2:
        return np.zeros(terms.shape[1])
    random = units >= 0
    sums = np.zeros((D, terms.shape[1]))
    np.add.at(sums, units[random], terms[random])
    return np.sqrt(D * sums.var(axis=0, ddof=1))


def rff_error(directions: np.ndarray, m_x: int, feature_x, feature_y) -> np.ndarray:
    """Standard deviation of each reported eigenvalue over draws of the random frequencies,
    from its directions (m x c, :attr:`~speclens.spec.eigen.Modes.directions`)."""
    w = np.asarray(directions, dtype=np.float64)
    s = side_signs(w.shape[0], m_x)
    units, D = frequency_units(feature_x, feature_y)
    return unit_spread(s[:, None] * w * w, units, D)
