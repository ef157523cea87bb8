"""Prefect tasks of the embed flow: plan a store, embed one shard, finalize.

Tasks pass URLs, ids and counts; the arrays stay in the stores. The encoder is built once
per process and reused by every shard task that runs there.
"""

from __future__ import annotations

import functools
import os
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from prefect import get_run_logger, task

from speclens.errors import InputError
from speclens.storage import urls
from speclens.storage.dataset_store import STATUS_OK, DatasetStore
from speclens.storage.embedding_store import EmbeddingStore, check_replaceable
from speclens.tasks.checks import require_ingested
from speclens.tasks.retries import retry_on_io_error

#: Seconds to sleep after each shard: a fault-injection knob for the kill-and-resume tests.
DELAY_ENV = "SPECLENS_SHARD_DELAY_S"


@functools.lru_cache(maxsize=4)
def load_encoder(encoder_id: str, device: str, seed: int):
    from speclens.encoders import get_encoder

    return get_encoder(encoder_id, device=device, seed=seed)


def embedding_provenance(
    encoder, dataset: DatasetStore, normalize: bool, seed: int, batch_size: int
) -> dict:
    return {
        **encoder.provenance(),
        "normalisation": "l2" if normalize else "none",
        "seed": int(seed),
        "batch_size": int(batch_size),
        "dataset_url": dataset.url,
        "dataset_input_hash": dataset.input_hash,
        "layout_version": 1,
    }


@task(name="plan-embed")
def plan_embed(
    dataset_url: str,
    out: str,
    encoder_id: str,
    device: str,
    batch_size: int,
    normalize: bool,
    seed: int,
    overwrite: bool,
    entry: dict | None = None,
) -> dict:
    """Open the dataset, create (or reopen to resume) the embedding store; list pending shards.

    ``entry``: provenance laid over the encoder's when the store is created (e.g. the aligned
    entry of SPEC-align's fine-tune mode: its own encoder id and the checkpoint it embeds
    with)."""
    dataset = require_ingested(dataset_url)
    encoder = load_encoder(encoder_id, device, seed)
    resumed = EmbeddingStore.exists(out) and not overwrite
    if resumed:
        store = _reopen(out, encoder, dataset, normalize, seed)
    else:
        check_replaceable(out)
        urls.remove(out)
        prov = {
            **embedding_provenance(encoder, dataset, normalize, seed, batch_size),
            **(entry or {}),
        }
        store = EmbeddingStore.create(
            out,
            n_samples=dataset.n_samples,
            dim=encoder.dim,
            shard_size=dataset.shard_size,
            sample_id=dataset.sample_ids(),
            provenance=prov,
        )
    pending = store.pending()
    return {
        "out": out,
        "encoder_id": encoder.id,
        "dim": encoder.dim,
        "n_shards": store.n_shards,
        "n_samples": store.n_samples,
        "pending": pending,
        "resumed": resumed,
        "pending_rows": sum(store.shard_range(i)[1] - store.shard_range(i)[0] for i in pending),
    }


def _reopen(out: str, encoder, dataset: DatasetStore, normalize: bool, seed: int):
    """The store at ``out`` to resume, or one sentence when it holds another embedding."""
    store = EmbeddingStore.open(out)
    same = (
        store.encoder_id == encoder.id
        and store.dataset_input_hash == dataset.input_hash
        and store.meta.get("normalisation") == ("l2" if normalize else "none")
        and store.meta.get("seed") == seed
        and store.dim == encoder.dim
    )
    if not same:
        raise InputError(
            f"{out} already holds embeddings of another dataset, encoder or setting "
            f"({store.encoder_id}, normalisation {store.meta.get('normalisation')}); pass "
            f"--overwrite to replace it or choose another --out."
        )
    return store


def _batches(indices: np.ndarray, batch_size: int) -> list[np.ndarray]:
    return [indices[i : i + batch_size] for i in range(0, len(indices), batch_size)]


def _run_pipelined(encoder, inputs, batches, dim: int) -> tuple[np.ndarray, dict]:
    """Embed ``inputs[b]`` for each batch; the next batch is prepared on a loader thread
    while the current one runs on the device. Returns vectors and per-stage seconds.

    On a CPU device both steps would run on the same cores (torch already spreads each over
    all of them), so overlapping them only oversubscribes the cores; there each batch is
    prepared in this thread, just before its forward pass."""
    out = np.zeros((sum(len(b) for b in batches), dim), dtype=np.float32)
    timings = {"prepare_s": 0.0, "compute_s": 0.0}

    def prepare(batch):
        t0 = time.perf_counter()
        prepared = encoder.prepare(inputs(batch))
        return prepared, time.perf_counter() - t0

    row = 0
    if getattr(encoder.device, "type", None) == "cpu":
        for batch in batches:
            prepared, prep_s = prepare(batch)
            timings["prepare_s"] += prep_s
            t0 = time.perf_counter()
            out[row : row + len(batch)] = encoder.embed(prepared)
            timings["compute_s"] += time.perf_counter() - t0
            row += len(batch)
        return out, timings
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="speclens-loader") as pool:
        future = pool.submit(prepare, batches[0]) if batches else None
        for i, batch in enumerate(batches):
            prepared, prep_s = future.result()
            timings["prepare_s"] += prep_s
            if i + 1 < len(batches):
                future = pool.submit(prepare, batches[i + 1])
            t0 = time.perf_counter()
            out[row : row + len(batch)] = encoder.embed(prepared)
            timings["compute_s"] += time.perf_counter() - t0
            row += len(batch)
    return out, timings


