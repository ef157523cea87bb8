"""The eigensolver's pieces against dense references: T by blocks of the Cholesky factor, the
Lanczos run with full reorthogonalisation (and its ARPACK fallback), the float32 spectrum, and
invariances of the solve. Bounds follow from the arithmetic (a multiple of the unit roundoff
times the matrices' norms), never bitwise equality between different BLAS calls."""

from __future__ import annotations

import numpy as np
import pytest
from spectra import clustered, ends, gram, low_rank_multiple

from speclens.spec import eigen
from speclens.spec.eigen import factor_gram, side_signs, solve_modes, whole_spectrum

EPS = np.finfo(np.float64).eps


@pytest.mark.parametrize("m, m_x", [(60, 30), (61, 20), (40, 39), (80, 1)])
def test_t_by_blocks_is_b_s_bt_and_exactly_symmetric(m, m_x):
    G = gram(m, 3 * m, seed=m, corr=0.5)
    B, how = factor_gram(G)
    assert how == "cholesky" and np.array_equal(B, np.triu(B))
    np.testing.assert_allclose(B.T @ B, G, rtol=0, atol=50 * m * EPS * np.abs(G).max())
    raw, _ = eigen._factor(G, None)  # LAPACK's factor, lower triangle not cleaned
    s = side_signs(m, m_x)
    T = eigen._reduced(raw, s, m_x, True)
    ref = (B * s) @ B.T
    # each entry is a sum of m products: |error| <= m eps sum |b_ik| |b_jk| (Higham, 3.5)
    bound = 2 * m * EPS * (np.abs(B) @ np.abs(B).T)
    assert np.all(np.abs(T - ref) <= bound)
    assert np.array_equal(T, T.T)


@pytest.mark.parametrize("r, seed", [(11, 0), (12, 1), (50, 2), (300, 3), (700, 4)])
def test_lanczos_ends_are_the_ends_of_eigh(r, seed):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((r, r))
    A = (A + A.T) / 2
    k = 5
    values, vectors = eigen._lanczos_ends(A.dot, r, k, seed)
    exact = ends(np.linalg.eigvalsh(A), k)
    norm = np.abs(exact).max()
    np.testing.assert_allclose(values, exact, rtol=0, atol=100 * np.sqrt(r) * EPS * norm)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=0), 1.0, atol=1e-12)
    residual = np.linalg.norm(A @ vectors - vectors * values, axis=0)
    assert residual.max() <= 100 * np.sqrt(r) * EPS * norm


def test_lanczos_ends_with_clusters_zeros_and_a_split_krylov_space():
    """Clustered ends; a rank-16 matrix whose smallest eigenvalue has multiplicity 8 (a start
    vector's Krylov space holds one copy and is exhausted after 10 steps: the other copies come
    from the new directions the basis continues with); the zero matrix (every new vector is
    exactly 0, replaced by a fresh random direction)."""
    A, lam, Q = clustered()
    r = A.shape[0]
    values, vectors = eigen._lanczos_ends(A.dot, r, 4, 0)
    np.testing.assert_allclose(values, ends(lam, 4), rtol=0, atol=1e-12)
    low = low_rank_multiple(Q)
    values, _ = eigen._lanczos_ends(low.dot, r, 5, 1)
    np.testing.assert_allclose(values, ends(np.linalg.eigvalsh(low), 5), rtol=0, atol=1e-12)
    values, vectors = eigen._lanczos_ends(np.zeros((30, 30)).dot, 30, 3, 0)
    assert np.all(values == 0) and np.allclose(np.linalg.norm(vectors, axis=0), 1.0)


def test_lanczos_falls_back_to_arpack_when_it_runs_out_of_steps(monkeypatch):
    rng = np.random.default_rng(3)
    A = rng.standard_normal((200, 200))
    A = (A + A.T) / 2
    monkeypatch.setattr(eigen, "LANCZOS_STEPS", 12)  # far too few for 200 to machine precision
    values, vectors = eigen._lanczos_ends(A.dot, 200, 3, 0)
    exact = ends(np.linalg.eigvalsh(A), 3)
    np.testing.assert_allclose(values, exact, rtol=0, atol=1e-11 * np.abs(exact).max())
    assert np.linalg.norm(A @ vectors - vectors * values, axis=0).max() < 1e-10


