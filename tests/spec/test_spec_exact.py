"""The scalable SPEC path against the explicit n x n difference kernel."""

import numpy as np
import pytest

from speclens.spec import SPEC, exact_modes, planted_pair


def _ends(evals, k):
    """The k largest (descending) then k smallest (ascending) of a descending spectrum."""
    return np.concatenate([evals[:k], evals[::-1][:k]])


@pytest.fixture(scope="module")
def pair():
    p = planted_pair(n=300, dx=10, dy=14, group_size=40, random_state=3)
    return p.X, p.Y


@pytest.mark.parametrize("dtype, tol", [("float64", 1e-8), ("float32", 1e-5)])
def test_cosine_eigenvalues_equal_exact(pair, dtype, tol):
    X, Y = pair
    exact, _ = exact_modes(X, Y, "cosine", "cosine", eta=1.3)
    for solver in ("eigh", "lanczos", "mixed"):
        spec = SPEC("cosine", "cosine", eta=1.3, n_modes=4, dtype=dtype, solver=solver).fit(X, Y)
        np.testing.assert_allclose(spec.eigenvalues_, _ends(exact, 4), atol=tol, rtol=0)


def test_cosine_scores_are_the_exact_unit_eigenvectors(pair):
    X, Y = pair
    exact, vecs = exact_modes(X, Y, "cosine", "cosine")
    spec = SPEC("cosine", "cosine", n_modes=3, dtype="float64").fit(X, Y)
    scores = spec.transform(X, Y)
    np.testing.assert_allclose(np.linalg.norm(scores, axis=0), 1.0, atol=1e-9)
    ref = np.concatenate([vecs[:, :3], vecs[:, ::-1][:, :3]], axis=1)
    np.testing.assert_allclose(scores, ref, atol=1e-7)


def test_gaussian_rff_error_shrinks_with_rff_dim(pair):
    X, Y = pair
    # Y's kernel is exact (cosine), so the only approximation is X's random Fourier features.
    exact, _ = exact_modes(X, Y, "gaussian", "cosine", sigma_x=2.5)
    errors = {}
    for rff_dim in (250, 4000):
        spec = SPEC("gaussian", "cosine", sigma_x=2.5, rff_dim=rff_dim, n_modes=3, random_state=7)
        errors[rff_dim] = np.abs(spec.fit(X, Y).eigenvalues_ - _ends(exact, 3)).max()
    assert errors[4000] < errors[250]
    assert errors[4000] < 0.02


def test_gaussian_both_sides_close_to_exact(pair):
    X, Y = pair
    exact, _ = exact_modes(X, Y, sigma_x=2.5, sigma_y=3.0)
    spec = SPEC(sigma_x=2.5, sigma_y=3.0, rff_dim=1000, n_modes=3).fit(X, Y)
    assert np.abs(spec.eigenvalues_ - _ends(exact, 3)).max() < 0.02


def test_default_bandwidth_is_recorded_and_shared_with_exact(pair):
    X, Y = pair
    spec = SPEC(rff_dim=50, n_modes=2).fit(X, Y)
    from speclens.spec import median_distance

    assert spec.sigma_x_ == pytest.approx(0.5 * median_distance(X))
    assert spec.sigma_y_ == pytest.approx(0.5 * median_distance(Y))
    exact_default, _ = exact_modes(X, Y)
    exact_given, _ = exact_modes(X, Y, sigma_x=spec.sigma_x_, sigma_y=spec.sigma_y_)
    np.testing.assert_array_equal(exact_default, exact_given)


def test_exact_modes_refuses_large_n():
    X = np.zeros((11, 2)) + np.arange(11)[:, None]
    with pytest.raises(ValueError, match="refuses n=11 > 10.*use SPEC"):
        exact_modes(X, X, max_samples=10)


def test_spectrum_is_the_whole_nonzero_spectrum(pair):
    X, Y = pair
    exact, _ = exact_modes(X, Y, "cosine", "cosine")
    for solver in ("eigh", "lanczos", "mixed"):
        spec = SPEC("cosine", "cosine", n_modes=2, dtype="float64", solver=solver).fit(X, Y)
        nonzero = exact[np.abs(exact) > 1e-10]
        # 'mixed' keeps the float32 reduction's spectrum: within its rounding of the largest
        tol = 1e-9 if solver != "mixed" else 100 * np.finfo(np.float32).eps * np.abs(exact).max()
        np.testing.assert_allclose(spec.spectrum_, nonzero, atol=tol)
        mass = np.abs(exact).sum()
        assert np.abs(spec.spectrum_).sum() == pytest.approx(
            mass, abs=max(1e-8, tol * len(nonzero))
        )
