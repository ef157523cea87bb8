"""Nearest neighbours against a brute-force numpy reference, the approximate path's recall
against an independent count, and local agreement on hand-made and planted cases."""

from __future__ import annotations

import numpy as np
import pytest

from speclens.explore import EXACT_MAX, local_agreement, nearest, recall_queries


def _reference(X: np.ndarray, rows: np.ndarray, k: int, metric: str):
    """Brute force in float64: sorted distances and the k nearest other rows of X[rows]."""
    X = X.astype(np.float64)
    if metric == "cosine":
        X = X / np.linalg.norm(X, axis=1, keepdims=True)
        dist = 1.0 - X[rows] @ X.T
    else:
        dist = ((X[rows][:, None, :] - X[None, :, :]) ** 2).sum(axis=2)
    dist[np.arange(len(rows)), rows] = np.inf
    order = np.argsort(dist, axis=1, kind="stable")
    return np.take_along_axis(dist, order, axis=1), order[:, :k]


def _clustered(n: int, d: int, centres: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(centres, d)) * 3.0
    return (means[rng.integers(0, centres, n)] + rng.normal(size=(n, d))).astype(np.float32)


@pytest.mark.parametrize("backend", ["torch", "numpy"])
@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_exact_equals_brute_force_reference(metric, backend, monkeypatch):
    """Both block kernels: torch's, and numpy's (small blocks while torch is not loaded)."""
    import speclens.explore.neighbors as nb
    from speclens.spec.features import _torch_or_none

    torch = _torch_or_none() if backend == "torch" else None
    if backend == "torch" and torch is None:
        pytest.skip("torch is not installed")
    monkeypatch.setattr(nb, "torch_for", lambda size: torch)
    X = np.random.default_rng(1).normal(size=(400, 12)).astype(np.float32)
    k = 10
    got = nearest(X, k, metric=metric)
    assert (got.method, got.recall) == ("exact", 1.0)
    assert got.indices.shape == (400, k) and got.indices.dtype == np.int64
    dist, ref = _reference(X, np.arange(400), k, metric)
    # float32 (faiss) and float64 (numpy) may swap two nearly tied neighbours: rows without a
    # near tie among the first k+1 distances must match exactly, every row to the distances.
    tol = 1e-5 * np.median(dist[:, : k + 1])  # far above float32 rounding at this scale
    clear = (np.diff(dist[:, : k + 1], axis=1) > tol).all(axis=1)
    assert clear.mean() > 0.95
    np.testing.assert_array_equal(got.indices[clear], ref[clear])
    got_dist = np.sort(np.take_along_axis(_distances(X, metric), got.indices, axis=1), axis=1)
    np.testing.assert_allclose(got_dist, dist[:, :k], rtol=1e-4, atol=1e-5)


def _distances(X: np.ndarray, metric: str) -> np.ndarray:
    X = X.astype(np.float64)
    if metric == "cosine":
        X = X / np.linalg.norm(X, axis=1, keepdims=True)
        return 1.0 - X @ X.T
    return ((X[:, None, :] - X[None, :, :]) ** 2).sum(axis=2)


