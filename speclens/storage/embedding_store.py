"""Embedding store: one Zarr v3 group per (dataset, encoder), row-aligned with the dataset.

Layout under the store URL (any fsspec URL), by default the one
:meth:`speclens.storage.layout.Layout.embedding` gives,
``<root>/embeddings/<dataset>/<encoder-slug>.zarr``::

    zarr.json               group; attrs["speclens"]: provenance (encoder id, weights sha256,
                            preprocessing, normalisation, library versions, dataset URL and
                            input hash, seed, batch size)
    embedding               float32 (N, d), dimensions (sample, feature): row i embeds
                            dataset row i; NaN where not valid. One chunk per dataset shard,
                            so a shard has exactly one writer.
    valid                   bool (N,), dimension (sample,): the row is ok in the dataset and
                            its vector is finite
    sample_id               str (N,), dimension (sample,): copied from the dataset; the join
                            key for compare
    captions/<shard>.parquet   text encoders only: sample_id, caption_index, embedding
                            (one row per caption); ``embedding`` above is the per-image mean
    _shards/<shard>.json    commit marker of a shard, written last
    manifest.json           state "planned" then "complete", counts

Shards, markers and the manifest follow :mod:`speclens.storage.sharded`; a store's input hash
is its dataset's. Quarantined dataset rows are excluded consistently: their rows stay NaN and
``valid`` False, and every reader goes through ``valid``. A store is tied to its dataset's
input hash and its encoder id; reopening it for another dataset or encoder is refused.
:func:`write_embedding_store` writes a whole store at once from arrays (imported vectors,
aligned embeddings and their held-out views).
"""

from __future__ import annotations

import hashlib

import numpy as np
import zarr

from speclens.errors import InputError
from speclens.storage import urls
from speclens.storage.sharded import (
    STRING_DTYPE,
    ShardedStore,
    create_row_array,
    store_state,
)


