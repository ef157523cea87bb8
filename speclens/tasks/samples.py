"""The ``samples`` stage of compare: per run, every sample's mode scores (saved by the scoring
pass as ``scores.npz``), its local agreement and its place on a 2-D map, saved as
``samples.npz`` in the run's folder for :mod:`speclens.tasks.publish` to write as the
warehouse ``samples`` table.

* **Local agreement** (Embedding Comparator's per-sample measure): the Jaccard overlap of the
  sample's k nearest neighbours in X and in Y, from :func:`speclens.explore.nearest` (exact
  up to ``EXACT_MAX`` rows, approximate with its measured recall above). It depends on the
  two embeddings only, so the runs of a bandwidth sweep share one computation. The vectors
  are read here, in the flow's process, one embedding at a time (n x d float32 each: 200 MB
  for 100,000 rows of 512 dimensions); ``--no-local-agreement`` skips it (a million rows).
* **Map**: UMAP of the run's joint mode scores (:func:`speclens.explore.mode_map`): the
  modes are what the comparison found, so samples that one mode ties together sit together
  and the map is colored by mode; each embedding's own UMAP would show its geometry, not
  the difference. At most ``map_points`` rows (a seeded sample above).
"""

from __future__ import annotations

import logging
import time

import numpy as np
from prefect import get_run_logger, task
from prefect.exceptions import MissingContextError

from speclens.storage import urls
from speclens.storage.arrays import load_npz, save_npz
from speclens.storage.embedding_store import EmbeddingStore


def read_rows(url: str, rows: np.ndarray) -> np.ndarray:
    """The vectors of the sorted row indices ``rows`` of the embedding store at ``url``
    (float32; the whole store is read when the rows cover most of it)."""
    store = EmbeddingStore.open(url)
    vectors, _ = store.rows()
    return np.ascontiguousarray(vectors[rows], dtype=np.float32)


def agreement(x_url: str, y_url: str, rows: np.ndarray, params) -> dict:
    """Each row's local agreement and how its neighbours were found."""
    from speclens.explore.neighbors import local_agreement, nearest

    k = min(params.neighbors, len(rows) - 1)
    found = []
    for url, kernel in ((x_url, params.kernel_x_used), (y_url, params.kernel_y_used)):
        metric = "cosine" if kernel == "cosine" else "l2"
        found.append(nearest(read_rows(url, rows), k, metric=metric, seed=params.seed))
    nx, ny = found
    return {
        "local_agreement": local_agreement(nx.indices, ny.indices),
        "neighbors_method": np.array(nx.method),  # the same n: the same way on both sides
        "neighbors_k": np.int64(k),
        "neighbors_recall": np.float64(min(nx.recall, ny.recall)),  # exact: 1.0
    }


def run_map(scores: np.ndarray, params) -> dict:
    """The run's 2-D map of its mode scores (empty arrays when ``map_points`` is 0)."""
    from speclens.explore.map2d import mode_map

    if not params.map_points or scores.shape[0] < 3:
        return {}
    made = mode_map(scores, seed=params.seed, max_points=params.map_points)
    return {"map_xy": made.xy, "map_method": np.array(made.method)}


@task(name="samples")
def sample_stage(x_url: str, y_url: str, run_urls: list[str], params) -> list[str]:
    """Each run's ``samples.npz``: rows, local agreement (shared by the runs) and map."""
    try:
        logger = get_run_logger()
    except MissingContextError:  # called outside a flow (the benchmarks, a notebook)
        logger = logging.getLogger("speclens.samples")
    first = load_npz(urls.join(run_urls[0], "scores.npz"))
    rows = first["rows"]
    shared = {}
    if params.local_agreement and len(rows) > 2:
        t0 = time.perf_counter()
        shared = agreement(x_url, y_url, rows, params)
        logger.info(
            "local agreement of %d samples (%s, k=%d): %.1f s",
            *(len(rows), shared["neighbors_method"], shared["neighbors_k"]),
            time.perf_counter() - t0,
        )
    out = []
    for url in run_urls:
        scores = load_npz(urls.join(url, "scores.npz"))
        if not np.array_equal(scores["rows"], rows):  # one read of the rows for every run
            raise RuntimeError(f"{url}: the runs of one sweep scored different rows.")
        arrays = {"rows": rows, **shared, **run_map(scores["scores"], params)}
        out.append(save_npz(urls.join(url, "samples.npz"), **arrays))
    return out
