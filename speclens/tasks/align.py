"""Prefect tasks of the align flow: split, train the adapter, write the aligned embedding and
the held-out views, measure label probes. Arrays stay in stores; tasks pass URLs and numbers.
"""

from __future__ import annotations

import json

import numpy as np
from prefect import task

from speclens.spec.adapter import Adapter, fit_adapter
from speclens.spec.probes import knn_accuracy, linear_probe_accuracy
from speclens.storage import urls
from speclens.storage.arrays import load_npz, save_npz
from speclens.storage.dataset_store import DatasetStore
from speclens.storage.embedding_store import EmbeddingStore, default_embedding_url
from speclens.storage.errors import InputError


def split_rows(valid: np.ndarray, train_frac: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded split of the valid rows into (train, held-out), both sorted."""
    rows = np.flatnonzero(valid)
    perm = np.random.default_rng(seed).permutation(rows)
    cut = int(round(train_frac * rows.size))
    return np.sort(perm[:cut]), np.sort(perm[cut:])


def _write_view(url: str, source: EmbeddingStore, vectors: np.ndarray, rows: np.ndarray,
                provenance: dict) -> str:
    """An embedding store holding ``vectors`` at ``rows`` (every other row invalid)."""
    if urls.exists(url):
        urls.remove(url)
    store = EmbeddingStore.create(url, n_samples=source.n_samples, dim=vectors.shape[1],
                                  shard_size=source.shard_size, sample_id=source.sample_ids(),
                                  provenance=provenance)
    full = np.full((source.n_samples, vectors.shape[1]), np.nan, dtype=np.float32)
    full[rows] = vectors
    valid = np.zeros(source.n_samples, dtype=bool)
    valid[rows] = True
    for s in range(store.n_shards):
        a, b = store.shard_range(s)
        store.write_shard(s, full[a:b], valid[a:b], {"view": True})
    store.write_manifest({"state": "complete", "valid": int(valid.sum())})
    return url


@task(name="train-adapter")
def train_adapter(dataset_url: str, x_url: str, y_url: str, run_url: str, train_frac: float,
                  seed: int, adapter_options: dict) -> dict:
    sx, sy = EmbeddingStore.open(x_url), EmbeddingStore.open(y_url)
    if sx.dataset_input_hash != sy.dataset_input_hash:
        raise InputError(f"{x_url} and {y_url} embed different datasets; align embeddings of "
                         f"the same dataset store.")
    X, vx = sx.rows()
    Y, vy = sy.rows()
    train, held = split_rows(vx & vy, train_frac, seed)
    if train.size < 10 or held.size < 10:
        raise InputError(f"only {train.size} training and {held.size} held-out samples; align "
                         f"needs at least 10 of each (embed more samples or change --train-frac).")
    options = {"random_state": seed, **adapter_options}
    kind = options.pop("kind", "linear")
    adapter = fit_adapter(X[train], Y[train], kind=kind, **options)
    state = adapter.state_dict()
    meta = {k: v for k, v in state.items() if k != "weights"}
    save_npz(urls.join(run_url, "adapter.npz"),
             **{f"w:{k}": v for k, v in state["weights"].items()},
             meta=np.array(json.dumps(meta, default=float)))
    save_npz(urls.join(run_url, "split.npz"), train=train, held_out=held)
    return {"train": int(train.size), "held_out": int(held.size), "adapter_url":
            urls.join(run_url, "adapter.npz"), "split_url": urls.join(run_url, "split.npz"),
            "epochs": len(adapter.log)}


def load_adapter(url: str) -> Adapter:
    a = load_npz(url)
    meta = json.loads(str(a.pop("meta")))
    return Adapter.from_state({**meta, "weights": {k[2:]: v for k, v in a.items()}})


@task(name="write-aligned")
def write_aligned(dataset_url: str, encoder: str, x_url: str, y_url: str, run_id: str,
                  run_url: str, adapter_url: str, split_url: str) -> dict:
    """The aligned embedding as a new encoder entry, and held-out views for compare."""
    sx, sy = EmbeddingStore.open(x_url), EmbeddingStore.open(y_url)
    X, vx = sx.rows()
    Y, _ = sy.rows()
    split = load_npz(split_url)
    rows = np.flatnonzero(vx)
    aligned = load_adapter(adapter_url).transform(X[rows]).astype(np.float32)
    aligned_id = f"{encoder}+aligned@{run_id}"
    prov = {**sx.meta, "encoder_id": aligned_id, "aligned_from": sx.encoder_id,
            "align_run_id": run_id, "adapter_url": adapter_url}
    aligned_url = _write_view(default_embedding_url(dataset_url, aligned_id), sx, aligned, rows, prov)
    held = split["held_out"]
    pos = np.searchsorted(rows, held)
    views = {
        "x": _write_view(urls.join(run_url, "heldout", "x.zarr"), sx, X[held], held,
                         {**sx.meta, "view": "held-out"}),
        "y": _write_view(urls.join(run_url, "heldout", "y.zarr"), sy, Y[held], held,
                         {**sy.meta, "view": "held-out"}),
        "aligned": _write_view(urls.join(run_url, "heldout", "aligned.zarr"), sx, aligned[pos],
                               held, {**prov, "view": "held-out"}),
    }
    return {"aligned_id": aligned_id, "aligned_url": aligned_url, "views": views}


@task(name="label-probes")
def label_probes(dataset_url: str, x_url: str, aligned_url: str, split_url: str) -> dict:
    """k-NN and linear-probe label accuracy, trained on the train split, scored on held-out."""
    labels = DatasetStore.open(dataset_url).labels()
    split = load_npz(split_url)
    tr, te = split["train"], split["held_out"]
    if (labels[tr] < 0).all():
        return {}
    out = {}
    for name, url in (("before", x_url), ("after", aligned_url)):
        vec, _ = EmbeddingStore.open(url).rows()
        out[name] = {"knn": knn_accuracy(vec[tr], labels[tr], vec[te], labels[te]),
                     "linear_probe": linear_probe_accuracy(vec[tr], labels[tr], vec[te], labels[te])}
    return out