class EmbeddingStore(ShardedStore):
    """Create with :meth:`create` (or :func:`write_embedding_store`), open with :meth:`open`."""

    #: markers written before the key was shared recorded the dataset's hash under this name
    legacy_hash_keys = ("dataset_input_hash",)

    @classmethod
    def exists(cls, url: str) -> bool:
        """Whether ``url`` holds an embedding store (not a dataset store, nor other files)."""
        return store_state(url) == "planned" and _speclens_kind(url) != "dataset"

    @classmethod
    def create(
        cls,
        url: str,
        *,
        n_samples: int,
        dim: int,
        shard_size: int,
        sample_id: np.ndarray,
        provenance: dict,
    ) -> EmbeddingStore:
        """An empty store (every row invalid) holding ``sample_id``; manifest "planned"."""
        meta = {
            **provenance,
            "n_samples": int(n_samples),
            "dim": int(dim),
            "shard_size": int(shard_size),
        }
        group = zarr.open_group(url, mode="w", attributes={"speclens": meta})
        rows = {"n_samples": n_samples, "shard_size": shard_size}
        create_row_array(
            group,
            "embedding",
            **rows,
            dtype="float32",
            tail=(dim,),
            dimension_names=("sample", "feature"),
            fill_value=np.nan,
        )
        create_row_array(group, "valid", **rows, dtype="bool", fill_value=False)
        ids = create_row_array(group, "sample_id", **rows, dtype=STRING_DTYPE)
        ids[:] = np.asarray(sample_id, dtype=STRING_DTYPE)
        store = cls(url, group)
        store.write_manifest({"state": "planned"})
        return store

    @classmethod
    def open(cls, url: str, mode: str = "r") -> EmbeddingStore:
        if not cls.exists(url):
            raise InputError(
                f"{url} is not a speclens embedding store; create it with "
                f"`speclens embed --dataset URL --encoder ID` or `speclens embed import`."
            )
        return cls(url, zarr.open_group(url, mode=mode))

    # ---- properties ---------------------------------------------------------------------
    @property
    def dim(self) -> int:
        return int(self.meta["dim"])

    @property
    def shard_size(self) -> int:
        return int(self.meta["shard_size"])

    @property
    def encoder_id(self) -> str:
        return self.meta["encoder_id"]

    @property
    def dataset_input_hash(self) -> str:
        return self.meta["dataset_input_hash"]

    @property
    def input_hash(self) -> str:
        """The dataset's input hash: what the store's markers are valid for."""
        return self.dataset_input_hash

    # ---- writes -------------------------------------------------------------------------
    def write_shard(
        self,
        shard_id: int,
        vectors: np.ndarray,
        valid: np.ndarray,
        stats: dict,
        captions_table=None,
    ) -> dict:
        """Write one shard's rows (whole chunk), its caption rows, then its marker (last)."""
        start, stop = self.shard_range(shard_id)
        if vectors.shape != (stop - start, self.dim) or valid.shape != (stop - start,):
            raise ValueError(
                f"shard {shard_id}: got {vectors.shape}, expected ({stop - start}, {self.dim})"
            )
        block = np.where(valid[:, None], vectors, np.nan).astype(np.float32)
        self.group["embedding"][start:stop] = block
        self.group["valid"][start:stop] = valid
        if captions_table is not None:
            self.write_shard_table("captions", shard_id, captions_table)
        fields = {
            "valid": int(valid.sum()),
            "sha256": hashlib.sha256(block.tobytes()).hexdigest(),
            **stats,
        }
        return self.commit_shard(shard_id, fields)

    def manifest_fields(self) -> dict:
        return {
            "encoder_id": self.meta["encoder_id"],
            "dataset_url": self.meta.get("dataset_url"),
            "dataset_input_hash": self.dataset_input_hash,
            "n_samples": self.n_samples,
            "dim": self.dim,
        }

    # ---- reads --------------------------------------------------------------------------
    def rows(self, start: int = 0, stop: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(vectors, valid) for rows ``start:stop``."""
        return self.group["embedding"][start:stop], self.group["valid"][start:stop]

    def valid(self) -> np.ndarray:
        return self.group["valid"][:]

    def take(self, rows: np.ndarray) -> np.ndarray:
        """The vectors of the row indices ``rows`` (reads only the chunks that hold them)."""
        return self.group["embedding"].get_orthogonal_selection((rows, slice(None)))

    def embeds(self, dataset, sample_ids: np.ndarray | None = None) -> bool:
        """Whether this store embeds ``dataset`` (a ``DatasetStore``): same input hash and the
        same sample ids in the same order (``sample_ids``: the dataset's, if already read)."""
        ids = dataset.sample_ids() if sample_ids is None else sample_ids
        return self.dataset_input_hash == dataset.input_hash and np.array_equal(
            self.sample_ids(), ids
        )

    def vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """All valid rows as (vectors, row indices); for small data and tests."""
        vec, valid = self.rows()
        idx = np.flatnonzero(valid)
        return vec[idx], idx

    def caption_rows(self):
        """Per-caption embeddings of a text encoder (sample_id, caption_index, embedding)."""
        import pyarrow as pa

        tables = self.read_shard_tables("captions", missing_ok=True)
        return pa.concat_tables(tables) if tables else None


def _speclens_kind(url: str) -> str | None:
    """The ``kind`` a speclens store records in its attributes ("dataset" for dataset stores)."""
    return urls.read_json(urls.join(url, "zarr.json"))["attributes"]["speclens"].get("kind")


def check_replaceable(url: str) -> None:
    """Refuse a location that holds something other than an embedding store: writing a store
    there would delete it (a dataset store, or files that are not speclens')."""
    state = store_state(url)
    if state == "absent":
        return
    kind = None if state == "foreign" else _speclens_kind(url)
    if state == "foreign" or kind == "dataset":
        what = "a dataset store" if kind == "dataset" else "files that are not a speclens store"
        raise InputError(
            f"{url} already holds {what}, which writing an embedding there would delete; "
            f"choose an empty or new location for the embedding (--out)."
        )


def write_embedding_store(
    url: str,
    *,
    sample_id: np.ndarray,
    shard_size: int,
    vectors: np.ndarray,
    provenance: dict,
    valid: np.ndarray | None = None,
    rows: np.ndarray | None = None,
    stats: dict | None = None,
) -> dict:
    """Write a whole embedding store at ``url`` from arrays, replacing whatever is there.

    Row ``i`` is sample ``sample_id[i]``. Give either ``valid`` (bool, one per row) with
    ``vectors`` holding a vector per row, or ``rows`` (row indices) with ``vectors`` holding
    the vectors of those rows: then those rows are valid and every other row is not. Each
    shard is written once, its marker (with ``stats``) last; then the manifest, state
    "complete", with the valid and invalid counts. Returns the manifest.
    """
    n = len(sample_id)
    if (valid is None) == (rows is None):
        raise ValueError("write_embedding_store takes one of valid and rows")
    vectors = np.asarray(vectors, dtype=np.float32)
    if rows is not None:
        rows = np.asarray(rows, dtype=np.int64)
        if vectors.ndim != 2 or vectors.shape[0] != rows.size:
            raise ValueError(f"{rows.size} rows but vectors of shape {vectors.shape}")
        full = np.full((n, vectors.shape[1]), np.nan, dtype=np.float32)
        full[rows] = vectors
        vectors, valid = full, np.zeros(n, dtype=bool)
        valid[rows] = True
    valid = np.asarray(valid, dtype=bool)
    if vectors.ndim != 2 or vectors.shape[0] != n or valid.shape != (n,):
        raise ValueError(f"{n} samples but vectors {vectors.shape} and valid {valid.shape}")
    check_replaceable(url)
    urls.remove(url)
    store = EmbeddingStore.create(
        url,
        n_samples=n,
        dim=vectors.shape[1],
        shard_size=shard_size,
        sample_id=sample_id,
        provenance=provenance,
    )
    for shard_id in range(store.n_shards):
        start, stop = store.shard_range(shard_id)
        store.write_shard(shard_id, vectors[start:stop], valid[start:stop], dict(stats or {}))
    n_valid = int(valid.sum())
    return store.write_manifest({"state": "complete", "valid": n_valid, "invalid": n - n_valid})
