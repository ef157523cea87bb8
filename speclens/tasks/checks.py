"""What a command checks before any Prefect server or Dask cluster starts: everything that
needs no data (encoder ids and their weights, that the named stores exist, that a dataset to
embed is completely ingested); the join of the stores compared is checked in the flows'
first step. Each failure is one sentence (a
:class:`~speclens.errors.SpeclensError`) within seconds of the command starting; the flows run
the same checks again, since they can be called without the commands.

No Prefect here: importing this module must stay cheap.
"""

from __future__ import annotations

from speclens.encoders import check_encoder
from speclens.errors import InputError
from speclens.storage.dataset_store import DatasetStore
from speclens.storage.embedding_store import EmbeddingStore
from speclens.storage.layout import Layout


def require_ingested(dataset_url: str) -> DatasetStore:
    """The dataset store at ``dataset_url``, or one sentence when it is not a completely
    ingested store."""
    dataset = DatasetStore.open(dataset_url)
    if dataset.manifest().get("state") != "complete":
        raise InputError(
            f"{dataset_url} is not completely ingested ({len(dataset.pending())} shard(s) pending); "
            f"rerun the ingest command that created it, then embed."
        )
    return dataset


def resolve_embedding(dataset_url: str, encoder: str) -> str:
    """An embedding store URL from an encoder id (its default location) or a store URL."""
    if encoder.endswith(".zarr") or "://" in encoder or encoder.startswith("/"):
        if EmbeddingStore.exists(encoder):
            return encoder
    url = Layout.embedding(dataset_url, encoder)
    if not EmbeddingStore.exists(url):
        DatasetStore.open(dataset_url)  # a missing dataset is said as such, not as "no embedding"
        raise InputError(
            f"no embedding of {dataset_url} by {encoder!r} at {url}; run `speclens embed "
            f"--dataset {dataset_url} --encoder {encoder}` first, or pass a store URL."
        )
    return url


def check_embed(dataset: str | None, encoders: list[str]) -> None:
    """At least one encoder, each id valid with its weights on this machine, and ``dataset``
    (when given) a completely ingested store."""
    if not encoders:
        raise InputError("no encoder given; pass --encoder ID (e.g. --encoder hue-hist).")
    for encoder_id in encoders:
        check_encoder(encoder_id)
    if dataset is not None:
        require_ingested(dataset)


def check_compare(dataset: str, encoders: list[str], repeats: bool = False) -> list[str]:
    """Two or more distinct encoders (``repeats``: the same may come twice, as an audit's
    candidate may be its baseline), each an embedding store of ``dataset`` (a missing
    dataset store is said as such). Returns the store URLs."""
    if len(encoders) < 2:
        raise InputError(
            f"compare needs at least two encoders, got {len(encoders)}; pass --encoder twice "
            f"or more."
        )
    if not repeats and len(set(encoders)) != len(encoders):
        raise InputError("an encoder is named twice; compare distinct encoders.")
    return [resolve_embedding(dataset, e) for e in encoders]


def check_align(dataset: str, encoder: str, reference: str, mode: str, options: dict) -> None:
    """A known mode whose encoder and options it accepts, and both embeddings stored for
    ``dataset`` (the rest, e.g. that they embed the same samples, the flow checks before it
    writes anything)."""
    from speclens.tasks.align.options import check_options

    check_options(mode, encoder, options)
    resolve_embedding(dataset, encoder)
    resolve_embedding(dataset, reference)


def check_audit(source, dataset: str | None, encoders: list[str]) -> None:
    """The source's paths (when there is one; else ``dataset`` must be an ingested store) and
    the encoders (ids and weights)."""
    from speclens.datasets.sources import check_paths

    if source is not None:
        check_paths(source)
    check_embed(None if source is not None else dataset, encoders)


def check_series(warehouse: str, series: str | None, dataset: str) -> None:
    """A series named for an audit is not already another dataset's in the warehouse."""
    if series is None:
        return
    from speclens.errors import ConfigError
    from speclens.history.record import series_datasets
    from speclens.storage.warehouse import Warehouse

    others = series_datasets(Warehouse(warehouse)).get(series, set()) - {dataset}
    if others:
        raise ConfigError(
            [
                f"series: {series!r} already holds runs of {', '.join(sorted(others))} in "
                f"{warehouse}; name another series for {dataset}, or remove the key"
            ],
            "audit config",
        )