def _normalise(v: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return np.divide(v, norms, out=np.full_like(v, np.nan), where=norms > 0)


@task(name="embed-shard", retries=2, retry_delay_seconds=1, retry_condition_fn=retry_on_io_error)
def embed_shard(
    dataset_url: str,
    out: str,
    encoder_id: str,
    shard_id: int,
    device: str,
    batch_size: int,
    normalize: bool,
    seed: int,
) -> dict:
    """Embed the ok rows of one dataset shard and commit it (rows, then marker)."""
    t_start = time.perf_counter()
    dataset = DatasetStore.open(dataset_url)
    store = EmbeddingStore.open(out, mode="r+")
    encoder = load_encoder(encoder_id, device, seed)
    start, stop = dataset.shard_range(shard_id)
    t0 = time.perf_counter()
    ok = dataset.array("status")[start:stop] == STATUS_OK
    embed_rows = _embed_captions if encoder.modality == "text" else _embed_images
    vectors, valid, captions_table, timings = embed_rows(
        encoder, dataset, start, stop, ok, batch_size, normalize
    )
    if "read_s" not in timings:
        timings["read_s"] = time.perf_counter() - t0 - timings["prepare_s"] - timings["compute_s"]
    n_bad = int((ok & ~valid).sum())
    t0 = time.perf_counter()
    stats = {
        "n_batches": -(-int(ok.sum()) // batch_size),
        "non_finite": n_bad,
        **{k: round(v, 4) for k, v in timings.items()},
    }
    marker = store.write_shard(shard_id, vectors, valid, stats, captions_table)
    marker["write_s"] = round(time.perf_counter() - t0, 4)
    marker["total_s"] = round(time.perf_counter() - t_start, 4)
    _log_shard(shard_id, marker, stats)
    if delay := float(os.environ.get(DELAY_ENV, "0") or 0):
        time.sleep(delay)
    return marker


def _log_shard(shard_id: int, marker: dict, stats: dict) -> None:
    nb = max(stats["n_batches"], 1)
    n_bad = stats["non_finite"]
    get_run_logger().info(
        "shard %d: %d rows in %d batches; per batch read %.4fs prepare %.4fs compute %.4fs "
        "write %.4fs%s",
        *(shard_id, marker["valid"], stats["n_batches"], stats["read_s"] / nb),
        *(stats["prepare_s"] / nb, stats["compute_s"] / nb, marker["write_s"] / nb),
        f"; {n_bad} row(s) gave non-finite vectors and are marked invalid" if n_bad else "",
    )


def _embed_images(
    encoder,
    dataset: DatasetStore,
    start: int,
    stop: int,
    ok: np.ndarray,
    batch_size: int,
    normalize: bool,
):
    """One vector per ok image of rows ``start:stop``; NaN (and invalid) elsewhere."""
    t0 = time.perf_counter()
    images = dataset.images(start, stop)
    read_s = time.perf_counter() - t0
    rows = np.flatnonzero(ok)
    vecs, timings = _run_pipelined(
        encoder, lambda b: images[b], _batches(rows, batch_size), encoder.dim
    )
    timings["read_s"] = read_s
    if normalize:
        vecs = _normalise(vecs)
    vectors = np.full((stop - start, encoder.dim), np.nan, dtype=np.float32)
    vectors[rows] = vecs
    return vectors, ok & np.isfinite(vectors).all(axis=1), None, timings


def _embed_captions(
    encoder,
    dataset: DatasetStore,
    start: int,
    stop: int,
    ok: np.ndarray,
    batch_size: int,
    normalize: bool,
):
    """One vector per caption, and per image the mean of its captions' vectors."""
    import pyarrow as pa
    import pyarrow.compute as pc

    ids = dataset.array("sample_id")[start:stop]
    caps = dataset.captions()
    caps = caps.filter(pc.is_in(caps["sample_id"], value_set=pa.array(list(ids[ok]))))
    texts = caps["caption"].to_pylist()
    vecs, timings = _run_pipelined(
        encoder,
        lambda b: [texts[i] for i in b],
        _batches(np.arange(len(texts)), batch_size),
        encoder.dim,
    )
    if normalize:
        vecs = _normalise(vecs)
    row_of = {sid: i for i, sid in enumerate(ids)}
    owner = np.array([row_of[s] for s in caps["sample_id"].to_pylist()], dtype=np.int64)
    sums = np.zeros((stop - start, encoder.dim), dtype=np.float64)
    np.add.at(sums, owner, vecs)
    counts = np.bincount(owner, minlength=stop - start)
    vectors = np.full((stop - start, encoder.dim), np.nan, dtype=np.float32)
    has = counts > 0
    vectors[has] = (sums[has] / counts[has, None]).astype(np.float32)
    valid = ok & has & np.isfinite(vectors).all(axis=1)
    table = pa.table(
        {
            "sample_id": caps["sample_id"],
            "caption_index": caps["caption_index"],
            "embedding": pa.FixedSizeListArray.from_arrays(pa.array(vecs.ravel()), encoder.dim),
        }
    )
    return vectors, valid, table, timings


@task(name="finalize-embed")
def finalize_embed(out: str) -> dict:
    store = EmbeddingStore.open(out, mode="r+")
    markers = store.markers()
    valid = sum(m["valid"] for m in markers.values())
    timings = {
        k: round(sum(m.get(k, 0.0) for m in markers.values()), 3)
        for k in ("read_s", "prepare_s", "compute_s")
    }
    manifest = store.write_manifest(
        {
            "state": "complete",
            "valid": valid,
            "invalid": store.n_samples - valid,
            "timings": timings,
        }
    )
    return {**manifest, "out": out}
