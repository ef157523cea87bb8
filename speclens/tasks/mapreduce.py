"""The distributed passes of compare, as pure block functions plus a Dask tree reduction.

Shape after ``dask.array.reduction``: ``block_gram`` (chunk) maps one block of rows of two
embedding stores to a Gram state per run (the runs of a bandwidth sweep share the read), ``merge_states`` (combine) adds states pairwise up a tree,
and the engine's ``SPEC.solve`` (aggregate) finishes on the client. Blocks are dataset shards,
so each block reads whole chunks. Workers receive URLs and row ranges, never arrays: they read
the rows and the saved frequencies themselves. The functions run anywhere (tests call them
with no cluster); :func:`gram_mapreduce` and :func:`members_mapreduce` run them on a Dask
client.

The frequencies travel as :class:`Frequencies`, their file's URL *and* sha256: a worker
caches the feature maps by digest, not by location, so a rerun of a run id that rewrote the
file at the same URL (another bandwidth, feature count or seed) can never be served the old
maps by a long-lived worker, and Dask's task keys (which hash the arguments) differ too.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass

import numpy as np

from speclens.spec import GramAccumulator, GramState, feature_map_from_state, merge_states
from speclens.spec.features import shared_projections
from speclens.spec.scores import extremes, merge_extremes, signs_from_extremes
from speclens.storage import urls
from speclens.storage.arrays import load_npz_bytes, save_npz
from speclens.storage.embedding_store import EmbeddingStore


@dataclass(frozen=True)
class Block:
    x_url: str
    y_url: str
    start: int
    stop: int


@dataclass(frozen=True)
class Frequencies:
    """The saved feature maps of a run: where (``url``) and what (``sha256`` of the file)."""

    url: str
    sha256: str


def save_frequencies(url: str, feature_x, feature_y) -> Frequencies:
    """Save two fitted feature maps as one ``.npz`` (``x_*`` and ``y_*`` arrays)."""
    arrays = {f"x_{k}": v for k, v in feature_x.get_state().items() if v is not None}
    arrays.update({f"y_{k}": v for k, v in feature_y.get_state().items() if v is not None})
    save_npz(url, **arrays)
    return Frequencies(url, urls.sha256(url))


def blocks_for(x_url: str, y_url: str, n_rows: int, block_rows: int) -> list[Block]:
    return [
        Block(x_url, y_url, a, min(a + block_rows, n_rows)) for a in range(0, n_rows, block_rows)
    ]


@functools.lru_cache(maxsize=8)
def load_feature_maps(frequencies: Frequencies):
    """The feature maps saved by the compare flow, cached per worker process by their digest;
    a file whose bytes no longer match the digest is refused (another run rewrote it)."""
    data = urls.read_bytes(frequencies.url)
    if hashlib.sha256(data).hexdigest() != frequencies.sha256:
        raise RuntimeError(
            f"{frequencies.url} changed while the run read it (its sha256 is no longer "
            f"{frequencies.sha256[:12]}); another compare is writing the same run id, so rerun "
            f"this one alone."
        )
    arrays = load_npz_bytes(data)
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


def block_gram(
    blocks: Block | tuple[Block, ...], frequencies: tuple[Frequencies, ...], dtype: str = "float32"
) -> tuple[GramState, ...]:
    """Chunk step: the Gram state of one block, or of several folded one after another, for
    each run's frequencies (a bandwidth sweep's runs share each read of the rows; an empty
    state when no row is valid)."""
    blocks = blocks if isinstance(blocks, tuple) else (blocks,)
    accs = []
    for f in frequencies:
        fx, fy = load_feature_maps(f)
        accs.append(GramAccumulator(fx, fy, dtype=dtype))
    for block in blocks:
        x, y, _ = read_pair(block)
        if x.shape[0]:
            x, y, projections = sweep_inputs(x, y, accs)
            for acc, proj in zip(accs, projections, strict=True):
                acc.update(x, y, proj)
    return tuple(acc.state(copy=False) for acc in accs)  # the accumulators end here


def sweep_inputs(x: np.ndarray, y: np.ndarray, accs: list) -> tuple:
    """A block's rows in the accumulators' dtype and, per accumulator, each side's ``x @ W``:
    one product per side serves a sweep's runs."""
    x, y = (np.ascontiguousarray(a, dtype=accs[0].dtype) for a in (x, y))
    px = shared_projections(x, [a.feature_x for a in accs])
    py = shared_projections(y, [a.feature_y for a in accs])
    return x, y, list(zip(px, py, strict=True))


