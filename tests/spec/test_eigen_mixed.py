"""The mixed-precision ends (float32 tridiagonal reduction, pairs refined in float64) against a
float64 ``eigh``: eigenvalues within the rounding of a float64 product with T, residuals at
their floor, vectors within residual / gap, the spectrum within float32 rounding; clusters,
multiplicities and split tridiagonals; and the fall back to Lanczos when the refinement is cut
short."""

from __future__ import annotations

import numpy as np
import pytest
from spectra import clustered, ends, gram, low_rank_multiple

from speclens.spec import eigen, mixed
from speclens.spec.eigen import side_signs, solve_modes
from speclens.spec.mixed import mixed_ends

EPS = np.finfo(np.float64).eps
EPS32 = np.finfo(np.float32).eps


def _floor(T: np.ndarray, norm: float) -> float:
    return mixed.RESIDUAL_FLOOR * np.sqrt(T.shape[0]) * EPS * norm


@pytest.mark.parametrize("m, k, seed", [(12, 2, 0), (90, 5, 1), (400, 6, 2), (900, 10, 3)])
def test_mixed_ends_are_the_ends_of_eigh(m, k, seed):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((m, m))
    T = (A + A.T) / 2
    exact, vectors = np.linalg.eigh(T)
    got = mixed_ends(T, k)
    norm = np.abs(exact).max()
    assert got.values is not None and got.steps <= mixed.REFINE_STEPS
    np.testing.assert_allclose(got.values, ends(exact, k), rtol=0, atol=_floor(T, norm))
    residual = np.linalg.norm(T @ got.vectors - got.vectors * got.values, axis=0)
    assert residual.max() <= _floor(T, norm)
    np.testing.assert_allclose(np.linalg.norm(got.vectors, axis=0), 1.0, atol=1e-12)
    # each vector within residual / gap of eigh's (the gaps of a random matrix's ends)
    ref = np.concatenate([vectors[:, ::-1][:, :k], vectors[:, :k]], axis=1)
    gap = np.abs(np.diff(np.sort(exact))).min()
    signs = np.sign(np.sum(got.vectors * ref, axis=0))
    assert np.abs(got.vectors * signs - ref).max() <= 4 * _floor(T, norm) / gap
    # the whole spectrum: Weyl's bound for a float32 rounding of T plus a stable reduction
    assert np.all(np.diff(got.spectrum) <= 0)
    assert np.abs(got.spectrum - exact[::-1]).max() <= 4 * m * EPS32 * norm


def test_clusters_multiplicities_and_split_tridiagonals():
    """Clustered ends (gaps of 1e-4 and less), a rank-16 matrix whose smallest eigenvalue has
    multiplicity 8, a diagonal matrix (its tridiagonal splits into 1 x 1 blocks) and zero."""
    A, lam, Q = clustered()
    got = mixed_ends(A, 4)
    np.testing.assert_allclose(got.values, ends(lam, 4), rtol=0, atol=1e-12)
    assert np.linalg.norm(A @ got.vectors - got.vectors * got.values, axis=0).max() < 1e-11
    # a cluster's vectors are any basis of its space: they are orthonormal
    np.testing.assert_allclose(got.vectors.T @ got.vectors, np.eye(8), rtol=0, atol=1e-11)
    low = low_rank_multiple(Q)
    got = mixed_ends(low, 5)
    np.testing.assert_allclose(got.values, ends(np.linalg.eigvalsh(low), 5), rtol=0, atol=1e-12)
    diag = np.diag(np.random.default_rng(7).permutation(np.linspace(-3.0, 5.0, 60)))
    got = mixed_ends(diag, 3)
    np.testing.assert_allclose(
        got.values, [5.0, 5 - 8 / 59, 5 - 16 / 59, -3.0, -3 + 8 / 59, -3 + 16 / 59]
    )
    got = mixed_ends(np.zeros((30, 30)), 3)
    assert np.all(got.values == 0) and np.all(got.spectrum == 0)


def test_mixed_ends_refuses_more_pairs_than_the_matrix_has():
    with pytest.raises(ValueError, match="needs 0 < 2k < m"):
        mixed_ends(np.eye(6), 3)


def test_auto_takes_mixed_above_the_eigh_size_and_matches_eigh(monkeypatch):
    monkeypatch.setattr(eigen, "AUTO_EIGH_MAX", 100)
    G = gram(500, 1500, seed=11, corr=0.4)
    a = solve_modes(G, 230, 5, "eigh")
    b = solve_modes(G, 230, 5, "auto")
    assert b.solver == "mixed"
    scale = np.abs(a.eigenvalues).max()
    np.testing.assert_allclose(b.eigenvalues, a.eigenvalues, rtol=0, atol=1e-12 * scale)
    signs = np.sign(np.sum(b.directions * a.directions, axis=0))
    np.testing.assert_allclose(
        b.directions * signs, a.directions, rtol=0, atol=1e-8 * np.abs(a.directions).max()
    )
    assert np.abs(b.spectrum - a.spectrum).max() <= 4 * 500 * EPS32 * scale
    # no spectrum wanted: 'auto' keeps Lanczos (no reduction to pay for); 'mixed' forces it
    assert solve_modes(G, 230, 5, "auto", spectrum=False).solver == "lanczos"
    forced = solve_modes(G, 230, 5, "mixed", spectrum=False)
    assert forced.solver == "mixed" and forced.spectrum.size == 0
    np.testing.assert_allclose(forced.eigenvalues, a.eigenvalues, rtol=0, atol=1e-12 * scale)


def test_a_refinement_cut_short_falls_back_to_lanczos_with_the_spectrum_kept(monkeypatch):
    """One step is the first Rayleigh-Ritz on float32 vectors: residuals near eps32 ||T||, far
    above the floor, so the pairs are refused and Lanczos solves them; the float32 spectrum
    already computed is kept (not computed twice)."""
    monkeypatch.setattr(mixed, "REFINE_STEPS", 1)
    G = gram(300, 900, seed=5, corr=0.3)
    T = eigen._reduced(eigen.factor_gram(G)[0], side_signs(300, 150), 150, False)
    assert mixed_ends(T, 4).values is None
    calls = []
    monkeypatch.setattr(eigen, "whole_spectrum", lambda *a, **k: calls.append(1))
    got = solve_modes(G, 150, 4, "mixed")
    exact = solve_modes(G, 150, 4, "eigh")
    assert got.solver == "lanczos" and not calls
    scale = np.abs(exact.eigenvalues).max()
    np.testing.assert_allclose(got.eigenvalues, exact.eigenvalues, rtol=0, atol=1e-12 * scale)
    assert np.abs(got.spectrum - exact.spectrum).max() <= 4 * 300 * EPS32 * scale
