"""Prefect tasks of the align flow: split, train the adapter, write the aligned embedding and
the held-out views, measure label probes. Arrays stay in stores; tasks pass URLs and numbers.

The split (:func:`split_stores`) and the aligned entry with its held-out views
(:func:`store_aligned`) are shared with the encoder fine-tune mode
(:mod:`speclens.tasks.align_finetune`).
"""

from __future__ import annotations

import json

import numpy as np
import torch
from prefect import get_run_logger, task

from speclens.errors import InputError
from speclens.spec.adapter import Adapter, AdapterConfig, fit_adapter
from speclens.spec.probes import knn_accuracy, linear_probe_accuracy
from speclens.storage import urls
from speclens.storage.arrays import load_npz, save_npz
from speclens.storage.dataset_store import DatasetStore
from speclens.storage.embedding_store import EmbeddingStore, write_embedding_store
from speclens.storage.layout import Layout


def split_rows(valid: np.ndarray, train_frac: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded split of the valid rows into (train, held-out), both sorted."""
    rows = np.flatnonzero(valid)
    perm = np.random.default_rng(seed).permutation(rows)
    cut = int(round(train_frac * rows.size))
    return np.sort(perm[:cut]), np.sort(perm[cut:])


def split_stores(
    x_url: str, y_url: str, train_frac: float, seed: int
) -> tuple[EmbeddingStore, EmbeddingStore, np.ndarray, np.ndarray]:
    """Open both stores, check they embed the same dataset, and split the rows both embed
    (seeded, :func:`split_rows`): (x store, y store, train rows, held-out rows)."""
    sx, sy = EmbeddingStore.open(x_url), EmbeddingStore.open(y_url)
    if sx.dataset_input_hash != sy.dataset_input_hash:
        raise InputError(
            f"{x_url} and {y_url} embed different datasets; align embeddings of "
            f"the same dataset store."
        )
    train, held = split_rows(sx.valid() & sy.valid(), train_frac, seed)
    if train.size < 10 or held.size < 10:
        raise InputError(
            f"only {train.size} training and {held.size} held-out samples; align "
            f"needs at least 10 of each (embed more samples or change --train-frac)."
        )
    return sx, sy, train, held


def preflight(dataset_url: str, x_url: str, y_url: str) -> dict:
    """Checks that need the stores, made before anything is written: encoder and reference
    are two different stores, both of ``dataset_url`` (same input hash and sample ids).
    Returns the run's identity (what a rerun of the run id must match)."""
    if x_url.rstrip("/") == y_url.rstrip("/"):
        raise InputError(
            f"--encoder and --reference are the same embedding ({x_url}); align "
            f"an encoder to another one."
        )
    ds = DatasetStore.open(dataset_url)
    ids = ds.sample_ids()
    stores = {}
    for flag, url in (("--encoder", x_url), ("--reference", y_url)):
        store = EmbeddingStore.open(url)
        if not store.embeds(ds, ids):
            raise InputError(
                f"{flag} {url} embeds another dataset than --dataset {dataset_url}; "
                f"embed {dataset_url} with it (speclens embed) or pass the dataset "
                f"it embeds."
            )
        stores[flag] = store
    return {
        "dataset_hash": ds.input_hash,
        "encoder": stores["--encoder"].encoder_id,
        "reference": stores["--reference"].encoder_id,
        "encoder_url": x_url,
        "reference_url": y_url,
    }


def recorded_differences(url: str, record: dict) -> dict:
    """``{key: recorded value}`` for the keys of ``record`` whose value differs from the one
    recorded at ``url`` (a JSON object); empty when nothing is recorded there."""
    if not urls.exists(url):
        return {}
    saved = urls.read_json(url)
    return {k: saved.get(k) for k in sorted(record) if saved.get(k) != record[k]}


def claim_run(run_url: str, identity: dict) -> None:
    """Record what this align run id is; refuse a rerun of the id that aligns something else
    (its aligned entry, report and warehouse rows would be overwritten or orphaned)."""
    url = urls.join(run_url, "align-run.json")
    differ = recorded_differences(url, identity)
    if differ:
        was = ", ".join(f"{k} {v!r}" for k, v in differ.items())
        raise InputError(
            f"run {run_url} is an align run with another {was}; pass a new "
            f"--run-id, or the same settings to rerun it."
        )
    urls.write_json(url, identity)


def save_split(run_url: str, train: np.ndarray, held: np.ndarray) -> str:
    url = urls.join(run_url, "split.npz")
    save_npz(url, train=train, held_out=held)
    return url


@task(name="train-adapter")
def train_adapter(
    dataset_url: str,
    x_url: str,
    y_url: str,
    run_url: str,
    train_frac: float,
    seed: int,
    adapter_options: dict,
    device: str = "cpu",
) -> dict:
    logger = get_run_logger()
    sx, sy, train, held = split_stores(x_url, y_url, train_frac, seed)
    X, Y = sx.take(train), sy.take(train)
    options = {"random_state": seed, **adapter_options}
    kind = options.pop("kind", "linear")
    epochs = options.get("epochs", AdapterConfig.epochs)
    every = max(1, epochs // 10)

    def progress(entry):
        if entry["epoch"] % every == 0 or entry["epoch"] == epochs:
            logger.info(
                "adapter epoch %d/%d: loss %.4f (SPEC-diff %.4f, preservation %.4f)",
                entry["epoch"],
                epochs,
                entry["loss"],
                entry["spec_diff"],
                entry["preserve"],
            )

    adapter = fit_adapter(X, Y, kind=kind, device=device, on_epoch=progress, **options)
    state = adapter.state_dict()
    meta = {k: v for k, v in state.items() if k != "weights"}
    save_npz(
        urls.join(run_url, "adapter.npz"),
        **{f"w:{k}": v for k, v in state["weights"].items()},
        meta=np.array(json.dumps(meta, default=float)),
    )
    return {
        "train": int(train.size),
        "held_out": int(held.size),
        "adapter_url": urls.join(run_url, "adapter.npz"),
        "split_url": save_split(run_url, train, held),
        "epochs": len(adapter.log),
        "batch_size": adapter.config.batch_size,
        "trained_with": {
            "device": str(next(adapter.module.parameters()).device),
            "torch_threads": torch.get_num_threads(),
        },
    }


def load_adapter(url: str) -> Adapter:
    a = load_npz(url)
    meta = json.loads(str(a.pop("meta")))
    return Adapter.from_state({**meta, "weights": {k[2:]: v for k, v in a.items()}})


def aligned_encoder_id(encoder: str, run_id: str) -> str:
    return f"{encoder}+aligned@{run_id}"


def store_aligned(
    dataset_url: str,
    x_url: str,
    y_url: str,
    run_id: str,
    run_url: str,
    aligned: np.ndarray,
    rows: np.ndarray,
    split_url: str,
    provenance: dict,
) -> dict:
    """Write ``aligned`` (the aligned vectors of ``rows``, every valid row of the encoder's
    store) as the new encoder entry ``<encoder>+aligned@<run_id>`` at its default location,
    and the held-out views (reference, encoder, aligned) that compare reads.

    ``provenance`` says how the vectors were made (adapter or fine-tuned checkpoint); it goes
    over the encoder's own provenance in the entry's attributes. Both align modes end here."""
    sx, sy = EmbeddingStore.open(x_url), EmbeddingStore.open(y_url)
    aligned_id = aligned_encoder_id(sx.encoder_id, run_id)
    prov = {
        **sx.meta,
        **provenance,
        "encoder_id": aligned_id,
        "aligned_from": sx.encoder_id,
        "aligned_to": sy.encoder_id,
        "align_run_id": run_id,
    }
    aligned_url = Layout.embedding(dataset_url, aligned_id)
    held = load_npz(split_url)["held_out"]
    views = {name: urls.join(run_url, "heldout", f"{name}.zarr") for name in ("x", "y", "aligned")}
    held_out = {"view": "held-out"}
    writes = {  # url: (the store whose rows they are, vectors, their rows, provenance)
        aligned_url: (sx, aligned, rows, prov),
        views["x"]: (sx, sx.take(held), held, {**sx.meta, **held_out}),
        views["y"]: (sy, sy.take(held), held, {**sy.meta, **held_out}),
        views["aligned"]: (sx, aligned[np.searchsorted(rows, held)], held, {**prov, **held_out}),
    }
    for url, (source, vectors, at, meta) in writes.items():
        write_embedding_store(
            url,
            sample_id=source.sample_ids(),
            shard_size=source.shard_size,
            vectors=vectors,
            rows=at,
            provenance=meta,
            stats={"view": True},
        )
    return {"aligned_id": aligned_id, "aligned_url": aligned_url, "views": views}


@task(name="write-aligned")
def write_aligned(
    dataset_url: str,
    x_url: str,
    y_url: str,
    run_id: str,
    run_url: str,
    adapter_url: str,
    split_url: str,
) -> dict:
    """The adapted embedding as a new encoder entry, and held-out views for compare."""
    X, vx = EmbeddingStore.open(x_url).rows()
    rows = np.flatnonzero(vx)
    aligned = load_adapter(adapter_url).transform(X[rows]).astype(np.float32)
    return store_aligned(
        dataset_url,
        x_url,
        y_url,
        run_id,
        run_url,
        aligned,
        rows,
        split_url,
        {
            "align_mode": "adapter",
            "adapter_url": adapter_url,
            "adapter_sha256": urls.sha256(adapter_url),
        },
    )


#: label probes fit on at most this many train rows and score at most this many held-out rows
#: (seeded subsamples): k-NN is O(train x held-out), so a warehouse-scale split is sampled
PROBE_MAX_TRAIN, PROBE_MAX_HELD_OUT = 20_000, 5_000


def _cap(rows: np.ndarray, most: int, rng: np.random.Generator) -> np.ndarray:
    return rows if rows.size <= most else np.sort(rng.choice(rows, most, replace=False))


@task(name="label-probes")
def label_probes(
    dataset_url: str, x_url: str, aligned_url: str, split_url: str, seed: int = 0
) -> dict:
    """k-NN and linear-probe label accuracy, fit on the train split and scored on held-out
    rows with a label (seeded subsamples of at most :data:`PROBE_MAX_TRAIN` and
    :data:`PROBE_MAX_HELD_OUT`); {} when the dataset has no labels."""
    labels = DatasetStore.open(dataset_url).labels()
    split = load_npz(split_url)
    rng = np.random.default_rng(seed)
    tr, te = (r[labels[r] >= 0] for r in (split["train"], split["held_out"]))
    if tr.size == 0 or te.size == 0:
        return {}
    tr, te = _cap(tr, PROBE_MAX_TRAIN, rng), _cap(te, PROBE_MAX_HELD_OUT, rng)
    out = {}
    for name, url in (("before", x_url), ("after", aligned_url)):
        store = EmbeddingStore.open(url)
        a, b = store.take(tr), store.take(te)
        out[name] = {
            "knn": knn_accuracy(a, labels[tr], b, labels[te]),
            "linear_probe": linear_probe_accuracy(a, labels[tr], b, labels[te]),
        }
    out["rows"] = {"train": int(tr.size), "held_out": int(te.size)}
    return out
