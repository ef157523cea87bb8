"""One align run and its split: what is aligned to what, where it is written, and the seeded
train / held-out split both modes share.

:class:`AlignRun` is everything a mode's steps need to know (the flow builds it once);
:func:`preflight` and :func:`claim_run` are the checks made before anything is written.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from speclens.errors import InputError
from speclens.storage import urls
from speclens.storage.arrays import save_npz
from speclens.storage.dataset_store import DatasetStore
from speclens.storage.embedding_store import EmbeddingStore
from speclens.storage.layout import Layout
from speclens.tasks.align.options import TRAIN_FRAC


@dataclass(frozen=True)
class AlignRun:
    """Align ``encoder`` (stored at ``x_url``) to ``reference`` (at ``y_url``) on ``dataset``;
    the run's files go under ``<root>/runs/<run_id>``. ``options``: the mode's own options."""

    dataset: str
    encoder: str
    reference: str
    x_url: str
    y_url: str
    root: str
    run_id: str
    train_frac: float = TRAIN_FRAC
    seed: int = 0
    device: str = "auto"
    options: dict = field(default_factory=dict)

    @property
    def run_url(self) -> str:
        return Layout(self.root).run(self.run_id)


def aligned_encoder_id(encoder: str, run_id: str) -> str:
    """The encoder id of an aligned embedding: ``<encoder>+aligned@<run_id>``."""
    return f"{encoder}+aligned@{run_id}"


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