def test_a_looser_tolerance_bounds_each_ritz_value():
    """With tol, every Ritz value lies within tol |theta| of an eigenvalue (its residual)."""
    G = gram(300, 900, seed=5, corr=0.3)
    exact = solve_modes(G, 150, 4, "eigh").eigenvalues
    for tol in (1e-4, 1e-6, 1e-8):
        got = solve_modes(G, 150, 4, "lanczos", spectrum=False, tol=tol).eigenvalues
        assert np.all(np.abs(got - exact) <= tol * np.abs(got) + 1e-14)


def test_solve_modes_lanczos_matches_eigh_values_and_directions():
    G = gram(500, 1500, seed=11, corr=0.4)
    a = solve_modes(G, 230, 5, "eigh")
    b = solve_modes(G, 230, 5, "lanczos")
    c = solve_modes(G, 230, 5, "lanczos", spectrum=False)  # the operator, T never formed
    scale = np.abs(a.eigenvalues).max()
    for other in (b, c):
        np.testing.assert_allclose(other.eigenvalues, a.eigenvalues, rtol=0, atol=1e-12 * scale)
        signs = np.sign(np.sum(other.directions * a.directions, axis=0))
        np.testing.assert_allclose(
            other.directions * signs, a.directions, rtol=0, atol=1e-8 * np.abs(a.directions).max()
        )
    np.testing.assert_allclose(b.spectrum, a.spectrum, rtol=0, atol=1e-12 * scale)
    assert c.spectrum.size == 0


def test_permuting_features_within_each_side_changes_nothing():
    """T changes by an orthogonal similarity: the same eigenvalues, the directions permuted."""
    G, m_x = gram(200, 600, seed=2, corr=0.5), 90
    rng = np.random.default_rng(0)
    perm = np.concatenate([rng.permutation(m_x), m_x + rng.permutation(200 - m_x)])
    a = solve_modes(G, m_x, 3, "lanczos")
    b = solve_modes(G[np.ix_(perm, perm)], m_x, 3, "lanczos")
    scale = np.abs(a.eigenvalues).max()
    np.testing.assert_allclose(b.eigenvalues, a.eigenvalues, rtol=0, atol=1e-12 * scale)
    np.testing.assert_allclose(b.spectrum, a.spectrum, rtol=0, atol=1e-12 * scale)
    w = a.directions[perm]
    signs = np.sign(np.sum(b.directions * w, axis=0))
    np.testing.assert_allclose(b.directions * signs, w, rtol=0, atol=1e-8 * np.abs(w).max())


@pytest.mark.parametrize("with_torch", [True, False])
def test_the_float32_spectrum_is_within_its_rounding(monkeypatch, with_torch):
    """eigvalsh in float32, by torch's LAPACK or scipy's: each eigenvalue within a few units of
    float32 roundoff of the largest (Weyl: rounding T moves each by at most ||dT||_2 <= sqrt(m)
    eps32 max|T|, and a backward-stable eigvalsh adds O(m eps32 ||T||)), the mass likewise."""
    import speclens.spec.features as features

    if with_torch:
        pytest.importorskip("torch")
    else:
        monkeypatch.setattr(features, "_torch_or_none", lambda: None)
    G = gram(600, 1800, seed=4, corr=0.4)
    B, _ = factor_gram(G)
    T = eigen._reduced(B, side_signs(600, 300), 300, False)
    exact = np.linalg.eigvalsh(T)[::-1]
    got = whole_spectrum(T)
    eps32 = np.finfo(np.float32).eps
    norm = np.abs(exact).max()
    assert got.dtype == np.float64 and np.all(np.diff(got) <= 0)
    assert np.abs(got - exact).max() <= 600 * eps32 * norm
    assert abs(np.abs(got).sum() - np.abs(exact).sum()) <= 600 * 600 * eps32 * norm
    np.testing.assert_allclose(whole_spectrum(T, single=False), exact, rtol=0, atol=1e-13 * norm)


def test_a_singular_gram_takes_the_pivoted_factor_and_the_same_path():
    G = gram(120, 80, seed=9)  # 80 rows: rank 80
    modes = solve_modes(G, 60, 3, "lanczos", n_samples=80)
    assert modes.factorization == "pivoted-cholesky" and modes.rank == 80
    exact = solve_modes(G, 60, 3, "eigh", n_samples=80).eigenvalues
    np.testing.assert_allclose(modes.eigenvalues, exact, rtol=0, atol=1e-12)
