"""Prefect tasks of the ingest flow: thin wrappers that pass URLs, shard ids and counts.

``ingest_shards`` fills a batch of shards (the flow sizes the batches; see
:func:`speclens.flows.ingest.shard_batches`). It is retried only when a shard failed on I/O
(``OSError``: the store or the network), and a retry redoes only the shards of the batch
without a marker; a bad image never fails it (it is quarantined), and a bug is not retried:
the shards it failed are returned with their messages and end the run as failed shards.
"""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from speclens.datasets import ingest as steps
from speclens.datasets.sources import IngestSource
from speclens.tasks.retries import retry_on_io_error


@task(name="plan-ingest", cache_policy=NO_CACHE, persist_result=False)
def plan_ingest(
    source: IngestSource, out: str, options: steps.IngestOptions, overwrite: bool
) -> dict:
    """List the source and create (or reopen to resume) the store."""
    return steps.prepare(source, out, options, overwrite)


def _batch_name() -> str:
    from prefect.runtime import task_run

    ids = task_run.parameters["shard_ids"]
    return f"ingest-shards-{ids[0]}" + (f"-{ids[-1]}" if len(ids) > 1 else "")


@task(
    name="ingest-shards",
    task_run_name=_batch_name,
    retries=3,
    retry_delay_seconds=[1, 4, 10],
    retry_condition_fn=retry_on_io_error,
    cache_policy=NO_CACHE,
    persist_result=False,
)
def ingest_shards(out: str, shard_ids: list[int]) -> dict:
    """Fill and commit a batch of shards; returns ``{"markers": [...], "failed": {shard:
    "Type: message"}}``. Raises the first I/O error (after the batch's other shards are
    done), so that Prefect retries the batch."""
    markers, failed = steps.fill_shards(out, shard_ids, skip_committed=True)
    io_errors = [exc for exc in failed.values() if isinstance(exc, OSError)]
    if io_errors:
        raise io_errors[0]
    messages = {shard_id: f"{type(exc).__name__}: {exc}" for shard_id, exc in failed.items()}
    for shard_id, message in sorted(messages.items()):
        get_run_logger().error("shard %d failed: %s", shard_id, message)
    return {"markers": markers, "failed": messages}


@task(
    name="finalize-ingest",
    retries=2,
    retry_delay_seconds=2,
    retry_condition_fn=retry_on_io_error,
    cache_policy=NO_CACHE,
    persist_result=False,
)
def finalize_ingest(out: str) -> dict:
    """Flag duplicates, write the complete manifest; returns the store summary."""
    return steps.finalize(out)
