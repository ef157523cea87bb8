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

import contextlib
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
from speclens.tasks.local_client import IN_PROCESS, ThreadClient, local_workers


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


@contextlib.contextmanager
def dask_client(address: str):
    """A client of the Dask scheduler at ``address`` for the ``with`` block (for
    :data:`~speclens.tasks.local_client.IN_PROCESS`, threads of this process, no scheduler)."""
    if address == IN_PROCESS:
        yield ThreadClient(local_workers())
        return
    from distributed import Client

    client = Client(address, set_as_default=False, timeout="30s")
    try:
        yield client
    finally:
        client.close()


def take_pairs(block: Block, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows ``rows`` (global indices inside the block) of both stores."""
    x, _ = EmbeddingStore.open(block.x_url).rows(block.start, block.stop)
    y, _ = EmbeddingStore.open(block.y_url).rows(block.start, block.stop)
    local = np.asarray(rows) - block.start
    return x[local], y[local]


#: A row sample spread over more blocks than this is read on the cluster, a block per task
#: (a uniform sample of a large store touches every shard: reading it is a pass of
#: decompression); fewer are read in the calling process.
SAMPLE_BLOCKS_LOCAL = 8


def sample_pairs(
    blocks: list[Block], rows: np.ndarray, address: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Both stores' vectors of the sorted global row indices ``rows``, read block by block:
    on the Dask cluster at ``address`` when they span more than SAMPLE_BLOCKS_LOCAL blocks,
    else here."""
    starts = np.array([b.start for b in blocks])
    which = np.searchsorted(starts, rows, side="right") - 1
    parts = [(blocks[i], rows[which == i]) for i in np.unique(which)]
    if address is None or len(parts) <= SAMPLE_BLOCKS_LOCAL:
        read = [take_pairs(b, r) for b, r in parts]
    else:
        with dask_client(address) as client:
            futures = client.map(take_pairs, *zip(*parts, strict=True), pure=False)
            read = client.gather(futures)
    return np.concatenate([x for x, _ in read]), np.concatenate([y for _, y in read])


def block_gram(
    blocks: Block | tuple[Block, ...],
    frequencies: tuple[Frequencies, ...],
    dtype: str = "float32",
    device: str = "cpu",
) -> tuple[GramState, ...]:
    """Chunk step: the Gram state of one block, or of several folded one after another (the
    next block read while this one computes), for each run's frequencies (a bandwidth sweep's
    runs share each read of the rows; an empty state when no row is valid)."""
    accs = [accumulator(f, dtype, device) for f in frequencies]
    for _, (x, y, _) in read_ahead(as_blocks(blocks)):
        if x.shape[0]:
            x, y, projections = sweep_inputs(x, y, accs)
            for acc, proj in zip(accs, projections, strict=True):
                acc.update(x, y, proj)
    return tuple(acc.state(copy=False) for acc in accs)  # the accumulators end here


def as_blocks(blocks: Block | tuple[Block, ...]) -> tuple[Block, ...]:
    return blocks if isinstance(blocks, tuple) else (blocks,)


def read_ahead(blocks: tuple[Block, ...], read=read_pair):
    """``(block, read(block))`` for each block, the next block read in a thread while the
    caller computes on this one (zarr's decompression and the BLAS products release the GIL,
    so reading costs a pass almost nothing)."""
    if len(blocks) < 2:
        yield from ((b, read(b)) for b in blocks)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1, thread_name_prefix="speclens-read") as pool:
        pending = pool.submit(read, blocks[0])
        for i, block in enumerate(blocks):
            current = pending.result()
            if i + 1 < len(blocks):
                pending = pool.submit(read, blocks[i + 1])
            yield block, current


def accumulator(frequencies: Frequencies, dtype: str, device: str = "cpu") -> GramAccumulator:
    """An accumulator of a run's saved feature maps: numpy (BLAS SYRK) on the CPU, torch on
    a CUDA ``device`` ('auto': CUDA when this worker has it). On the CPU it keeps the rows
    while they are fewer than the features (a small compare's state is then its rows, not an
    m x m sum: at 10 rows and m = 4,000, 320 KB to save instead of 128 MB, and no
    factorization to solve)."""
    fx, fy = load_feature_maps(frequencies)
    torch_device = compute_device(device)
    if torch_device is None:
        return GramAccumulator(fx, fy, dtype=dtype, keep_rows=True)
    return GramAccumulator(fx, fy, dtype=dtype, backend="torch", device=torch_device)


def compute_device(device: str) -> str | None:
    """The torch device of the passes (None: numpy on the CPU) for ``CompareParams.device``."""
    if device == "cpu":
        return None
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else None
    if not torch.cuda.is_available():
        raise RuntimeError(
            f"device {device!r} was asked for the compare passes, but this Dask worker has no "
            f"CUDA device; run the workers on a GPU machine or use device 'cpu' or 'auto'."
        )
    return device


