"""Each row's k nearest other rows (exact or approximate) and the local agreement of
two embeddings: the Jaccard overlap of every sample's neighbour sets in X and in Y.

Brute force in Python cannot reach warehouse scale (n = 10^5 .. 10^6). Up to ``exact_max``
rows the search is exact: blocked brute force, one BLAS product and a multi-threaded top-k per
block (what faiss's ``IndexFlatL2`` / ``IndexFlatIP`` do). Above it, faiss's ``IndexIVFFlat``
search (inverted file, flat lists; the tests check the same neighbours as faiss's own). Both
are computed with torch's kernels, not faiss's: on this project's shared 2-core machine faiss's
OpenMP threads stall (exact 20,000 x 768: 6.8 s in torch, 23.9 s with ``faiss.knn``; its
k-means 8.3 s against 1.5 s; its IVF scan 0.5-0.9 GFLOP/s), so faiss is a test reference. Above it, an IVF
search (inverted file, flat lists: what ``IndexIVFFlat`` does) whose recall is measured and
returned, so a table that stores the neighbours can say how approximate they are.

Approximate plan, for "every row is a query" (all-k-nearest-neighbours), where training and
assignment cost as much as the queries:

* nlist = round(2 * sqrt(n)), at most n // 39 so every list gets the 39 training points per
  centroid that faiss asks for. faiss's guidance (4..16 * sqrt(n)) is for a database queried by
  few vectors; here k-means costs O(nlist^2 d) and the scan depends on the fraction of rows
  scanned, not on nlist, so fewer, larger lists are cheaper (measured at n = 100,000, d = 512:
  k-means 22 s at 4 * sqrt(n), 6 s at 2 * sqrt(n), same recall per fraction scanned);
* k-means (10 Lloyd iterations, as ``IndexIVF.train``; spherical for cosine; in torch, see
  ``_train_centroids``) on a seeded subsample of min(n, 40 * nlist) rows, inside faiss's
  30..256 points per centroid;
* the lists are searched list by list with BLAS (``_ivf_search``): the same candidates as
  ``IndexIVFFlat.search`` at the same nprobe, 20x faster per distance here because each list
  is read once for all the queries that probe it;
* nprobe doubles from 1 until recall@k on a seeded tuning sample of 500 rows reaches 0.95 (a
  margin over the 0.9 aimed at) or nprobe reaches the cap, max(4, nlist // 64) lists (about
  1/64 of the rows): data without cluster structure, where IVF cannot do well, then costs a
  bounded time and reports a low recall instead of costing as much as exact search;
* the returned recall is measured afterwards on another seeded sample (``recall_queries``) of
  min(1000, n) rows: the neighbours returned for them against their exact neighbours.

Pure arrays in, arrays out; torch is imported inside the functions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from speclens.spec.features import torch_for

EXACT_MAX = 50_000
METRICS = ("l2", "cosine")
RECALL_QUERIES = 1000
TUNE_QUERIES = 500
TUNE_TARGET = 0.95
TRAIN_PER_LIST = 40
LISTS_PER_SQRT_N = 2
MIN_PER_LIST = 39  # faiss warns when k-means gets fewer training points per centroid
NPROBE_CAP_FRACTION = 64


@dataclass(frozen=True)
class Neighbors:
    """Each row's ``k`` nearest other rows, how they were found, and how exact they are.

    ``indices`` is (n, k) int64, nearest first, never the row itself; ``method`` is
    ``"exact"`` or e.g. ``"ivf nlist=632 nprobe=4"``; ``recall`` is 1.0 for exact
    search and the measured recall@k on a seeded sample of queries for approximate search.
    """

    indices: np.ndarray
    method: str
    recall: float | None


def nearest(
    X: np.ndarray, k: int = 10, *, metric: str = "l2", exact_max: int = EXACT_MAX, seed: int = 0
) -> Neighbors:
    """The ``k`` nearest other rows of every row of ``X`` (n, d).

    ``metric`` is ``"l2"`` (squared Euclidean distance) or ``"cosine"`` (rows normalised, inner
    product). Exact for n <= ``exact_max``; above it an IVF index whose recall is measured (see
    the module docstring). Duplicated rows are handled: a row never lists itself, whatever
    order faiss gives to rows at distance zero. Results are reproducible for a given ``seed``.
    """
    Xf = _prepare(X, k, metric)
    _check_int(exact_max, "exact_max", 0)
    _check_int(seed, "seed", 0)
    if Xf.shape[0] <= exact_max:
        return Neighbors(_exact(Xf, np.arange(Xf.shape[0]), k, metric), "exact", 1.0)
    return _approximate(Xf, k, metric, seed)


def local_agreement(nx: np.ndarray, ny: np.ndarray) -> np.ndarray:
    """Per row, the Jaccard overlap |A ∩ B| / |A ∪ B| of its neighbour sets A (row of ``nx``)
    and B (row of ``ny``): 1 when both embeddings give a sample the same neighbours, 0 when
    they share none. Order within a row does not matter.

    Vectorised for n = 10^6: the two rows are concatenated and sorted, and every index found
    twice is a shared neighbour, so |A ∩ B| needs no per-row Python loop and
    |A ∪ B| = 2k - |A ∩ B|.
    """
    sx, sy = _sorted_rows(nx, "nx"), _sorted_rows(ny, "ny")
    if sx.shape != sy.shape:
        raise ValueError(
            f"nx and ny must have the same shape (one row per sample, k neighbours each), "
            f"got {sx.shape} and {sy.shape}; compute both with the same n and k."
        )
    inter = _shared_counts(sx, sy)
    k = sx.shape[1]
    return inter / (2.0 * k - inter)


def recall_queries(n: int, seed: int) -> np.ndarray:
    """The rows (sorted) on which the recall of an approximate search is measured: a seeded
    sample of min(1000, n) rows, public so that a caller can check the recall independently."""
    m = min(RECALL_QUERIES, n)
    return np.sort(np.random.default_rng([seed, 1]).choice(n, size=m, replace=False))


def _prepare(X: np.ndarray, k: int, metric: str) -> np.ndarray:
    """Validate the arguments; return X as C-contiguous float32 (a copy when converting or
    normalising, so the caller's array is never changed)."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}.")
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[1] == 0 or X.dtype.kind not in "iuf":
        raise ValueError(f"X must be a real-valued (n, d) array with d >= 1, got shape {X.shape}.")
    _check_int(k, "k", 1)
    if k >= X.shape[0]:
        raise ValueError(
            f"k must be smaller than the number of rows of X ({X.shape[0]}), got k={k}; "
            "lower k or pass more rows."
        )
    Xf = np.ascontiguousarray(X, dtype=np.float32)
    if not np.isfinite(Xf).all():
        raise ValueError("X has NaN or infinite values (after conversion to float32); drop them.")
    if metric == "cosine":
        norms = np.linalg.norm(Xf, axis=1, keepdims=True)
        if (norms == 0).any():
            raise ValueError(
                f"X has {int((norms == 0).sum())} all-zero rows, which have no cosine "
                "neighbours; drop them or use metric='l2'."
            )
        Xf = np.ascontiguousarray(Xf / norms, dtype=np.float32)
    return Xf


def _check_int(value, name: str, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}.")


#: rows of queries and of the database per block of the exact search (a 4096 x 16384 float32
#: block of scores: 256 MB)
EXACT_QUERY_BLOCK, EXACT_BASE_BLOCK = 4096, 16384


def _exact(Xf: np.ndarray, rows: np.ndarray, k: int, metric: str) -> np.ndarray:
    """Exact k nearest other rows of ``Xf[rows]`` among all rows of ``Xf``: blocked brute force
    (one BLAS product and a multi-threaded top-k per block of queries and database rows, never
    more than one block of scores). torch rather than ``faiss.knn``: the same products, but
    faiss's OpenMP threads stall when other processes share the cores (``_block_knn``)."""
    out = np.empty((len(rows), k), dtype=np.int64)
    for a in range(0, len(rows), EXACT_QUERY_BLOCK):
        part = rows[a : a + EXACT_QUERY_BLOCK]
        out[a : a + len(part)] = _drop_self(_exact_block(Xf, Xf[part], k + 1, metric), part, k)
    return out


def _exact_block(Xf: np.ndarray, Q: np.ndarray, k: int, metric: str) -> np.ndarray:
    """The k nearest rows of ``Xf`` for each row of ``Q``, nearest first (ties: lower index)."""
    best_d, best_i = [], []
    for b in range(0, Xf.shape[0], EXACT_BASE_BLOCK):
        dist, top = _block_knn(Q, Xf[b : b + EXACT_BASE_BLOCK], k, metric)
        best_d.append(np.asarray(dist))
        best_i.append(np.asarray(top, dtype=np.int64) + b)
    dist, idx = np.concatenate(best_d, axis=1), np.concatenate(best_i, axis=1)
    order = np.lexsort((idx, dist), axis=1)[:, :k]  # by score, then index
    return np.take_along_axis(idx, order, axis=1)


def _drop_self(found: np.ndarray, rows: np.ndarray, k: int) -> np.ndarray:
    """From (m, k+1) results, drop each query's own index wherever it is (with duplicates
    faiss may list an identical row first), else the last, farthest one."""
    drop = found == rows[:, None]
    drop[~drop.any(axis=1), -1] = True
    return found[~drop].reshape(len(rows), k).astype(np.int64, copy=False)


def _ivf_plan(n: int) -> tuple[int, int]:
    """(nlist, nprobe cap) for n rows: nlist about 2 * sqrt(n) with at least MIN_PER_LIST rows
    per list; the cap lets a query scan at most 1/64 of the lists (at least 4 of them)."""
    nlist = max(1, min(round(LISTS_PER_SQRT_N * math.sqrt(n)), n // MIN_PER_LIST))
    return nlist, min(nlist, max(4, nlist // NPROBE_CAP_FRACTION))


def _approximate(Xf: np.ndarray, k: int, metric: str, seed: int) -> Neighbors:
    """IVF search of every row, nprobe tuned, recall measured (see the module docstring)."""
    n = Xf.shape[0]
    nlist, cap = _ivf_plan(n)
    centroids = _train_centroids(Xf, metric, nlist, seed)
    probes = np.concatenate(  # each row's cap nearest centroids, nearest first: its own list
        [
            _exact_block(centroids, Xf[a : a + EXACT_QUERY_BLOCK], cap, metric)
            for a in range(0, Xf.shape[0], EXACT_QUERY_BLOCK)
        ]
    )
    lists = _Lists.build(probes[:, 0], nlist)
    nprobe = _tune_nprobe(Xf, lists, probes, k, metric, seed)
    indices = _ivf_search(Xf, lists, np.arange(n), probes[:, :nprobe], k, metric)
    rows = recall_queries(n, seed)
    recall = _recall(indices[rows], _exact(Xf, rows, k, metric))
    return Neighbors(indices, f"ivf nlist={nlist} nprobe={nprobe}", recall)


def _train_centroids(Xf: np.ndarray, metric: str, nlist: int, seed: int) -> np.ndarray:
    """Lloyd's k-means (10 iterations, as IndexIVF.train runs faiss's; spherical for cosine)
    on a seeded subsample of min(n, 40 * nlist) rows, started from nlist seeded rows of it:
    the IVF partition's centroids. In torch (one product and an argmin per iteration): 1.5 s
    where faiss's k-means took 8.3 s at n = 100,000, d = 768 on this machine (its OpenMP
    threads, as in ``_block_knn``). An emptied centroid keeps its place."""
    import torch

    n = Xf.shape[0]
    rng = np.random.default_rng([seed, 0])
    train = np.sort(rng.choice(n, size=min(n, TRAIN_PER_LIST * nlist), replace=False))
    x = torch.from_numpy(np.ascontiguousarray(Xf[train]))
    c = x[torch.from_numpy(np.sort(rng.choice(len(train), size=nlist, replace=False)))].clone()
    for _ in range(10):
        score = torch.addmm((c * c).sum(dim=1)[None, :], x, c.T, beta=1.0, alpha=-2.0)
        label = score.argmin(dim=1) if metric == "l2" else (x @ c.T).argmax(dim=1)
        sums = torch.zeros_like(c).index_add_(0, label, x)
        count = torch.bincount(label, minlength=nlist).to(x.dtype)[:, None]
        c = torch.where(count > 0, sums / count.clamp(min=1), c)
        if metric == "cosine":
            c = c / c.norm(dim=1, keepdim=True).clamp(min=1e-12)
    return np.ascontiguousarray(c.numpy(), dtype=np.float32)


@dataclass(frozen=True)
class _Lists:
    """The inverted lists: row ids grouped by their nearest centroid (``members[start[l]:
    start[l + 1]]`` is list l), as IndexIVFFlat.add would file them."""

    members: np.ndarray
    start: np.ndarray

    @classmethod
    def build(cls, own: np.ndarray, nlist: int) -> _Lists:
        return cls(np.argsort(own, kind="stable"), _bounds(own, nlist))


def _bounds(labels: np.ndarray, nlist: int) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(np.bincount(labels, minlength=nlist))])


def _ivf_search(
    Xf: np.ndarray, lists: _Lists, rows: np.ndarray, probes: np.ndarray, k: int, metric: str
) -> np.ndarray:
    """What IndexIVFFlat.search returns for queries ``Xf[rows]`` probing the lists ``probes``
    (m, nprobe), computed list by list: every query that probes list l is compared with the
    list's rows in one BLAS product, and a running top-(k+1) per query is merged. Here every
    row is a query, so each list is read once for hundreds of queries; IndexIVFFlat.search
    scans lists query by query: 0.5-0.9 GFLOP/s measured here against 16-19 for BLAS.

    A query whose probed lists hold fewer than k+1 rows is answered exactly instead."""
    m, nprobe = probes.shape
    best_d = np.full((m, k + 1), np.inf, dtype=np.float32)
    best_i = np.full((m, k + 1), -1, dtype=np.int64)
    flat = probes.ravel()
    by_list = np.argsort(flat, kind="stable")
    qstart = _bounds(flat, len(lists.start) - 1)
    for lst in np.flatnonzero(np.diff(qstart)):
        queries = by_list[qstart[lst] : qstart[lst + 1]] // nprobe
        base = lists.members[lists.start[lst] : lists.start[lst + 1]]
        if len(base) == 0:
            continue
        dist, found = _block_knn(Xf[rows[queries]], Xf[base], k + 1, metric)
        _merge(best_d, best_i, queries, dist, base[found])
    order = np.argsort(best_d, axis=1, kind="stable")
    best_i = np.take_along_axis(best_i, order, axis=1)
    short = (best_i < 0).any(axis=1)
    out = np.empty((m, k), dtype=np.int64)
    out[~short] = _drop_self(best_i[~short], rows[~short], k)
    if short.any():
        out[short] = _exact(Xf, rows[short], k, metric)
    return out


def _block_knn(Q: np.ndarray, B: np.ndarray, k: int, metric: str):
    """The min(k, len(B)) nearest rows of ``B`` for each row of ``Q``, unsorted, from one BLAS
    product: (scores, indices), smaller = nearer. For l2 the score omits |q|^2, a constant per
    query, so scores compare across blocks of the same query. torch's fused ``addmm`` and
    multi-threaded ``topk`` (1.35x numpy's product and ``argpartition`` for the whole search
    at 100,000 x 768, the same neighbours for 99.999% of the rows); not faiss.knn: the blocks
    are small and many, and each faiss call opens an OpenMP parallel region whose spinning
    threads stall for whole time slices when other processes share the cores (measured 10x
    slower on a loaded 2-core machine). numpy's product and ``argpartition`` when the block is
    too small to pay for importing torch."""
    torch = torch_for(Q.shape[0] * B.shape[0])
    if torch is None:
        return _block_knn_numpy(Q, B, k, metric)
    q, b = torch.from_numpy(np.ascontiguousarray(Q)), torch.from_numpy(np.ascontiguousarray(B))
    if metric == "l2":
        score = torch.addmm((b * b).sum(dim=1)[None, :], q, b.T, beta=1.0, alpha=-2.0)
    else:
        score = -(q @ b.T)
    if k >= B.shape[0]:
        return score.numpy(), np.broadcast_to(np.arange(B.shape[0]), score.shape)
    dist, top = torch.topk(score, k, dim=1, largest=False, sorted=False)
    return dist.numpy(), top.numpy()


def _block_knn_numpy(Q: np.ndarray, B: np.ndarray, k: int, metric: str):
    """:func:`_block_knn` in numpy."""
    if metric == "l2":
        score = (B * B).sum(axis=1)[None, :] - 2.0 * (Q @ B.T)
    else:
        score = -(Q @ B.T)
    if k >= B.shape[0]:
        return score, np.broadcast_to(np.arange(B.shape[0]), score.shape)
    top = np.argpartition(score, k - 1, axis=1)[:, :k]
    return np.take_along_axis(score, top, axis=1), top


def _merge(best_d, best_i, queries, dist, found) -> None:
    """Keep, for each of ``queries``, the k+1 nearest of its running best and the new ones."""
    keep = best_d.shape[1]
    cand_d = np.concatenate([best_d[queries], dist], axis=1)
    cand_i = np.concatenate([best_i[queries], found], axis=1)
    top = np.argpartition(cand_d, keep - 1, axis=1)[:, :keep]
    best_d[queries] = np.take_along_axis(cand_d, top, axis=1)
    best_i[queries] = np.take_along_axis(cand_i, top, axis=1)


def _tune_nprobe(
    Xf: np.ndarray, lists: _Lists, probes: np.ndarray, k: int, metric: str, seed: int
) -> int:
    """The smallest nprobe of 1, 2, 4, ... whose recall@k on a seeded tuning sample of 500
    rows reaches TUNE_TARGET, at most the cap (the number of columns of ``probes``)."""
    n, cap = probes.shape
    rows = np.sort(
        np.random.default_rng([seed, 2]).choice(n, size=min(TUNE_QUERIES, n), replace=False)
    )
    truth = _exact(Xf, rows, k, metric)
    nprobe = 1
    while nprobe < cap:
        found = _ivf_search(Xf, lists, rows, probes[rows, :nprobe], k, metric)
        if _recall(found, truth) >= TUNE_TARGET:
            break
        nprobe = min(2 * nprobe, cap)
    return nprobe


def _recall(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean over rows of |found ∩ truth| / k (recall@k)."""
    return float(np.mean(_shared_counts(found, truth)) / truth.shape[1])


def _shared_counts(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per row, how many indices two (n, k) neighbour arrays share (rows of distinct indices)."""
    both = np.sort(np.concatenate([a, b], axis=1), axis=1)
    return np.count_nonzero(both[:, 1:] == both[:, :-1], axis=1)


def _sorted_rows(a: np.ndarray, name: str) -> np.ndarray:
    """``a`` as an (n, k) integer array with each row sorted; a row that names a neighbour
    twice is refused (the Jaccard formula counts sets)."""
    a = np.asarray(a)
    if a.ndim != 2 or a.shape[1] == 0 or not np.issubdtype(a.dtype, np.integer):
        raise ValueError(
            f"{name} must be an (n, k) integer array of neighbour indices with k >= 1, "
            f"got shape {a.shape} and dtype {a.dtype}; pass Neighbors.indices."
        )
    s = np.sort(a, axis=1)
    if (s[:, 1:] == s[:, :-1]).any():
        raise ValueError(
            f"{name} lists the same neighbour twice in a row; each row must hold k distinct "
            "indices, as nearest() returns."
        )
    return s
