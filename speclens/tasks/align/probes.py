"""Label probes of an align run: does the aligned embedding still know what the encoder knew?"""

from __future__ import annotations

import numpy as np
from prefect import task

from speclens.spec.probes import knn_accuracy, linear_probe_accuracy
from speclens.storage.arrays import load_npz
from speclens.storage.dataset_store import DatasetStore
from speclens.storage.embedding_store import EmbeddingStore

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