def test_a_row_never_lists_itself_even_among_duplicates():
    rng = np.random.default_rng(2)
    points = rng.normal(size=(50, 6)).astype(np.float32)
    X = np.repeat(points, 4, axis=0)  # rows 4g..4g+3 are identical
    X = np.concatenate([X, np.repeat(rng.normal(size=(1, 6)), 8, axis=0).astype(np.float32)])
    for metric in ("l2", "cosine"):
        idx = nearest(X, 5, metric=metric).indices
        n = len(X)
        assert not (idx == np.arange(n)[:, None]).any()
        assert all(len(set(row)) == 5 for row in idx)
        for i in range(200):  # the three copies of a row come first, in some order
            group = set(range(4 * (i // 4), 4 * (i // 4) + 4)) - {i}
            assert set(idx[i, :3]) == group
        # eight identical rows, k = 5: five of the seven others, never itself
        assert set(idx[200:].ravel()) <= set(range(200, 208))


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_approximate_path_recall_is_measured_honestly(metric):
    X = _clustered(4000, 32, centres=25, seed=3)
    k = 10
    got = nearest(X, k, metric=metric, exact_max=500, seed=7)
    assert got.method.startswith("ivf nlist=") and " nprobe=" in got.method
    assert got.indices.shape == (4000, k)
    assert not (got.indices == np.arange(4000)[:, None]).any()
    rows = recall_queries(4000, 7)
    assert len(rows) == 1000 and len(np.unique(rows)) == 1000
    _, truth = _reference(X, rows, k, metric)
    overlap = [len(set(a) & set(b)) for a, b in zip(got.indices[rows], truth, strict=True)]
    assert got.recall >= 0.9
    assert got.recall == pytest.approx(np.mean(overlap) / k, abs=2e-3)  # near ties only
    everyone = nearest(X, k, metric=metric).indices
    assert np.mean(local_agreement(got.indices, everyone)) > 0.8  # Jaccard: recall 0.9 -> 0.82
    again = nearest(X, k, metric=metric, exact_max=500, seed=7)
    np.testing.assert_array_equal(again.indices, got.indices)


def test_bad_arguments_name_the_argument():
    X = np.random.default_rng(4).normal(size=(20, 3))
    with pytest.raises(ValueError, match="k must be smaller than the number of rows"):
        nearest(X, 20)
    with pytest.raises(ValueError, match="k must be an integer >= 1"):
        nearest(X, 0)
    with pytest.raises(ValueError, match="metric must be one of"):
        nearest(X, 3, metric="manhattan")
    with pytest.raises(ValueError, match=r"X must be a real-valued \(n, d\) array"):
        nearest(X[:, 0], 3)
    with pytest.raises(ValueError, match="NaN"):
        nearest(np.where(X > 2, np.nan, X), 3)
    with pytest.raises(ValueError, match="all-zero rows"):
        nearest(np.vstack([X, np.zeros((1, 3))]), 3, metric="cosine")
    assert EXACT_MAX == 50_000


def test_local_agreement_on_hand_made_rows():
    a = np.array([[1, 2, 3, 4], [0, 1, 2, 3], [5, 6, 7, 8], [9, 10, 11, 12]])
    b = np.array([[3, 4, 5, 6], [0, 1, 2, 9], [5, 6, 7, 8], [13, 14, 15, 16]])
    np.testing.assert_allclose(local_agreement(a, b), [2 / 6, 3 / 5, 1.0, 0.0])
    assert local_agreement(a, b).dtype == np.float64
    np.testing.assert_array_equal(local_agreement(a, a), np.ones(4))
    rng = np.random.default_rng(5)
    shuffled = rng.permuted(b, axis=1)
    np.testing.assert_array_equal(local_agreement(a, shuffled), local_agreement(a, b))
    np.testing.assert_array_equal(local_agreement(b, a), local_agreement(a, b))


def test_local_agreement_refuses_bad_input():
    a = np.arange(12).reshape(3, 4)
    with pytest.raises(ValueError, match="nx and ny must have the same shape"):
        local_agreement(a, a[:, :3])
    with pytest.raises(ValueError, match="ny lists the same neighbour twice"):
        local_agreement(a, np.array([[0, 0, 1, 2], [4, 5, 6, 7], [8, 9, 10, 11]]))
    with pytest.raises(ValueError, match="nx must be an \\(n, k\\) integer array"):
        local_agreement(a.astype(float), a)


def test_planted_scrambled_half_has_low_agreement():
    """Two far-apart blobs; Y keeps blob A's coordinates and shuffles blob B's among its rows,
    so only blob B's neighbourhoods change: agreement 1 on A, near chance (k/1000) on B."""
    rng = np.random.default_rng(6)
    half = 1000
    X = np.concatenate([rng.normal(size=(half, 8)), rng.normal(size=(half, 8)) + 50.0])
    Y = X.copy()
    Y[half:] = X[half + rng.permutation(half)]
    agree = local_agreement(nearest(X, 10).indices, nearest(Y, 10).indices)
    kept, scrambled = agree[:half], agree[half:]
    assert kept.min() > 0.95
    assert scrambled.mean() < 0.05 and scrambled.max() < 0.5
    assert set(np.argsort(agree, kind="stable")[:half]) == set(range(half, 2 * half))


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_list_by_list_search_returns_what_faiss_ivfflat_returns(metric):
    """The approximate path scans the inverted lists list by list with BLAS; with the same
    centroids and nprobe, faiss's own IndexIVFFlat.search must find the same neighbours."""
    import faiss

    from speclens.explore import neighbors as nb

    X = _clustered(3000, 16, centres=12, seed=8)
    Xf = nb._prepare(X, 10, metric)
    nlist, nprobe, k = 40, 3, 10
    centroids = nb._train_centroids(Xf, metric, nlist, seed=0)
    faiss_metric = faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT
    _, probes = faiss.knn(Xf, centroids, nprobe, metric=faiss_metric)
    lists = nb._Lists.build(probes[:, 0], nlist)
    ours = nb._ivf_search(Xf, lists, np.arange(3000), probes, k, metric)
    quantizer = faiss.IndexFlatL2(16) if metric == "l2" else faiss.IndexFlatIP(16)
    quantizer.add(centroids)
    index = faiss.IndexIVFFlat(quantizer, 16, nlist, faiss_metric)
    index.add(Xf)
    index.nprobe = nprobe
    _, found = index.search(Xf, k + 1)
    theirs = nb._drop_self(found, np.arange(3000), k)
    same = (np.sort(ours, axis=1) == np.sort(theirs, axis=1)).all(axis=1)
    assert same.mean() > 0.995  # float rounding may swap a near tie at the k-th place
    # k + 1 > the rows in one list: every query falls back to the exact answer
    small = nb._ivf_search(Xf, lists, np.arange(50), probes[:50, :1], 200, metric)
    np.testing.assert_array_equal(small, nb._exact(Xf, np.arange(50), 200, metric))