def sweep_inputs(x: np.ndarray, y: np.ndarray, accs: list) -> tuple:
    """A block's rows in the accumulators' dtype and, per accumulator, each side's ``x @ W``:
    one product per side serves a sweep's runs (numpy accumulators; a torch one projects on
    its device)."""
    x, y = (np.ascontiguousarray(a, dtype=accs[0].dtype) for a in (x, y))
    if accs[0].backend != "numpy":
        return x, y, [(None, None)] * len(accs)
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
    blocks: Block | tuple[Block, ...],
    frequencies: tuple[Frequencies, ...],
    weights: tuple[np.ndarray, ...],
    k: int,
    dtype: str = "float32",
    device: str = "cpu",
) -> tuple[dict, ...]:
    """Scoring step for one block (or several, the next read while this one computes), per
    run: each mode's signed extreme entry and the k best rows at either end (the sign of each
    mode is only known once every block is seen)."""
    accs = [accumulator(f, dtype, device) for f in frequencies]
    combine = functools.partial(merge_member_parts, k)
    empty = np.zeros(0, dtype=np.int64)
    parts = tuple(top_parts(np.zeros((0, w.shape[1])), empty, k) for w in weights)
    for _, (x, y, rows) in read_ahead(as_blocks(blocks)):
        if rows.size:
            x, y, projections = sweep_inputs(x, y, accs)
            new = tuple(
                top_parts(acc.scores(x, y, w, proj), rows, k)
                for acc, w, proj in zip(accs, weights, projections, strict=True)
            )
            parts = merge_each(combine, parts, new)
    return parts


def top_parts(scores: np.ndarray, rows: np.ndarray, k: int) -> dict:
    """A block's part of the members of each score column: its signed extreme entry, the
    ``k`` best rows at either end (a column's sign is known once every block is seen) and
    every row's scores in float32 (``all_rows``, ``all``: the ``samples`` table's)."""
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
        "all_rows": np.asarray(rows, dtype=np.int64),
        "all": np.asarray(scores, dtype=np.float32),
    }


def merge_members(a: dict, b: dict, k: int) -> dict:
    """Combine step of the scoring pass: keep the k best at each end, and the larger extreme;
    every row's scores are concatenated."""
    out = {"extremes": merge_extremes(a["extremes"], b["extremes"])}
    for rows_key, key, sign in (("rows_hi", "hi", -1.0), ("rows_lo", "lo", 1.0)):
        rows = np.concatenate([a[rows_key], b[rows_key]], axis=1)
        vals = np.concatenate([a[key], b[key]], axis=1)
        order = np.lexsort((rows, sign * vals), axis=1)[:, :k]  # best first, ties by row
        out[rows_key] = np.take_along_axis(rows, order, axis=1)
        out[key] = np.take_along_axis(vals, order, axis=1)
    out["all_rows"] = np.concatenate([a["all_rows"], b["all_rows"]])
    out["all"] = np.concatenate([a["all"], b["all"]])
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


def all_scores(merged: dict, signs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every scored row (ascending) and its scores (rows x modes, float32) with each mode's
    sign convention applied: the ``samples`` table's scores."""
    order = np.argsort(merged["all_rows"], kind="stable")
    return merged["all_rows"][order], merged["all"][order] * signs.astype(np.float32)


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
    device: str = "cpu",
) -> tuple[GramState, ...]:
    """The Gram of all blocks for each run's frequencies: ``block_gram`` tasks over batches of
    blocks (each block's rows read once for every run), merged up a tree on the cluster; only
    the final m x m states come back."""
    from dask import delayed

    freq = tuple(frequencies)
    batches = task_batches(client, blocks, min_rows)
    parts = [delayed(block_gram, pure=True)(b, freq, dtype, device) for b in batches]
    return client.compute(tree(parts, functools.partial(merge_each, merge_states))).result()


def members_mapreduce(
    client,
    blocks: list[Block],
    frequencies: tuple[Frequencies, ...],
    weights: tuple[np.ndarray, ...],
    k: int,
    dtype: str = "float32",
    device: str = "cpu",
) -> list[tuple]:
    """Per run: top-k members of every mode with the sign convention applied, and every row's
    scores (:func:`all_scores`); a task scores a batch of blocks: about two per worker thread."""
    from dask import delayed

    w = client.scatter(tuple(weights), broadcast=True)
    freq = tuple(frequencies)
    parts = [
        delayed(block_members, pure=True)(b, freq, w, k, dtype, device)
        for b in task_batches(client, blocks)
    ]
    combine = functools.partial(merge_each, functools.partial(merge_member_parts, k))
    merged = client.compute(tree(parts, combine)).result()
    return [(finish_members(m), all_scores(m, signs_from_extremes(m["extremes"]))) for m in merged]
