"""An in-memory fit with its uncertainty: :func:`fit_assessed` runs the two cross-fitting passes
(:mod:`speclens.spec.crossfit`) over arrays, for ``SPEC(uncertainty=True).fit``; the compare
flow runs the same passes as Dask map-reduces."""

from __future__ import annotations

import numpy as np

from speclens.spec.crossfit import (
    DRAW2_OFFSET,
    HalfGram,
    ScorePass,
    Uncertainty,
    assess,
    groups_of,
    half_counts,
    mass_norms,
)
from speclens.spec.eigen import score_weights, state_modes
from speclens.spec.features import make_feature_map
from speclens.spec.gram import GramAccumulator, GramState, merge_states
from speclens.spec.rff_error import rff_error
from speclens.spec.scores import extremes, signs_from_extremes

#: Lanczos residual of the half fits: their directions differ from the whole's by sampling
#: noise of order 1/sqrt(n); at 1e-8 the eigenpairs agree with machine precision's to 1e-15
#: (35% fewer products at m = 4,000)
HALF_TOL = 1e-8


def half_weights(state: GramState, eta: float, n_modes: int, solver: str, seed) -> np.ndarray:
    """The score weights (m x 2 n_modes) of the modes of one half's Gram."""
    modes = state_modes(state, eta, n_modes, solver, seed, spectrum=False, tol=HALF_TOL)
    return score_weights(modes.directions, modes.eigenvalues, state.m_x, eta, state.count)


def second_draw(feature_map, seed: int):
    """A feature map of the same kernel and bandwidth with independent frequencies."""
    sigma = getattr(feature_map, "sigma", None)
    width = getattr(feature_map, "rff_dim", 1)
    fresh = make_feature_map(feature_map.kernel, sigma, width, int(seed) + DRAW2_OFFSET)
    return fresh.fit(feature_map.n_features_in_)


def check_halves(groups: np.ndarray, n_modes: int) -> None:
    """Each half must be able to carry 2 x n_modes modes."""
    a, b = half_counts(groups)
    if min(a, b) <= 2 * n_modes:
        raise ValueError(
            f"the held-out halves have {a} and {b} samples, and each needs more than "
            f"2 x n_modes = {2 * n_modes}; lower n_modes or compare more samples."
        )


def fit_assessed(spec, X, Y, keys=None) -> Uncertainty:
    """Fit ``spec`` on X, Y through the halves, then score every row with the whole fit and
    both half fits; sets the estimator's fitted attributes and returns the uncertainty."""
    keys = np.arange(X.shape[0]) if keys is None else np.asarray(keys)
    groups = groups_of(keys, spec.random_state)
    check_halves(groups, spec.n_modes)
    spec._start(X, Y)
    halves = HalfGram(spec._new_accumulator).update(X, Y, groups).states()
    spec.solve(merge_states(*halves), spec.feature_x_, spec.feature_y_)
    weights_a, weights_b = (
        half_weights(h, spec.eta, spec.n_modes, spec.solver, spec.random_state) for h in halves
    )
    scorer2 = GramAccumulator(
        second_draw(spec.feature_x_, spec.random_state),
        second_draw(spec.feature_y_, spec.random_state),
        spec.dtype,
        spec.accumulator_.backend,
        spec.accumulator_.device,
        spec.chunk_rows,
    )
    norms = mass_norms(spec.gram_state_, np.hstack([spec.weights_, weights_a, weights_b]))
    score = ScorePass(spec.accumulator_, scorer2, spec.weights_, weights_a, weights_b, norms)
    step = spec.chunk_rows
    scores = np.vstack(
        [
            score.update(X[a : a + step], Y[a : a + step], groups[a : a + step])
            for a in range(0, X.shape[0], step)
        ]
    )
    spec.extremes_ = extremes(scores[:, : spec.weights_.shape[1]])  # the whole fit's columns
    spec.signs_ = signs_from_extremes(spec.extremes_)
    errors = rff_error(spec.directions_, spec.gram_state_.m_x, spec.feature_x_, spec.feature_y_)
    maps2 = (scorer2.feature_x, scorer2.feature_y)
    return assess(
        spec.eigenvalues_,
        score.state,
        spec.gram_state_.m_x,
        spec.eta,
        spec.n_modes,
        spec.confidence,
        errors,
        maps2,
    )
