"""The audit flow, end to end: ingest -> embed -> compare -> report, skipping what is done.

Each stage resumes by its own contract: ingest and embed redo only uncommitted shards (a
complete store costs one planning pass), compare overwrites only its run's partitions. With
``dataset`` (an ingested store) and no ``source`` the ingest stage is skipped. One
Dask cluster (the one at ``address``, or a LocalCluster for the audit) serves ingest and
compare; embedding runs in this process, one model per device.
"""

from __future__ import annotations

from prefect import flow, get_run_logger

from speclens.datasets.sources import IngestSource
from speclens.flows.compare import compare as run_compare
from speclens.flows.embed import embed
from speclens.flows.ingest import ingest
from speclens.flows.runtime import (
    LIGHT_IMAGES,
    dask_cluster,
    describe_local,
    flow_result,
    prefect_api,
    use_processes,
)
from speclens.storage.dataset_store import DatasetStore
from speclens.storage.layout import Layout
from speclens.tasks.checks import check_audit, check_series
from speclens.tasks.history import record_series
from speclens.tasks.params import CompareParams


@flow(name="audit")
def audit_flow(
    source: IngestSource | None,
    name: str,
    encoders: list[str],
    root: str = "speclens-out",
    compare: CompareParams | None = None,
    run_id: str | None = None,
    device: str = "auto",
    batch_size: int = 64,
    image_size: int | None = None,
    shard_size: int = 256,
    address: str | None = None,
    progress: bool = True,
    dataset: str | None = None,
    warehouse: str | None = None,
    roles: list[tuple[str, str]] | None = None,
    pairs: list[tuple[int, int]] | None = None,
    series: str | None = None,
    alerts: dict | None = None,
    processes: bool | None = None,
) -> list[dict]:
    """``encoders`` are embedded; ``roles`` (encoder id or store URL, series name) are
    compared, by ``pairs`` of indices (default: every pair of ``encoders``); every run then
    joins its series (``series``, or derived) and is checked against ``alerts``."""
    logger = get_run_logger()
    dataset = dataset or Layout(root).dataset(name)
    roles = roles or [(e, e) for e in encoders]
    processes = _local_processes(source, dataset, address, processes)
    with dask_cluster(address, processes=processes) as addr:
        if source is not None:
            summary = ingest(
                source,
                dataset,
                image_size=image_size,
                shard_size=shard_size,
                address=addr,
                progress=progress,
            )
            logger.info("ingest: %s", summary.get("counts"))
        for s in embed(dataset, encoders, device=device, batch_size=batch_size, progress=progress):
            logger.info("embed %s: %d vectors", s["encoder_id"], s["valid"])
        results = run_compare(
            dataset,
            [e for e, _ in roles],
            root=root,
            run_id=run_id,
            address=addr,
            warehouse=warehouse,
            params=compare,
            pairs=pairs,
            names=[n for _, n in roles],
            series=series,
        )
    runs = [r for r in results if "encoder_x" in r]  # not a group's matrix
    recorded = {
        r["run_id"]: r for r in record_series(root, warehouse, [r["run_id"] for r in runs], alerts)
    }
    return [{**r, **recorded.get(r.get("run_id"), {})} for r in results]


def _local_processes(source, dataset: str, address: str | None, processes: bool | None) -> bool:
    """Worker processes or threads for the audit's own cluster (said in the log): threads
    up to ``LIGHT_IMAGES`` images (the source's, or the ingested store's)."""
    size = source.size_up_to(LIGHT_IMAGES) if source is not None else None
    if source is None:
        size = DatasetStore.open(dataset).n_samples
    processes = use_processes(size, LIGHT_IMAGES, processes)
    if not address:
        get_run_logger().info("execution: %s", describe_local(processes, size, "images"))
    return processes


def audit(source: IngestSource | None, name: str, encoders: list[str], **kwargs) -> list[dict]:
    """Run :func:`audit_flow` (keyword arguments as it takes them). What needs no data is
    checked first, before any server or cluster starts: the source's paths, the encoders
    (ids and weights), and an ingested dataset store when there is no source. Raises a
    :class:`~speclens.errors.SpeclensError` (one sentence) for bad input."""
    check_audit(source, kwargs.get("dataset"), list(encoders))
    root = kwargs.get("root", "speclens-out")
    dataset = kwargs.get("dataset") or Layout(root).dataset(name)
    check_series(Layout(root).warehouse(kwargs.get("warehouse")), kwargs.get("series"), dataset)
    with prefect_api():
        state = audit_flow(
            source=source, name=name, encoders=list(encoders), **kwargs, return_state=True
        )
    return flow_result(state)


def audit_config(config, progress: bool = True) -> list[dict]:
    """Run the audit a validated :class:`speclens.config.AuditConfig` describes."""
    return audit(
        config.ingest_source(),
        config.name or config.source.kind,
        config.embed_ids,
        root=config.root,
        compare=config.compare,
        run_id=config.run_id,
        device=config.device,
        batch_size=config.batch_size,
        image_size=config.image_size,
        shard_size=config.shard_size,
        address=config.dask_address,
        progress=progress,
        dataset=config.dataset,
        warehouse=config.warehouse,
        roles=config.roles,
        pairs=config.pairs,
        series=config.series,
        alerts=config.alerts.model_dump() if config.alerts else None,
    )
