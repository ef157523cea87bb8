"""The aligned entry and the held-out views: where an align run writes its aligned embedding
(a new encoder entry ``<encoder>+aligned@<run_id>`` beside the others) and the three stores the
before / after comparisons read (reference, encoder and aligned encoder on the held-out rows).
Both modes end here."""

from __future__ import annotations

from prefect import task

from speclens.storage import urls
from speclens.storage.arrays import load_npz
from speclens.storage.embedding_store import EmbeddingStore, write_embedding_store
from speclens.storage.layout import Layout
from speclens.tasks.align.run import AlignRun, aligned_encoder_id


def aligned_entry(run: AlignRun) -> tuple[str, str, dict]:
    """(aligned encoder id, its store URL, the provenance keys that say what it was aligned
    from and to)."""
    sx, sy = EmbeddingStore.open(run.x_url), EmbeddingStore.open(run.y_url)
    aligned_id = aligned_encoder_id(sx.encoder_id, run.run_id)
    keys = {
        "encoder_id": aligned_id,
        "aligned_from": sx.encoder_id,
        "aligned_to": sy.encoder_id,
        "align_run_id": run.run_id,
    }
    return aligned_id, Layout.embedding(run.dataset, aligned_id), keys


@task(name="write-heldout-views")
def write_views(run: AlignRun, aligned_url: str, split_url: str) -> dict[str, str]:
    """The held-out rows of the encoder (``x``), the reference (``y``) and the aligned entry
    (``aligned``), each as its own store under the run."""
    held = load_npz(split_url)["held_out"]
    views = {}
    for name, url in (("x", run.x_url), ("y", run.y_url), ("aligned", aligned_url)):
        store = EmbeddingStore.open(url)
        views[name] = urls.join(run.run_url, "heldout", f"{name}.zarr")
        write_embedding_store(
            views[name],
            sample_id=store.sample_ids(),
            shard_size=store.shard_size,
            vectors=store.take(held),
            rows=held,
            provenance={**store.meta, "view": "held-out"},
            stats={"view": True},
        )
    return views
