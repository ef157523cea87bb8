"""Import precomputed vectors into an embedding store (``speclens embed import``).

Plain function (no flow): one pass that reads the file, matches ids to the dataset's rows,
and writes the whole store with :func:`~speclens.storage.embedding_store.write_embedding_store`
(shard by shard, markers last, like the embed flow).
"""

from __future__ import annotations

import numpy as np

from speclens.datasets.vectors import align_to_dataset, read_vectors
from speclens.errors import InputError
from speclens.storage import urls
from speclens.storage.dataset_store import DatasetStore
from speclens.storage.embedding_store import EmbeddingStore, write_embedding_store
from speclens.storage.layout import Layout


def import_vectors(
    path: str,
    dataset_url: str,
    name: str,
    *,
    out: str | None = None,
    ids: str | None = None,
    key: str = "embeddings",
    ids_key: str = "ids",
    id_column: str = "sample_id",
    vector_column: str = "embedding",
    allow_missing: bool = False,
    overwrite: bool = False,
) -> dict:
    dataset = DatasetStore.open(dataset_url)
    out = out or Layout.embedding(dataset_url, name)
    if EmbeddingStore.exists(out) and not overwrite:
        raise InputError(f"{out} already exists; pass --overwrite to replace it or choose --out.")
    file_ids, vectors = read_vectors(
        path, ids=ids, key=key, ids_key=ids_key, id_column=id_column, vector_column=vector_column
    )
    aligned, valid = align_to_dataset(
        file_ids, vectors, dataset.sample_ids(), dataset.ok_mask(), path, allow_missing
    )
    provenance = {
        "encoder_id": name,
        "family": "imported",
        "source_file": path,
        "source_sha256": urls.sha256(path),
        "output_dim": int(vectors.shape[1]),
        "dtype": "float32",
        "normalisation": "as imported",
        "dataset_url": dataset.url,
        "dataset_input_hash": dataset.input_hash,
        "seed": None,
        "layout_version": 1,
    }
    manifest = write_embedding_store(
        out,
        sample_id=dataset.sample_ids(),
        shard_size=dataset.shard_size,
        vectors=aligned,
        valid=valid,
        provenance=provenance,
        stats={"imported": True},
    )
    return {
        **manifest,
        "out": out,
        "encoder_id": name,
        "dim": int(vectors.shape[1]),
        "valid": int(np.sum(valid)),
    }
