"""The three steps of ingest as plain functions (the Prefect tasks are thin wrappers).

* :func:`prepare` lists the source, then creates the store, or reopens it to resume when it
  holds the same input (same input hash); ``overwrite`` rebuilds it.
* :func:`fill_shards` reads, checksums, decodes and resizes the rows of a batch of shards and
  writes them, shard by shard, marker last (the write of one shard overlaps the decode of the
  next); :func:`fill_shard` does one. Bad files are quarantined with their reason, never
  raised; only I/O on the store itself raises (and is retried by the task).
* :func:`finalize` runs once every shard is committed: flags duplicate files and writes the
  complete manifest.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import islice

import numpy as np
import pyarrow as pa
from pydantic import BaseModel

from speclens.datasets import mnist, sample
from speclens.datasets.decode import (
    DEFAULT_MAX_PIXELS,
    POLICIES,
    SourceBytes,
    decode_image,
    read_source,
    sha256_hex,
)
from speclens.datasets.sources import IngestSource, plan_source
from speclens.errors import InputError
from speclens.storage import urls
from speclens.storage.dataset_store import (
    STATUS_OK,
    STATUS_QUARANTINED,
    DatasetStore,
    ShardRows,
    input_hash,
    store_state,
)

#: Files read (and checksummed) ahead of the decode, on a reader thread; 0 reads inline.
READ_AHEAD = 8


class IngestOptions(BaseModel):
    image_size: int | None = None  # None: 64 for the sample, 28 for mnist, 224 otherwise
    shard_size: int = 256
    resize_policy: str = "center-crop"
    max_pixels: int = DEFAULT_MAX_PIXELS


def store_config(source: IngestSource, options: IngestOptions) -> dict:
    size = options.image_size or source.default_image_size
    if size < 1 or options.shard_size < 1 or options.max_pixels < 1:
        raise InputError(
            "--size, --shard-size and --max-pixels must be positive; pass values >= 1."
        )
    if options.resize_policy not in POLICIES:
        raise InputError(
            f"resize policy {options.resize_policy!r} is unknown; pass one of {POLICIES}."
        )
    return {
        "image_size": int(size),
        "shard_size": int(options.shard_size),
        "resize_policy": options.resize_policy,
        "max_pixels": int(options.max_pixels),
    }


def prepare(
    source: IngestSource, out: str, options: IngestOptions, overwrite: bool = False
) -> dict:
    """Plan ``source`` into the store at ``out``. Returns n, shards, pending shards, hash."""
    config = store_config(source, options)
    state = store_state(out)
    if state == "foreign":
        raise InputError(
            f"--out {out} already holds files that are not a speclens dataset store; "
            "choose an empty or new location."
        )
    plan = plan_source(source)
    digest = input_hash(plan.table, config)
    resumed = False
    if state == "planned" and not overwrite:
        store = DatasetStore.open(out, "r+")
        if store.input_hash != digest:
            raise InputError(
                f"--out {out} holds a dataset built from a different input or settings "
                f"({store.meta['source'].get('kind')}, {store.config}); pass --overwrite to "
                "rebuild it or choose another --out."
            )
        resumed = True
    else:
        store = DatasetStore.create(
            out,
            plan=plan.table,
            config=config,
            source=plan.source,
            label_names=plan.label_names,
            factor_names=plan.factor_names,
            dropped=plan.dropped,
        )
    pending = store.pending()
    return {
        "out": out,
        "n_samples": store.n_samples,
        "n_shards": store.n_shards,
        "pending": pending,
        "pending_rows": sum(b - a for a, b in map(store.shard_range, pending)),
        "input_hash": digest,
        "resumed": resumed,
        "dropped": plan.dropped,
    }


def fill_shard(out: str, shard_id: int) -> dict:
    """Ingest one shard and commit it; returns its marker (counts, reasons, seconds)."""
    markers, failed = fill_shards(out, [shard_id])
    if failed:
        raise failed[shard_id]
    return markers[0]


def fill_shards(
    out: str, shard_ids: Sequence[int], *, skip_committed: bool = False
) -> tuple[list[dict], dict[int, Exception]]:
    """Ingest and commit several shards, one after another, in one call (one ingest task).

    The store is opened once, and each shard's write (Zarr compression of its images, its
    row arrays, captions, then its marker) runs on a writer thread while the next shard is
    read and decoded (a shard's write waits for the previous one: at most two shards are in
    memory). Every shard still has exactly one writer, and its marker is written last.
    ``skip_committed``: a shard that already has a valid marker is not redone (a retried
    task) and its marker is returned. Returns the markers, and the exception of every shard
    that failed (a failed shard does not stop the others).
    """
    store = DatasetStore.open(out, "r+")
    markers: list[dict] = []
    failed: dict[int, Exception] = {}
    writing: tuple[int, Future] | None = None

    def finish() -> None:
        shard_id, future = writing
        try:
            markers.append(future.result())
        except Exception as exc:  # the store's I/O, reported with the shard
            failed[shard_id] = exc

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-write") as writer:
        for shard_id in shard_ids:
            try:
                done = store.marker(shard_id) if skip_committed else None
                if done is not None:
                    markers.append(done)
                    continue
                rows, stats = shard_rows(store, shard_id)
            except Exception as exc:
                failed[shard_id] = exc
                continue
            if writing is not None:
                finish()
            writing = (shard_id, writer.submit(store.write_shard, shard_id, rows, stats))
        if writing is not None:
            finish()
    order = {shard_id: i for i, shard_id in enumerate(shard_ids)}
    return sorted(markers, key=lambda m: order[m["shard"]]), failed


def committed_markers(out: str, shard_ids: Sequence[int]) -> dict[int, dict | None]:
    """``{shard_id: marker, or None when the shard is not committed}``; None for all of
    them when the store cannot be opened."""
    try:
        store = DatasetStore.open(out)
    except (OSError, InputError):
        return dict.fromkeys(shard_ids)
    return {shard_id: store.marker(shard_id) for shard_id in shard_ids}


def shard_rows(store: DatasetStore, shard_id: int) -> tuple[ShardRows, dict]:
    """Read, checksum, decode and resize one shard's rows (nothing is written); the rows and
    the marker's stats (bytes read, seconds)."""
    t0 = time.perf_counter()
    plan = store.plan_rows(shard_id)
    start, stop = store.shard_range(shard_id)
    k, size, cfg = stop - start, store.image_size, store.config
    ids = plan.column("sample_id").to_pylist()
    sources = [urls.from_bytes(b) for b in plan.column("source").to_pylist()]
    notes = plan.column("note").to_pylist()
    images = np.zeros((k, size, size, 3), dtype=np.uint8)
    sha, status, reason = [""] * k, [STATUS_OK] * k, [""] * k
    conversion = list(notes)
    factors: dict[str, np.ndarray] = {}
    bytes_read = 0
    if store.meta["source"]["kind"] == "sample":
        factors = {name: plan.column(f"factor_{name}").to_numpy() for name in sample.FACTOR_NAMES}
        images[:] = sample.render(
            sample.SampleFactors(**factors),
            np.arange(start, stop),
            int(store.meta["source"]["seed"]),
            size,
        )
        sha = [sha256_hex(img.tobytes()) for img in images]
    elif store.meta["source"]["kind"] == "mnist":
        images[:] = mnist.render([mnist.row_of(s) for s in ids], size)
        sha = [sha256_hex(img.tobytes()) for img in images]
    else:
        bytes_read = _read_files(sources, notes, cfg, images, sha, status, reason, conversion)
    caps = plan.column("captions").to_pylist()
    rows = ShardRows(
        images=images,
        sample_id=ids,
        source_uri=[urls.printable(s)[0] for s in sources],
        label=plan.column("label").to_numpy(),
        caption=[cs[0] if cs else "" for cs in caps],
        sha256=sha,
        status=status,
        reason=reason,
        conversion=conversion,
        captions=_captions_table(ids, caps),
        factors=factors,
    )
    return rows, {"bytes_read": bytes_read, "seconds": round(time.perf_counter() - t0, 4)}


