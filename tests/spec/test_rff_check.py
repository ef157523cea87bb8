"""The random-feature check: halves of the frequencies are exact sub-blocks of the Gram, the
Gram and dual forms agree, the estimate tracks the actual distance to the exact kernel's
eigenvalues and falls as the feature count grows, and auto stops at the first count under
its target."""

from __future__ import annotations

import numpy as np
import pytest

from speclens.spec import SPEC, GaussianRFF, GramAccumulator, exact_modes, planted_pair
from speclens.spec.exact import exact_ends
from speclens.spec.features import Cosine
from speclens.spec.rff_check import (
    choose_rff_dim,
    dual_check,
    gram_check,
    keep_units,
    relative_error,
    suggest_rff_dim,
    unit_halves,
)
from speclens.spec.rff_error import frequency_units

P = planted_pair(n=300, dx=8, dy=12, group_size=30, tightness=0.1, random_state=3)


def _fit(D: int, seed: int = 0, scale: float = 0.5) -> SPEC:
    return SPEC(rff_dim=D, n_modes=2, sigma_scale=scale, random_state=seed, dtype="float64").fit(
        P.X, P.Y
    )


def test_a_half_of_the_units_is_a_sub_block_of_the_gram():
    """The Gram of the feature map on half the frequencies, computed from scratch, equals the
    rescaled sub-block that the check solves."""
    spec = _fit(64)
    fx, fy = spec.feature_x_, spec.feature_y_
    units = unit_halves(64, 1, seed=5)[0]
    keep, scale = keep_units(frequency_units(fx, fy)[0], 64, units)
    half = []
    for f in (fx, fy):
        g = GaussianRFF(f.sigma, len(units)).fit(f.n_features_in_)
        g.frequencies_ = f.frequencies_[:, units]
        half.append(g)
    direct = GramAccumulator(*half, dtype="float64").update(P.X, P.Y).state()
    sub = spec.gram_state_.gram_sum[np.ix_(keep, keep)] * np.outer(scale, scale)
    np.testing.assert_allclose(sub, direct.gram_sum, rtol=0, atol=1e-9 * P.X.shape[0])