def task_batches(client, blocks: list[Block], min_rows: int = 1) -> list[tuple[Block, ...]]:
    """The blocks in about two batches per worker thread, balanced, and each of at least
    ``min_rows`` rows (the feature width m: a row costs m^2 to accumulate, a state m^2 to move
    and merge, so a batch of fewer rows than m costs more to merge than to compute): a task
    folds its batch into one state per run, so the cluster moves and merges a few m x m states
    per run, not one per block."""
    threads = max(1, sum(client.nthreads().values()))
    rows = sum(b.stop - b.start for b in blocks)
    n = max(1, min(len(blocks), 2 * threads, rows // max(min_rows, 1)))
    edges = np.linspace(0, len(blocks), n + 1).round().astype(int)
    return [tuple(blocks[a:b]) for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a]


def merge_each(combine, *parts: tuple) -> tuple:
    """Combine the blocks' tuples (one entry per run) entry by entry."""
    return tuple(combine(*entries) for entries in zip(*parts, strict=True))


def block_members(
    block: Block,
    frequencies: tuple[Frequencies, ...],
    weights: tuple[np.ndarray, ...],
    k: int,
    dtype: str = "float32",
) -> tuple[dict, ...]:
    """Scoring step for one block, per run: each mode's signed extreme entry and the k best
    rows at either end (the sign of each mode is only known once every block is seen)."""
    x, y, rows = read_pair(block)
    if rows.size == 0:
        return tuple(top_parts(np.zeros((0, w.shape[1])), rows, k) for w in weights)
    accs = [GramAccumulator(*load_feature_maps(f), dtype=dtype) for f in frequencies]
    x, y, projections = sweep_inputs(x, y, accs)
    out = []
    for acc, w, proj in zip(accs, weights, projections, strict=True):
        phi = acc.features(x, y, proj=proj)
        out.append(top_parts(phi.astype(np.float64) @ w, rows, k))
    return tuple(out)


def top_parts(scores: np.ndarray, rows: np.ndarray, k: int) -> dict:
    """A block's part of the members of each score column: its signed extreme entry and the
    ``k`` best rows at either end (a column's sign is known once every block is seen)."""
    n_modes = scores.shape[1]
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


def merge_member_parts(k: int, *parts: dict) -> dict:
    """:func:`merge_members` over any number of block parts (one combine step of a tree)."""
    return functools.reduce(lambda a, b: merge_members(a, b, k), parts)


def finish_members(merged: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Aggregate step: apply each mode's sign; (signs, member rows (modes, k), scores)."""
    signs = signs_from_extremes(merged["extremes"])
    use_hi = signs > 0
    rows = np.where(use_hi[:, None], merged["rows_hi"], merged["rows_lo"])
    scores = np.where(use_hi[:, None], merged["hi"], -merged["lo"])
    return signs, rows, scores


def tree(parts: list, combine, fan_in: int = 4):
    from dask import delayed

    while len(parts) > 1:
        parts = [
            delayed(combine)(*parts[i : i + fan_in]) if len(parts[i : i + fan_in]) > 1 else parts[i]
            for i in range(0, len(parts), fan_in)
        ]
    return parts[0]


def gram_mapreduce(
    client,
    blocks: list[Block],
    frequencies: tuple[Frequencies, ...],
    dtype: str = "float32",
    min_rows: int = 1,
) -> tuple[GramState, ...]:
    """The Gram of all blocks for each run's frequencies: ``block_gram`` tasks over batches of
    blocks (each block's rows read once for every run), merged up a tree on the cluster; only
    the final m x m states come back."""
    from dask import delayed

    freq = tuple(frequencies)
    batches = task_batches(client, blocks, min_rows)
    parts = [delayed(block_gram, pure=True)(b, freq, dtype) for b in batches]
    return client.compute(tree(parts, functools.partial(merge_each, merge_states))).result()


def members_mapreduce(
    client,
    blocks: list[Block],
    frequencies: tuple[Frequencies, ...],
    weights: tuple[np.ndarray, ...],
    k: int,
    dtype: str = "float32",
) -> list[tuple]:
    """Per run: top-k members of every mode with the sign convention applied."""
    from dask import delayed

    w = client.scatter(tuple(weights), broadcast=True)
    parts = [delayed(block_members, pure=True)(b, tuple(frequencies), w, k, dtype) for b in blocks]
    combine = functools.partial(merge_each, functools.partial(merge_member_parts, k))
    merged = client.compute(tree(parts, combine)).result()
    return [finish_members(m) for m in merged]
