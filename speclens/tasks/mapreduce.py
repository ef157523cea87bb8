"""The distributed passes of compare, as pure block functions plus a Dask tree reduction.

Shape after ``dask.array.reduction``: ``block_gram`` (chunk) maps one block of rows of two
embedding stores to a Gram state, ``merge_states`` (combine) adds states pairwise up a tree,
and the engine's ``SPEC.solve`` (aggregate) finishes on the client. Blocks are dataset shards,
so each block reads whole chunks. Workers receive URLs and row ranges, never arrays: they read
the rows and the saved frequencies themselves. The functions run anywhere (tests call them
with no cluster); :func:`gram_mapreduce` and :func:`members_mapreduce` run them on a Dask
client.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from speclens.spec import GramAccumulator, GramState, feature_map_from_state, merge_states
from speclens.spec.scores import extremes, merge_extremes, signs_from_extremes
from speclens.storage.arrays import load_npz
from speclens.storage.embedding_store import EmbeddingStore


@dataclass(frozen=True)
class Block:
    x_url: str
    y_url: str
    start: int
    stop: int


def blocks_for(x_url: str, y_url: str, n_rows: int, block_rows: int) -> list[Block]:
    return [
        Block(x_url, y_url, a, min(a + block_rows, n_rows)) for a in range(0, n_rows, block_rows)
    ]


@functools.lru_cache(maxsize=8)
def load_feature_maps(freq_url: str):
    """The feature maps saved once by the compare flow (cached per worker process)."""
    arrays = load_npz(freq_url)
    maps = []
    for side in ("x", "y"):
        state = {k[len(side) + 1 :]: v for k, v in arrays.items() if k.startswith(side + "_")}
        state = {k: (v.item() if v.ndim == 0 else v) for k, v in state.items()}
        state["kernel"] = str(state["kernel"])
        maps.append(feature_map_from_state(state))
    return tuple(maps)


def read_pair(block: Block) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows of the block valid in both stores: (x, y, global row indices)."""
    x, vx = EmbeddingStore.open(block.x_url).rows(block.start, block.stop)
    y, vy = EmbeddingStore.open(block.y_url).rows(block.start, block.stop)
    keep = np.flatnonzero(vx & vy)
    return x[keep], y[keep], keep + block.start


def block_gram(block: Block, freq_url: str, dtype: str = "float32") -> GramState:
    """Chunk step: the Gram state of one block (an empty state when no row is valid)."""
    fx, fy = load_feature_maps(freq_url)
    acc = GramAccumulator(fx, fy, dtype=dtype)
    x, y, _ = read_pair(block)
    if x.shape[0]:
        acc.update(x, y)
    return acc.state()


def block_members(
    block: Block, freq_url: str, weights: np.ndarray, k: int, dtype: str = "float32"
) -> dict:
    """Scoring step for one block: per mode the signed extreme entry and the k best rows at
    either end (the sign of each mode is only known once every block is seen)."""
    fx, fy = load_feature_maps(freq_url)
    x, y, rows = read_pair(block)
    n_modes = weights.shape[1]
    if rows.size == 0:
        empty = np.empty((n_modes, 0))
        return {
            "extremes": np.zeros(n_modes),
            "rows_hi": empty.astype(np.int64),
            "hi": empty,
            "rows_lo": empty.astype(np.int64),
            "lo": empty,
        }
    acc = GramAccumulator(fx, fy, dtype=dtype)
    phi = acc.features(
        np.ascontiguousarray(x, dtype=acc.dtype), np.ascontiguousarray(y, dtype=acc.dtype)
    )
    scores = phi.astype(np.float64) @ weights
    kk = min(k, rows.size)
    hi = np.argsort(-scores, axis=0, kind="stable")[:kk].T  # (modes, kk)
    lo = np.argsort(scores, axis=0, kind="stable")[:kk].T
    cols = np.arange(n_modes)[:, None]
    return {
        "extremes": extremes(scores),
        "rows_hi": rows[hi],
        "hi": scores[hi, cols],
        "rows_lo": rows[lo],
        "lo": scores[lo, cols],
    }


def merge_members(a: dict, b: dict, k: int) -> dict:
    """Combine step of the scoring pass: keep the k best at each end, and the larger extreme."""
    out = {"extremes": merge_extremes(a["extremes"], b["extremes"])}
    for rows_key, key, sign in (("rows_hi", "hi", -1.0), ("rows_lo", "lo", 1.0)):
        rows = np.concatenate([a[rows_key], b[rows_key]], axis=1)
        vals = np.concatenate([a[key], b[key]], axis=1)
        order = np.lexsort((rows, sign * vals), axis=1)[:, :k]  # best first, ties by row
        out[rows_key] = np.take_along_axis(rows, order, axis=1)
        out[key] = np.take_along_axis(vals, order, axis=1)
    return out


def finish_members(merged: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Aggregate step: apply each mode's sign; (signs, member rows (modes, k), scores)."""
    signs = signs_from_extremes(merged["extremes"])
    use_hi = signs > 0
    rows = np.where(use_hi[:, None], merged["rows_hi"], merged["rows_lo"])
    scores = np.where(use_hi[:, None], merged["hi"], -merged["lo"])
    return signs, rows, scores


def _tree(parts: list, combine, fan_in: int = 4):
    from dask import delayed

    while len(parts) > 1:
        parts = [
            delayed(combine)(*parts[i : i + fan_in]) if len(parts[i : i + fan_in]) > 1 else parts[i]
            for i in range(0, len(parts), fan_in)
        ]
    return parts[0]


def gram_mapreduce(client, blocks: list[Block], freq_url: str, dtype: str = "float32") -> GramState:
    """The Gram of all blocks: one ``block_gram`` task per block, merged up a tree on the
    cluster; only the final m x m state comes back."""
    from dask import delayed

    parts = [delayed(block_gram, pure=True)(b, freq_url, dtype) for b in blocks]
    return client.compute(_tree(parts, merge_states)).result()


def members_mapreduce(
    client, blocks: list[Block], freq_url: str, weights: np.ndarray, k: int, dtype: str = "float32"
):
    """Top-k members of every mode with the sign convention applied."""
    from dask import delayed

    w = client.scatter(weights, broadcast=True)
    parts = [delayed(block_members, pure=True)(b, freq_url, w, k, dtype) for b in blocks]
    merged = client.compute(
        _tree(parts, lambda *ps: functools.reduce(lambda a, b: merge_members(a, b, k), ps))
    ).result()
    return finish_members(merged)