def test_gram_and_dual_forms_give_the_same_estimate():
    spec = _fit(100)
    g = gram_check(spec.gram_state_, spec.feature_x_, spec.feature_y_, 1.0, spec.eigenvalues_, 2)
    phi = np.hstack([spec.feature_x_.transform(P.X), spec.feature_y_.transform(P.Y)])
    d = dual_check(phi, spec.feature_x_, spec.feature_y_, 1.0, 2)
    np.testing.assert_allclose(d.eigenvalues, spec.eigenvalues_, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(d.half_mean, g.half_mean, rtol=1e-6, atol=1e-10)
    np.testing.assert_allclose(d.spread, g.spread, rtol=1e-5, atol=1e-10)


@pytest.mark.parametrize("eta", [1.0, 1.7])
def test_a_low_rank_grams_halves_from_its_factor_equal_the_sub_blocks(eta):
    """300 rows, 4 x 400 features: G has rank 300, its pivoted factor B gives each half's
    eigenvalues from B's columns (r x r), the same as factoring each sub-block; a full-rank
    Gram has no factor and keeps the sub-blocks."""
    spec = SPEC(rff_dim=400, n_modes=3, eta=eta, dtype="float64").fit(P.X, P.Y)
    assert spec.factorization_ == "pivoted-cholesky" and spec.factor_.shape[0] < 800
    args = (spec.gram_state_, spec.feature_x_, spec.feature_y_, eta, spec.eigenvalues_, 3)
    plain, fast = gram_check(*args), gram_check(*args, factor=spec.factor_)
    scale = np.abs(plain.half_mean).max()
    np.testing.assert_allclose(fast.half_mean, plain.half_mean, rtol=0, atol=1e-9 * scale)
    np.testing.assert_allclose(fast.spread, plain.spread, rtol=0, atol=1e-9 * scale)
    assert _fit(64).factor_ is None  # 300 rows, 256 features: full rank


def test_the_estimate_tracks_the_actual_error_and_falls_with_more_features():
    """Over seeds: the estimated relative error falls as D grows (about 1/D for the shift),
    and it is of the size of the actual distance to the exact eigenvalues."""
    exact, _ = exact_modes(P.X, P.Y, sigma_scale=0.5)
    lead = np.array([exact[0], exact[-1]])
    estimated, actual = {}, {}
    for D in (50, 400):
        est, act = [], []
        for seed in range(6):
            spec = _fit(D, seed)
            c = gram_check(
                spec.gram_state_, spec.feature_x_, spec.feature_y_, 1.0, spec.eigenvalues_, 2
            )
            est.append(relative_error(c, 2))
            act.append(np.max(np.abs(spec.eigenvalues_[[0, 2]] - lead) / np.abs(lead)))
        estimated[D], actual[D] = np.mean(est), np.mean(act)
    assert estimated[400] < estimated[50] / 3
    assert actual[400] < actual[50]
    for D in (50, 400):  # the same order of magnitude as what it estimates
        assert actual[D] / 4 <= estimated[D] <= 4 * actual[D], (estimated, actual)


def test_exact_features_have_no_random_feature_error():
    fx, fy = Cosine().fit(8), Cosine().fit(12)
    state = GramAccumulator(fx, fy, dtype="float64").update(P.X, P.Y).state()
    spec = SPEC(kernel_x="cosine", kernel_y="cosine", n_modes=2).solve(state)
    c = gram_check(state, fx, fy, 1.0, spec.eigenvalues_, 2)
    assert relative_error(c, 2) == 0.0 and not c.error.any()


def test_the_suggestion_follows_the_slower_decay():
    assert suggest_rff_dim(1000, 0.2, 0.1) == 4000  # (0.2 / 0.1)^2 times the features
    assert suggest_rff_dim(1000, 0.12, 0.1) == 1500  # 1440, rounded up to 250s
    assert suggest_rff_dim(1000, 0.05, 0.1) == 1000  # already under: keep


def test_auto_doubles_until_the_target_and_stops_at_the_cap():
    spec = _fit(8)

    def features(D):
        fx = GaussianRFF(spec.sigma_x_, D).fit(8)
        fy = GaussianRFF(spec.sigma_y_, D).fit(12)
        return np.hstack([fx.transform(P.X), fy.transform(P.Y)]), fx, fy

    loose = choose_rff_dim(features, 1.0, 2, start=50, cap=800, target=0.5)
    tight = choose_rff_dim(features, 1.0, 2, start=50, cap=800, target=1e-6)
    assert tight.rff_dim == 800 and not tight.reached
    assert [D for D, _ in tight.trail] == [50, 100, 200, 400, 800]
    assert loose.reached and loose.trail[-1][1] <= 0.5
    assert all(rel > 0.5 for _, rel in loose.trail[:-1])  # it stopped at the first one under


def test_exact_ends_are_the_ends_of_the_full_spectrum():
    full, _ = exact_modes(P.X, P.Y, sigma_scale=0.5)
    ends = exact_ends(P.X, P.Y, 3, sigma_x=_fit(8).sigma_x_, sigma_y=_fit(8).sigma_y_)
    np.testing.assert_allclose(ends, np.r_[full[:3], full[::-1][:3]], rtol=1e-9, atol=1e-12)
    with pytest.raises(ValueError, match="refuses n=300 > 100.*subsample"):
        exact_ends(P.X, P.Y, 3, sigma_x=1.0, sigma_y=1.0, max_samples=100)


def test_a_sweeps_maps_share_one_projection():
    """Maps of one seed at other bandwidths reuse the first's ``x @ W``, rescaled; maps of
    another seed, or frequencies set by hand, compute their own."""
    from speclens.spec.features import shared_projections

    x = P.X.astype(np.float32)
    maps = [GaussianRFF(s, 50, 7).fit(8) for s in (1.0, 2.0, 0.5)] + [
        GaussianRFF(1.0, 50, 8).fit(8)
    ]
    odd = GaussianRFF(2.0, 50, 7).fit(8)
    odd.frequencies_ = np.random.default_rng(1).standard_normal((8, 50))
    proj = shared_projections(x, [*maps, odd])
    assert proj[3] is not None and proj[4] is None  # another seed: its own product; by hand: none
    for f, p in zip(maps, proj, strict=False):
        direct = x @ f.frequencies_.astype(np.float32)
        np.testing.assert_allclose(p, direct, rtol=1e-5, atol=1e-5 * np.abs(direct).max())
        np.testing.assert_allclose(f.transform(x, proj=p), f.transform(x), atol=1e-5)


@pytest.mark.parametrize("eta", [1.0, 1.7])
def test_the_halves_are_the_rescaled_sub_blocks_of_the_gram_within_the_check_tolerance(eta):
    """The check reads each half's Gram off the accumulated sum (never forming the whole G):
    its eigenvalues are those of the explicit sub-block of ``gram_from_state`` rescaled, each
    within ``CHECK_TOL`` of its magnitude (a Ritz value lies within its residual of an
    eigenvalue)."""
    from speclens.spec.eigen import solve_modes
    from speclens.spec.gram import gram_from_state
    from speclens.spec.rff_check import CHECK_TOL

    spec = SPEC(rff_dim=150, n_modes=2, eta=eta, dtype="float64").fit(P.X, P.Y)
    state, fx, fy = spec.gram_state_, spec.feature_x_, spec.feature_y_
    check = gram_check(state, fx, fy, eta, spec.eigenvalues_, 2, seed=4)
    units_of, D = frequency_units(fx, fy)
    G = gram_from_state(state, eta)
    halves = []
    for units in unit_halves(D, 2, 4):
        keep, scale = keep_units(units_of, D, units)
        sub = G[np.ix_(keep, keep)] * np.outer(scale, scale)
        m_x = int((keep < state.m_x).sum())
        halves.append(solve_modes(sub, m_x, 2, "eigh", n_samples=state.count).eigenvalues)
    exact = np.mean(halves, axis=0)
    bound = CHECK_TOL * np.abs(np.array(halves)).max(axis=0) + 1e-13
    assert np.all(np.abs(check.half_mean - exact) <= bound)
