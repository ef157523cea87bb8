"""The 2-D map: planted clusters in score space stay apart, a seed reproduces the map, large
inputs are subsampled as announced, and tiny inputs fall back to principal components.

The first UMAP call of a process compiles umap-learn's numba code (about 10 s here); the
module-scoped fixture pays it once."""

from __future__ import annotations

import numpy as np
import pytest

from speclens.explore import Map2D, mode_map


def _planted_scores(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Three clusters: cluster c scores high on mode c; mode 0 is on a 100x larger scale
    (what the per-column scaling is for)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    scores = 0.15 * rng.normal(size=(n, 5))
    scores[np.arange(n), labels] += 1.0
    scores[:, 0] *= 100.0
    return scores, labels


@pytest.fixture(scope="module")
def planted():
    scores, labels = _planted_scores(300, seed=0)
    return scores, labels, mode_map(scores, seed=0)


def _knn_purity(xy: np.ndarray, labels: np.ndarray, k: int = 10) -> float:
    dist = ((xy[:, None, :] - xy[None, :, :]) ** 2).sum(axis=2)
    np.fill_diagonal(dist, np.inf)
    near = np.argsort(dist, axis=1)[:, :k]
    return float((labels[near] == labels[:, None]).mean())


def test_planted_clusters_are_separated_on_the_map(planted):
    scores, labels, m = planted
    assert isinstance(m, Map2D)
    assert m.xy.shape == (300, 2) and m.xy.dtype == np.float64
    assert m.mapped.all() and np.isfinite(m.xy).all()
    assert m.method.startswith("umap of the mode scores, n_neighbors=15, min_dist=0.1")
    assert m.method.endswith("300 of 300 rows")
    assert _knn_purity(m.xy, labels) >= 0.95


def test_same_seed_same_map_and_scale_invariance(planted):
    scores, _, m = planted
    np.testing.assert_array_equal(mode_map(scores, seed=0).xy, m.xy)
    rescaled = scores * np.array([4.0, 0.25, 8.0, 1.0, 2.0])  # powers of two: exact in floats
    np.testing.assert_array_equal(mode_map(rescaled, seed=0).xy, m.xy)


def test_more_rows_than_max_points_maps_a_seeded_subsample():
    scores, labels = _planted_scores(900, seed=1)
    m = mode_map(scores, seed=3, max_points=250)
    assert m.mapped.sum() == 250
    assert np.isnan(m.xy[~m.mapped]).all() and np.isfinite(m.xy[m.mapped]).all()
    assert m.method.endswith("250 of 900 rows")
    assert _knn_purity(m.xy[m.mapped], labels[m.mapped]) >= 0.95
    again = mode_map(scores, seed=3, max_points=250)
    np.testing.assert_array_equal(again.mapped, m.mapped)


def test_too_few_rows_fall_back_to_principal_components():
    rng = np.random.default_rng(2)
    scores = rng.normal(size=(12, 4)) * np.array([10.0, 1.0, 1.0, 0.1])
    m = mode_map(scores)  # 12 < n_neighbors + 2 = 17
    assert "principal components" in m.method and m.method.endswith("12 of 12 rows")
    assert m.mapped.all()
    scaled = scores / np.abs(scores).max(axis=0)
    centred = scaled - scaled.mean(axis=0)
    values, vectors = np.linalg.eigh(centred.T @ centred)
    reference = centred @ vectors[:, ::-1][:, :2]  # top two eigenvectors of the covariance
    np.testing.assert_allclose(np.abs(m.xy), np.abs(reference), atol=1e-10)
    one = mode_map(np.ones((1, 3)))
    np.testing.assert_array_equal(one.xy, [[0.0, 0.0]])


def test_bad_arguments_name_the_argument():
    scores = np.random.default_rng(3).normal(size=(30, 3))
    with pytest.raises(ValueError, match=r"scores must be a real-valued \(n samples, m modes\)"):
        mode_map(scores[:, 0])
    with pytest.raises(ValueError, match="scores has NaN"):
        mode_map(np.where(scores > 1, np.inf, scores))
    with pytest.raises(ValueError, match="n_neighbors must be an integer >= 2"):
        mode_map(scores, n_neighbors=1)
    with pytest.raises(ValueError, match="min_dist must be in"):
        mode_map(scores, min_dist=2.0)
    with pytest.raises(ValueError, match="max_points must be an integer >= 1"):
        mode_map(scores, max_points=0)
