"""A 2-D map of the samples: UMAP (umap-learn) of the joint mode scores.

Why the mode scores and not either embedding: the scores are the coordinates in which SPEC
explains the difference between the two embeddings, so samples that one mode singles out sit
together on the map and colouring by mode reads directly; one map serves both embeddings
instead of two maps that must be compared by eye. Every score column is divided by its largest
absolute value so that each mode weighs the same (raw scores shrink with the eigenvalue).

UMAP's neighbour graph is given to it precomputed: the exact neighbours from
``speclens.explore.neighbors.nearest``, which umap-learn would otherwise compute for
fewer than 4096 rows with a pairwise-distance loop calling Python per pair (seconds for 2000
rows) and above that with pynndescent (an approximation plus its own JIT compilation).

Reproducible: ``random_state=seed`` (umap-learn then optimises single-threaded) and a seeded
subsample of ``max_points`` rows when there are more; the other rows get NaN coordinates.
Too few rows for UMAP's neighbour graph to mean anything (fewer than n_neighbors + 2) fall back
to the top two principal components, and ``method`` says so. Pure arrays in, arrays out.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from speclens.explore.neighbors import nearest


@dataclass(frozen=True)
class Map2D:
    """2-D coordinates of the samples: ``xy`` (n, 2) float64 with NaN for rows not mapped,
    ``mapped`` (n,) bool, and ``method``, what was done and to how many rows."""

    xy: np.ndarray
    mapped: np.ndarray
    method: str


def mode_map(
    scores: np.ndarray,
    *,
    seed: int = 0,
    max_points: int = 20_000,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
) -> Map2D:
    """Map the rows of ``scores`` (n samples, m modes) to the plane.

    UMAP with ``n_neighbors`` and ``min_dist`` of the max-|value|-scaled scores of all rows,
    or of a seeded subsample of ``max_points`` rows when n is larger (UMAP's cost grows with
    the rows, and a map of 20,000 points already shows every mode). With fewer than
    ``n_neighbors + 2`` rows to map, the top two principal components instead.
    """
    S = _check(scores, seed, max_points, n_neighbors, min_dist)
    n = S.shape[0]
    rows = _rows(n, max_points, seed)
    scaled = _scale(S)[rows]
    if len(rows) >= n_neighbors + 2:
        embedded = _umap(scaled, seed, n_neighbors, min_dist)
        what = f"umap of the mode scores, n_neighbors={n_neighbors}, min_dist={min_dist:g}"
    else:
        embedded = _pca2(scaled)
        what = (
            f"top 2 principal components of the mode scores (too few rows for umap with "
            f"n_neighbors={n_neighbors}: it needs at least {n_neighbors + 2})"
        )
    xy = np.full((n, 2), np.nan)
    xy[rows] = embedded
    mapped = np.zeros(n, dtype=bool)
    mapped[rows] = True
    method = f"{what}, columns scaled by their max |value|, {len(rows)} of {n} rows"
    return Map2D(xy, mapped, method)


def _check(scores, seed, max_points, n_neighbors, min_dist) -> np.ndarray:
    """The scores as a float64 (n, m) array; one ValueError sentence for any bad argument."""
    S = np.asarray(scores)
    if S.ndim != 2 or 0 in S.shape or S.dtype.kind not in "iuf":
        raise ValueError(
            f"scores must be a real-valued (n samples, m modes) array with n, m >= 1, got shape "
            f"{S.shape}; pass one column per mode."
        )
    S = S.astype(np.float64)
    if not np.isfinite(S).all():
        raise ValueError("scores has NaN or infinite values; drop or fill those rows first.")
    for value, name, low in ((seed, "seed", 0), (max_points, "max_points", 1)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}.")
    if isinstance(n_neighbors, bool) or not isinstance(n_neighbors, int | np.integer):
        raise ValueError(f"n_neighbors must be an integer >= 2, got {n_neighbors!r}.")
    if n_neighbors < 2:
        raise ValueError(f"n_neighbors must be an integer >= 2, got {n_neighbors!r}.")
    if not 0.0 <= float(min_dist) <= 1.0:
        raise ValueError(
            f"min_dist must be in [0, 1] (umap's spread is 1), got {min_dist!r}; 0.1 is usual."
        )
    return S


def _rows(n: int, max_points: int, seed: int) -> np.ndarray:
    """All rows, or a seeded sorted subsample of ``max_points`` of them."""
    if n <= max_points:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=max_points, replace=False))


def _scale(S: np.ndarray) -> np.ndarray:
    """Each column divided by its max |value| (an all-zero column stays zero)."""
    peak = np.abs(S).max(axis=0)
    return S / np.where(peak > 0, peak, 1.0)


def _knn_graph(S: np.ndarray, n_neighbors: int) -> tuple[np.ndarray, np.ndarray]:
    """umap-learn's neighbour format: (n, n_neighbors) indices with each row itself first,
    and the Euclidean distances to them (float32, computed in float64)."""
    others = nearest(S.astype(np.float32), n_neighbors - 1, metric="l2").indices
    idx = np.concatenate([np.arange(len(S))[:, None], others], axis=1)
    dist = np.sqrt(((S[idx] - S[:, None, :]) ** 2).sum(axis=2))
    return idx, dist.astype(np.float32)


def _umap(S: np.ndarray, seed: int, n_neighbors: int, min_dist: float) -> np.ndarray:
    """UMAP to 2-D with the exact neighbour graph; float64 coordinates."""
    import umap

    idx, dist = _knn_graph(S, n_neighbors)
    reducer = umap.UMAP(
        n_neighbors=n_neighbors,
        min_dist=min_dist,
        n_components=2,
        random_state=seed,
        n_jobs=1,
        precomputed_knn=(idx, dist),
    )
    with warnings.catch_warnings():
        # Expected: without a pynndescent index umap-learn cannot ``transform`` new rows.
        warnings.filterwarnings("ignore", message=r"precomputed_knn\[2\]")
        return np.asarray(reducer.fit_transform(S), dtype=np.float64)


def _pca2(S: np.ndarray) -> np.ndarray:
    """The top two principal-component scores (zeros where fewer exist), signs fixed so that
    each component's largest loading is positive (deterministic output)."""
    centred = S - S.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    top = vt[:2]
    top = top * np.sign(top[np.arange(len(top)), np.abs(top).argmax(axis=1)])[:, None]
    out = np.zeros((len(S), 2))
    out[:, : len(top)] = centred @ top.T
    return out
