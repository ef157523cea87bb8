"""Import precomputed vectors into an embedding store (``speclens embed import``).

Plain function (no flow): one pass that reads the file, matches ids to the dataset's rows,
and writes the store shard by shard, markers last, like the embed flow.
"""

from __future__ import annotations

import numpy as np

from speclens.datasets.vectors import align_to_dataset, read_vectors
from speclens.errors import InputError
from speclens.storage import urls
from speclens.storage.dataset_store import DatasetStore
from speclens.storage.embedding_store import EmbeddingStore
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
    if urls.exists(out):
        urls.remove(out)
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
    store = EmbeddingStore.create(
        out,
        n_samples=dataset.n_samples,
        dim=vectors.shape[1],
        shard_size=dataset.shard_size,
        sample_id=dataset.sample_ids(),
        provenance=provenance,
    )
    for shard_id in range(store.n_shards):
        a, b = store.shard_range(shard_id)
        store.write_shard(shard_id, aligned[a:b], valid[a:b], {"imported": True})
    manifest = store.write_manifest(
        {"state": "complete", "valid": int(valid.sum()), "invalid": int((~valid).sum())}
    )
    return {
        **manifest,
        "out": out,
        "encoder_id": name,
        "dim": int(vectors.shape[1]),
        "valid": int(np.sum(valid)),
    }
