"""The adapter mode of SPEC-align (``--mode adapter``, the default): a small map (linear, or a
residual MLP; :mod:`speclens.spec.adapter`) trained on the stored embeddings of the train rows,
then applied to every row the encoder's store embeds to write the aligned entry."""

from __future__ import annotations

import json

import numpy as np
import torch
from prefect import get_run_logger, task

from speclens.spec.adapter import Adapter, AdapterConfig, fit_adapter
from speclens.storage import urls
from speclens.storage.arrays import load_npz, save_npz
from speclens.storage.embedding_store import EmbeddingStore, write_embedding_store
from speclens.tasks.align.run import AlignRun, save_split, split_stores
from speclens.tasks.align.views import aligned_entry


@task(name="train-adapter")
def train_adapter(run: AlignRun) -> dict:
    """Fit the adapter on the train rows; save it and the split under the run."""
    sx, sy, train, held = split_stores(run.x_url, run.y_url, run.train_frac, run.seed)
    options = {"random_state": run.seed, **run.options}
    kind = options.pop("kind", "linear")
    progress = _epoch_logger(options.get("epochs", AdapterConfig.epochs))
    adapter = fit_adapter(
        sx.take(train), sy.take(train), kind=kind, device=run.device, on_epoch=progress, **options
    )
    state = adapter.state_dict()
    meta = {k: v for k, v in state.items() if k != "weights"}
    adapter_url = urls.join(run.run_url, "adapter.npz")
    save_npz(
        adapter_url,
        **{f"w:{k}": v for k, v in state["weights"].items()},
        meta=np.array(json.dumps(meta, default=float)),
    )
    return {
        "train": int(train.size),
        "held_out": int(held.size),
        "adapter_url": adapter_url,
        "split_url": save_split(run.run_url, train, held),
        "epochs": len(adapter.log),
        "batch_size": adapter.config.batch_size,
        "trained_with": {
            "device": str(next(adapter.module.parameters()).device),
            "torch_threads": torch.get_num_threads(),
        },
    }


def _epoch_logger(epochs: int):
    logger, every = get_run_logger(), max(1, epochs // 10)

    def log(entry: dict) -> None:
        if entry["epoch"] % every == 0 or entry["epoch"] == epochs:
            logger.info(
                "adapter epoch %d/%d: loss %.4f (SPEC-diff %.4f, preservation %.4f)",
                *(entry["epoch"], epochs, entry["loss"], entry["spec_diff"], entry["preserve"]),
            )

    return log


def load_adapter(url: str) -> Adapter:
    a = load_npz(url)
    meta = json.loads(str(a.pop("meta")))
    return Adapter.from_state({**meta, "weights": {k[2:]: v for k, v in a.items()}})


@task(name="write-aligned")
def write_adapted(run: AlignRun, trained: dict) -> str:
    """Every row the encoder's store embeds, through the adapter, as the aligned entry."""
    sx = EmbeddingStore.open(run.x_url)
    X, vx = sx.rows()
    rows = np.flatnonzero(vx)
    aligned = load_adapter(trained["adapter_url"]).transform(X[rows]).astype(np.float32)
    how = {
        "align_mode": "adapter",
        "adapter_url": trained["adapter_url"],
        "adapter_sha256": urls.sha256(trained["adapter_url"]),
    }
    _, url, keys = aligned_entry(run)
    write_embedding_store(
        url,
        sample_id=sx.sample_ids(),
        shard_size=sx.shard_size,
        vectors=aligned,
        rows=rows,
        provenance={**sx.meta, **how, **keys},
        stats={"view": True},
    )
    return url


def settings(run: AlignRun, trained: dict) -> dict:
    """What align.json records about the adapter."""
    return {
        **run.options,
        "epochs_run": trained["epochs"],
        "batch_size": trained["batch_size"],
        **trained["trained_with"],
    }
