"""The rows every export format writes: a run's ``samples`` flattened for tools that do not read
lists (``score_0 .. score_{c-1}``), with the mode each sample belongs to said in words
(``mode_label``, ``mode_captured_by``), and each sample's image as a PNG thumbnail.

Rows come in batches (:data:`BATCH` samples): only one batch of thumbnails is in memory at a
time, whatever the size of the run, and the images of a batch are read from the dataset store
chunk by chunk (the samples are in ``sample_id`` order, the store's row order).
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from PIL import Image

from speclens.errors import InputError
from speclens.export.run import ExportRun

#: Samples per batch: thumbnails of one batch are in memory at a time.
BATCH = 1024
#: Default longest side of a thumbnail, in pixels (smaller images keep their size).
THUMBNAIL = 128
#: Threads that resize and PNG-encode a batch's thumbnails (zlib and the resize release the GIL).
THREADS = min(8, os.cpu_count() or 1)
#: The columns of ``samples`` copied as they are.
PLAIN = ("sample_id", "label", "caption", "top_mode")
AFTER = ("top_share", "local_agreement", "map_x", "map_y")


def flat_schema(n_modes: int) -> pa.Schema:
    """The flattened columns (no image): samples' columns, the top mode in words, one
    float64 score column per mode."""
    return pa.schema(
        [
            ("sample_id", pa.string()),
            ("label", pa.string()),
            ("caption", pa.string()),
            ("top_mode", pa.int32()),
            ("mode_label", pa.string()),
            ("mode_captured_by", pa.string()),
            *[(name, pa.float64()) for name in AFTER],
            *[(f"score_{j}", pa.float64()) for j in range(n_modes)],
        ]
    )


@dataclass
class Batch:
    """One batch of rows: the flat columns, the original score lists, and the thumbnails
    (PNG bytes, None for a sample without an image)."""

    table: pa.Table
    scores: pa.Array
    images: list[bytes | None]


def batches(
    er: ExportRun, thumbnail: int = THUMBNAIL, size: int | None = None, progress: bool = True
) -> Iterator[Batch]:
    """Every sample of the run, ``size`` (default :data:`BATCH`) at a time, with a progress
    bar of samples."""
    from tqdm import tqdm

    size = size or BATCH
    rows = store_rows(er)
    schema, words = flat_schema(er.n_modes), mode_words(er)
    n = er.samples.num_rows

    def thumb(pixels: np.ndarray | None) -> bytes | None:
        return None if pixels is None else png(pixels, thumbnail)

    with (
        tqdm(total=n, unit="sample", desc="export", file=sys.stderr, disable=not progress) as bar,
        ThreadPoolExecutor(THREADS, thread_name_prefix="export-png") as pool,
    ):
        for start in range(0, n, size):
            part = er.samples.slice(start, size)
            images = list(pool.map(thumb, read_pixels(er, rows[start : start + size])))
            yield Batch(flat_table(part, schema, words), part.column("scores"), images)
            bar.update(part.num_rows)


def store_rows(er: ExportRun) -> np.ndarray:
    """The dataset store row of every sample (-1: not in the store, or no images at all).
    Says so in one sentence when none of the run's samples is in the store."""
    n = er.samples.num_rows
    if er.dataset is None:
        return np.full(n, -1, dtype=np.int64)
    ids = pa.array(er.dataset.sample_ids().tolist(), pa.string())
    found = pc.index_in(er.samples.column("sample_id"), value_set=ids)
    rows = found.fill_null(-1).to_numpy().astype(np.int64)
    if n and (rows < 0).all():
        raise InputError(
            f"none of run {er.run_id!r}'s {n} sample ids is in dataset store "
            f"{er.dataset_url}; pass --dataset with the store the run compared."
        )
    return rows


def read_pixels(er: ExportRun, rows: np.ndarray) -> list[np.ndarray | None]:
    """The images of store rows ``rows`` (None where a row is -1): one slice when the rows are
    close together, else an orthogonal selection (Zarr reads only the chunks it needs)."""
    out: list[np.ndarray | None] = [None] * len(rows)
    valid = np.flatnonzero(rows >= 0)
    if not valid.size:
        return out
    wanted = rows[valid]
    lo, hi = int(wanted.min()), int(wanted.max()) + 1
    array = er.dataset.array("images")
    if hi - lo <= 2 * wanted.size:
        block, index = array[lo:hi], wanted - lo
    else:
        order = np.unique(wanted)
        block = array.get_orthogonal_selection((order, slice(None), slice(None), slice(None)))
        index = np.searchsorted(order, wanted)
    for i, j in zip(valid, index, strict=True):
        out[i] = block[j]
    return out


def png(pixels: np.ndarray, size: int) -> bytes:
    """``pixels`` (H, W, 3 uint8) as PNG bytes, the longest side at most ``size``."""
    img = Image.fromarray(np.ascontiguousarray(pixels))
    if max(img.size) > size:
        img.thumbnail((size, size), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def mode_words(er: ExportRun) -> dict[int, tuple[str, str]]:
    """Mode -> (``mode 3: red``, the encoder that ties the mode's samples together)."""
    out = {}
    for m in er.modes:
        what = m.get("label") or m.get("summary") or ""
        label = f"mode {m['mode']}: {what}" if what else f"mode {m['mode']}"
        captured = er.run["encoder_x"] if m["direction"] == "x_over_y" else er.run["encoder_y"]
        out[int(m["mode"])] = (label, captured)
    return out


def flat_table(part: pa.Table, schema: pa.Schema, words: dict) -> pa.Table:
    """``part`` of ``samples`` in the flat columns of ``schema``."""
    top = part.column("top_mode").to_pylist()
    said = [words.get(m, (f"mode {m}", None)) if m is not None else (None, None) for m in top]
    columns = {name: part.column(name) for name in PLAIN + AFTER}
    columns["mode_label"] = pa.array([s[0] for s in said], pa.string())
    columns["mode_captured_by"] = pa.array([s[1] for s in said], pa.string())
    scores = score_matrix(part.column("scores"), len(schema) - len(PLAIN) - len(AFTER) - 2)
    for j in range(scores.shape[1]):
        columns[f"score_{j}"] = pa.array(scores[:, j], pa.float64())
    return pa.table([columns[f.name] for f in schema], schema=schema)


def score_matrix(scores: pa.ChunkedArray, n_modes: int) -> np.ndarray:
    """The (rows, n_modes) scores; a shorter list is padded with NaN."""
    lists = scores.combine_chunks()
    lengths = pc.list_value_length(lists).to_numpy(zero_copy_only=False)
    values = pc.list_flatten(lists).to_numpy(zero_copy_only=False).astype(np.float64)
    if (lengths == n_modes).all():
        return values.reshape(len(lists), n_modes)
    out = np.full((len(lists), n_modes), np.nan)
    start = 0
    for i, k in enumerate(lengths):
        out[i, :k] = values[start : start + k]
        start += k
    return out


def described(schema: pa.Schema, er: ExportRun, extra: dict | None = None) -> pa.Schema:
    """``schema`` with the run's description (encoders, modes, map) as JSON file metadata
    under ``speclens``, so the file says where its rows come from."""
    import json

    meta = {b"speclens": json.dumps(er.description(), default=str).encode()}
    return schema.with_metadata({**meta, **(extra or {})})
