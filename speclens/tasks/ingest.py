"""Prefect tasks of the ingest flow: thin wrappers that pass URLs, shard ids and counts.

``ingest_shard`` is retried only when it failed on I/O (``OSError``: the store or the
network); a bad image never fails it (it is quarantined), and a bug is not retried.
"""

from __future__ import annotations

from prefect import task
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


@task(
    name="ingest-shard",
    task_run_name="ingest-shard-{shard_id}",
    retries=3,
    retry_delay_seconds=[1, 4, 10],
    retry_condition_fn=retry_on_io_error,
    cache_policy=NO_CACHE,
    persist_result=False,
)
def ingest_shard(out: str, shard_id: int) -> dict:
    """Fill and commit one shard; returns its marker (counts, reasons, seconds)."""
    return steps.fill_shard(out, shard_id)


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