def _read_files(sources, notes, cfg, images, sha, status, reason, conversion) -> int:
    """Read, checksum and decode each source file into ``images`` (row by row), filling the
    row lists in place; a bad file quarantines its row. Returns the bytes read. Files are
    read and checksummed :data:`READ_AHEAD` files ahead on a reader thread (both release
    the GIL), so this thread only decodes."""
    bytes_read, size = 0, images.shape[1]
    for j, (got, digest) in enumerate(_ahead(_read_and_hash, sources, READ_AHEAD)):
        if got.reason:
            status[j], reason[j] = STATUS_QUARANTINED, got.reason
            continue
        bytes_read += len(got.data)
        sha[j] = digest
        decoded = decode_image(
            got.data, size, policy=cfg["resize_policy"], max_pixels=cfg["max_pixels"]
        )
        if decoded.image is None:
            status[j], reason[j] = STATUS_QUARANTINED, decoded.reason
        else:
            images[j] = decoded.image
            conversion[j] = "; ".join(c for c in (notes[j], *decoded.conversions) if c)
    return bytes_read


def _read_and_hash(url: str) -> tuple[SourceBytes, str]:
    got = read_source(url)
    return got, "" if got.reason else sha256_hex(got.data)


def _ahead(fn, items: Sequence, window: int) -> Iterator:
    """``fn(item)`` for each item in order, computed up to ``window`` items ahead on one
    thread (inline when ``window`` is 0)."""
    if window < 1:
        yield from map(fn, items)
        return
    it = iter(items)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-read") as pool:
        queue = deque(pool.submit(fn, item) for item in islice(it, window))
        while queue:
            result = queue.popleft().result()
            queue.extend(pool.submit(fn, item) for item in islice(it, 1))
            yield result


def _captions_table(ids: list[str], caps: list[list[str]]) -> pa.Table:
    """Every caption of a shard's rows: sample_id, caption_index, caption."""
    return pa.table(
        {
            "sample_id": [sid for sid, cs in zip(ids, caps, strict=True) for _ in cs],
            "caption_index": pa.array([i for cs in caps for i in range(len(cs))], pa.int32()),
            "caption": [c for cs in caps for c in cs],
        }
    )


def finalize(out: str) -> dict:
    """Flag duplicates and write the complete manifest; needs every shard committed."""
    store = DatasetStore.open(out, "r+")
    if store.pending():
        return store.summary()
    totals = store.marker_totals()
    duplicates = store.mark_duplicates()
    counts, reasons = Counter(totals["counts"]), Counter(totals["reasons"])
    counts[STATUS_OK] -= duplicates
    counts[STATUS_QUARANTINED] += duplicates
    if duplicates:
        reasons["duplicate"] += duplicates
    store.write_manifest(
        {
            "state": "complete",
            "counts": dict(counts),
            "reasons": dict(reasons),
            "conversions": totals["conversions"],
            "duplicates": duplicates,
            "bytes_read": totals["bytes_read"],
            "completed_at": time.time(),
        }
    )
    return store.summary()
