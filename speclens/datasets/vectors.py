"""Precomputed vectors from files: ``.npy`` (+ ids file), ``.npz`` (vectors + ids keys), or
Parquet (an id column and a list/array column), matched to a dataset's rows by sample_id.

Refused, each with one sentence: unreadable or unknown formats, a row count that differs
from the ids, duplicate ids, ids the dataset does not have, dataset rows without a vector
(unless ``allow_missing``), non-finite values.
"""

from __future__ import annotations

import numpy as np

from speclens.errors import InputError
from speclens.storage import urls


def _read_ids_file(path: str) -> np.ndarray:
    if path.endswith(".npy"):
        return np.load(_local(path), allow_pickle=False).astype(str)
    return np.array(urls.read_bytes(path).decode("utf-8").splitlines(), dtype=str)


def _local(path: str):
    import io

    return io.BytesIO(urls.read_bytes(path))


def read_vectors(
    path: str,
    *,
    ids: str | None = None,
    key: str = "embeddings",
    ids_key: str = "ids",
    id_column: str = "sample_id",
    vector_column: str = "embedding",
) -> tuple[np.ndarray, np.ndarray]:
    """(ids, vectors float32 (n, d)) from a vector file."""
    if not urls.exists(path):
        raise InputError(f"{path} does not exist; pass the path of a .npy, .npz or .parquet file.")
    if path.endswith(".parquet"):
        import pyarrow.parquet as pq

        table = pq.read_table(_local(path))
        for col in (id_column, vector_column):
            if col not in table.column_names:
                raise InputError(
                    f"{path} has no column {col!r} (columns: {table.column_names}); "
                    f"name the right one with --id-column / --vector-column."
                )
        ids_arr = np.asarray(table[id_column].to_pylist(), dtype=str)
        vectors = np.asarray(table[vector_column].to_pylist(), dtype=np.float32)
    elif path.endswith(".npz"):
        data = np.load(_local(path), allow_pickle=False)
        for k in (key, ids_key):
            if k not in data.files:
                raise InputError(
                    f"{path} has no array {k!r} (arrays: {data.files}); name the "
                    f"right ones with --key / --ids-key."
                )
        vectors, ids_arr = data[key].astype(np.float32), data[ids_key].astype(str)
    elif path.endswith(".npy"):
        if ids is None:
            raise InputError(
                f"{path} holds vectors without ids; pass --ids FILE (one sample_id "
                f"per line, in the order of the rows)."
            )
        vectors, ids_arr = (
            np.load(_local(path), allow_pickle=False).astype(np.float32),
            _read_ids_file(ids),
        )
    else:
        raise InputError(f"{path}: unknown vector file type; use .npy (+ --ids), .npz or .parquet.")
    if vectors.ndim != 2:
        raise InputError(f"{path}: vectors must be 2-D (rows, dim), got shape {vectors.shape}.")
    if len(ids_arr) != vectors.shape[0]:
        raise InputError(
            f"{path}: {vectors.shape[0]} vectors but {len(ids_arr)} ids; give "
            f"exactly one sample_id per row."
        )
    return ids_arr, vectors


def align_to_dataset(
    ids: np.ndarray,
    vectors: np.ndarray,
    dataset_ids: np.ndarray,
    dataset_ok: np.ndarray,
    source: str,
    allow_missing: bool = False,
):
    """Place vectors at their dataset rows; returns (vectors (N, d) with NaN gaps, valid)."""
    uniq, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        raise InputError(
            f"{source}: {int((counts > 1).sum())} sample_id(s) appear more than once "
            f"(e.g. {uniq[counts > 1][0]!r}); keep one vector per sample."
        )
    row_of = {sid: i for i, sid in enumerate(dataset_ids.tolist())}
    rows = np.array([row_of.get(s, -1) for s in ids.tolist()], dtype=np.int64)
    if (rows < 0).any():
        unknown = ids[rows < 0]
        raise InputError(
            f"{source}: {unknown.size} sample_id(s) are not in the dataset (e.g. "
            f"{unknown[0]!r}); import vectors of the same dataset's samples."
        )
    bad = ~np.isfinite(vectors).all(axis=1)
    if bad.any():
        raise InputError(
            f"{source}: {int(bad.sum())} vector(s) hold NaN or Inf (first for "
            f"{ids[bad][0]!r}); fix or drop them before importing."
        )
    out = np.full((dataset_ids.size, vectors.shape[1]), np.nan, dtype=np.float32)
    out[rows] = vectors
    have = np.zeros(dataset_ids.size, dtype=bool)
    have[rows] = True
    missing = dataset_ok & ~have
    if missing.any() and not allow_missing:
        raise InputError(
            f"{source}: {int(missing.sum())} of the dataset's {int(dataset_ok.sum())} "
            f"usable samples have no vector (e.g. {dataset_ids[missing][0]!r}); supply "
            f"them or pass --allow-missing to leave them out."
        )
    return out, have & dataset_ok
