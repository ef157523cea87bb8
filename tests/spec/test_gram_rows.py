"""A Gram state that keeps its rows (fewer rows than features): the same Gram, the same modes,
the same checks as the m x m sum it stands for, and the fold into the sum once the count
reaches the feature width."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from speclens.spec import SPEC, GaussianRFF, GramAccumulator, GramState, merge_states
from speclens.spec.assessment import half_weights
from speclens.spec.crossfit import mass_norms
from speclens.spec.rff_check import gram_check

DX, DY, RFF = 6, 4, 20  # m = 2 * 20 + 2 * 20 = 80 features


def _maps(seed=0):
    return GaussianRFF(1.2, RFF, seed).fit(DX), GaussianRFF(0.9, RFF, seed + 1).fit(DY)


def _data(n, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, DX))
    y = np.tanh(x[:, :DY]) + 0.3 * rng.standard_normal((n, DY))
    return x, y


def _states(n, chunks=1, seed=0, dtype="float64"):
    """(rows-keeping state, plain state) of the same rows, accumulated in ``chunks`` updates."""
    fx, fy = _maps()
    x, y = _data(n, seed)
    kept = GramAccumulator(fx, fy, dtype=dtype, keep_rows=True)
    plain = GramAccumulator(fx, fy, dtype=dtype)
    for part in np.array_split(np.arange(n), chunks):
        kept.update(x[part], y[part])
        plain.update(x[part], y[part])
    return kept.state(), plain.state(), (fx, fy)


def _close(a, b, scale):
    """Equal to the rounding of sums of ~n products of unit-size features (float64)."""
    np.testing.assert_allclose(a, b, atol=1e-12 * max(scale, 1.0), rtol=0)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 79), chunks=st.integers(1, 4), seed=st.integers(0, 2**16))
def test_rows_stand_for_the_same_sum(n, chunks, seed):
    kept, plain, _ = _states(n, min(chunks, n), seed)
    assert kept.gram_sum is None and kept.rows.shape == (n, 80) and kept.count == n
    assert kept.width == plain.width == 80
    summed = kept.summed()
    np.testing.assert_array_equal(summed, summed.T)
    _close(summed, plain.gram_sum, n)
    w = np.random.default_rng(seed).standard_normal((80, 3))
    _close(mass_norms(kept, w), mass_norms(plain, w), n * 80)
    back = GramState.from_arrays(kept.to_arrays())
    np.testing.assert_array_equal(back.rows, kept.rows)
    assert back.gram_sum is None and back.count == n and back.m_x == kept.m_x


@pytest.mark.parametrize("n, chunks", [(80, 1), (100, 1), (100, 3), (300, 7)])
def test_the_rows_join_the_sum_at_the_feature_width(n, chunks):
    kept, plain, _ = _states(n, chunks)
    assert kept.rows is None and kept.gram_sum is not None
    _close(kept.gram_sum, plain.gram_sum, n)


@pytest.mark.parametrize("sizes", [(10, 20), (30, 49), (30, 50), (60, 60, 1)])
def test_merging_keeps_rows_only_below_the_width(sizes):
    fx, fy = _maps()
    x, y = _data(sum(sizes))
    edges = np.cumsum((0, *sizes))
    parts = [
        GramAccumulator(fx, fy, dtype="float64", keep_rows=True).update(x[a:b], y[a:b]).state()
        for a, b in zip(edges[:-1], edges[1:], strict=True)
    ]
    merged = merge_states(*parts)
    whole = GramAccumulator(fx, fy, dtype="float64").update(x, y).state()
    assert merged.count == sum(sizes)
    assert (merged.gram_sum is None) == (sum(sizes) < 80)
    _close(merged.summed(), whole.gram_sum, sum(sizes))


@pytest.mark.parametrize("eta", [1.0, 0.5])
def test_modes_from_the_rows_equal_the_modes_from_the_sum(eta):
    """The solve from the scaled rows (no m x m factorization) against the pivoted Cholesky of
    the formed Gram: the same eigenvalues, directions (up to sign), spectrum and check."""
    kept, plain, (fx, fy) = _states(40, 3)
    a = SPEC(eta=eta, n_modes=3, sigma_x=1.2, sigma_y=0.9, rff_dim=RFF).solve(kept, fx, fy)
    b = SPEC(eta=eta, n_modes=3, sigma_x=1.2, sigma_y=0.9, rff_dim=RFF).solve(plain, fx, fy)
    assert a.factorization_ == "feature-rows" and b.factorization_ == "pivoted-cholesky"
    top = np.abs(b.eigenvalues_).max()
    np.testing.assert_allclose(a.eigenvalues_, b.eigenvalues_, atol=1e-10 * top, rtol=0)
    k = min(a.spectrum_.size, b.spectrum_.size)
    np.testing.assert_allclose(a.spectrum_[:k], b.spectrum_[:k], atol=1e-6 * top, rtol=0)
    signs = np.sign(np.sum(a.weights_ * b.weights_, axis=0))
    np.testing.assert_allclose(a.weights_ * signs, b.weights_, atol=1e-7 * np.abs(b.weights_).max())
    checks = [
        gram_check(s, fx, fy, eta, m.eigenvalues_, 3, seed=1, factor=m.factor_)
        for s, m in ((kept, a), (plain, b))
    ]
    np.testing.assert_allclose(checks[0].half_mean, checks[1].half_mean, atol=1e-9 * top, rtol=0)
    wa, wb = (half_weights(s, eta, 3, "auto", 0) for s in (kept, plain))
    signs = np.sign(np.sum(wa * wb, axis=0))
    np.testing.assert_allclose(wa * signs, wb, atol=1e-7 * np.abs(wb).max())


def test_identical_inputs_with_rows_give_zero_modes():
    fx, _ = _maps()
    x, _ = _data(30)
    state = GramAccumulator(fx, fx, dtype="float64", keep_rows=True).update(x, x).state()
    assert state.identical and state.rows is not None
    spec = SPEC(n_modes=2, sigma_x=1.2, sigma_y=1.2, rff_dim=RFF).solve(state, fx, fx)
    assert np.all(spec.eigenvalues_ == 0.0) and spec.spec_diff_["max"] == 0.0


def test_the_torch_backend_keeps_no_rows():
    torch = pytest.importorskip("torch")
    assert torch is not None
    fx, fy = _maps()
    x, y = _data(10)
    acc = GramAccumulator(fx, fy, dtype="float64", backend="torch", keep_rows=True)
    state = acc.update(x, y).state()
    assert state.rows is None and state.gram_sum.shape == (80, 80)
