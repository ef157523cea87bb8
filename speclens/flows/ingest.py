"""The ingest flow: a dataset (ImageNet, COCO, image folder, embedded sample) -> Zarr store.

Reads like its table of contents:

1. ``plan-ingest``: list and validate the source; create the store, or reopen it to resume.
2. ``ingest-shard`` x pending shards, on Dask: read, checksum, decode, resize, write, commit.
3. ``finalize-ingest``: flag duplicate files, write the complete manifest.
4. A summary (counts, quarantine reasons, throughput): a Prefect artifact and the terminal.

Call :func:`ingest` from Python; ``speclens ingest ...`` on the command line.
"""

from __future__ import annotations

import time

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.context import FlowRunContext

from speclens.datasets.decode import DEFAULT_MAX_PIXELS
from speclens.datasets.ingest import IngestOptions
from speclens.datasets.sources import IngestSource, check_paths
from speclens.errors import IncompleteRun
from speclens.flows.runtime import collect_shards, flow_result, incomplete_message, run_flow
from speclens.storage import urls
from speclens.tasks.ingest import finalize_ingest, ingest_shard, plan_ingest


@flow(name="ingest")
def ingest_flow(
    source: IngestSource,
    out: str,
    options: IngestOptions | None = None,
    overwrite: bool = False,
    progress: bool = True,
):
    """Plan, one task per pending shard, finalize, summary. Returns the summary dict; raises
    an InputError (bad input) or an IncompleteRun (shards failed after their retries)."""
    logger = get_run_logger()
    options = options or IngestOptions()
    planned = plan_ingest(source, out, options, overwrite)
    pending = planned["pending"]
    logger.info(
        "%s: %d samples in %d shards; %d shard(s) to write%s",
        out,
        planned["n_samples"],
        planned["n_shards"],
        len(pending),
        f", {planned['n_shards'] - len(pending)} already committed" if planned["resumed"] else "",
    )
    if pending:
        _start_workers()
    t0 = time.perf_counter()
    futures = {ingest_shard.submit(out, shard_id): shard_id for shard_id in pending}
    written, failed = collect_shards(futures, planned["pending_rows"], "ingest", progress)
    seconds = time.perf_counter() - t0
    rows = sum(m["stop"] - m["start"] for m in written)
    run = {
        "shards_written": len(written),
        "shards_skipped": planned["n_shards"] - len(pending),
        "shards_failed": sorted(failed),
        "rows_written": rows,
        "seconds": round(seconds, 3),
        "images_per_s": round(rows / seconds, 1) if seconds > 0 and rows else 0.0,
    }
    if failed:
        _publish(
            {**run, "out": out, "n_samples": planned["n_samples"], "n_shards": planned["n_shards"]},
            logger,
        )
        raise IncompleteRun(incomplete_message(failed, planned["n_shards"], out))
    summary = {**finalize_ingest(out), **run, "out": out}
    _publish(summary, logger)
    return summary


def _start_workers() -> None:
    """Start the Dask cluster and load the task code on its workers before the clock
    starts, so the throughput measured is the workers' own."""
    runner = getattr(FlowRunContext.get(), "task_runner", None)
    if runner is not None and hasattr(runner, "client"):
        runner.client.run(load_task_code)


def load_task_code() -> None:
    """Import the task code (and Prefect's task engine) in a worker: what its first task
    would otherwise pay inside the measured time."""
    import prefect.task_engine  # noqa: F401

    import speclens.tasks.ingest  # noqa: F401


def _publish(summary: dict, logger) -> None:
    text = summary_markdown(summary)
    create_markdown_artifact(
        markdown=text, key="ingest-summary", description=f"ingest of {summary['out']}"
    )
    logger.info(" | ".join(summary_lines(summary)[1:]))


def summary_lines(s: dict) -> list[str]:
    """The summary as a few plain lines (terminal and logs)."""
    counts = s.get("counts", {})
    lines = [
        f"store {s['out'] if 'out' in s else s.get('url')}: {s['n_samples']} samples, "
        f"{s['n_shards']} shards",
        f"this run: {s.get('shards_written', 0)} shard(s) written, {s.get('shards_skipped', 0)} "
        f"already committed, {len(s.get('shards_failed', []))} failed; {s.get('rows_written', 0)} "
        f"images in {s.get('seconds', 0):.1f} s ({s.get('images_per_s', 0):.0f} images/s)",
    ]
    if counts:
        lines.append(
            f"ok {counts.get('ok', 0)}, quarantined {counts.get('quarantined', 0)}"
            + (f" (of which duplicates {s['duplicates']})" if s.get("duplicates") else "")
        )
    for title, key in (
        ("quarantined", "reasons"),
        ("converted", "conversions"),
        ("skipped while listing", "dropped"),
    ):
        if s.get(key):
            lines.append(f"{title}: " + ", ".join(f"{k} {v}" for k, v in sorted(s[key].items())))
    return lines


def summary_markdown(s: dict) -> str:
    counts = s.get("counts", {})
    out = [
        f"# Ingest summary: `{s.get('out') or s.get('url')}`",
        "",
        "| | |",
        "|---|---|",
        f"| samples | {s['n_samples']} |",
        f"| shards | {s['n_shards']} ({s.get('shards_written', 0)} written, "
        f"{s.get('shards_skipped', 0)} already committed, "
        f"{len(s.get('shards_failed', []))} failed) |",
        f"| ok | {counts.get('ok', '-')} |",
        f"| quarantined | {counts.get('quarantined', '-')} |",
        f"| throughput | {s.get('images_per_s', 0):.0f} images/s "
        f"({s.get('rows_written', 0)} in {s.get('seconds', 0):.1f} s) |",
    ]
    for title, key in (
        ("Quarantine reasons", "reasons"),
        ("Conversions", "conversions"),
        ("Skipped while listing", "dropped"),
    ):
        if s.get(key):
            out += ["", f"## {title}", "", "| | count |", "|---|---|"]
            out += [f"| {k} | {v} |" for k, v in sorted(s[key].items())]
    return "\n".join(out) + "\n"


def ingest(
    source: IngestSource,
    out: str,
    *,
    image_size: int | None = None,
    shard_size: int = 256,
    resize_policy: str = "center-crop",
    max_pixels: int = DEFAULT_MAX_PIXELS,
    overwrite: bool = False,
    workers: int | None = None,
    address: str | None = None,
    progress: bool = True,
    processes: bool = True,
) -> dict:
    """Ingest ``source`` into the store at ``out``; returns the summary.

    ``workers`` local Dask workers (processes, or threads of this process with
    ``processes=False``; always threads for ``memory://`` stores), or the scheduler at
    ``address``. Raises :class:`~speclens.errors.InputError` (bad input, one sentence) or
    :class:`~speclens.errors.IncompleteRun` (shards failed after retries; the same call again
    redoes only those).
    """
    options = IngestOptions(
        image_size=image_size,
        shard_size=shard_size,
        resize_policy=resize_policy,
        max_pixels=max_pixels,
    )
    check_paths(source)  # a wrong path fails here, before any server or cluster starts
    state = run_flow(
        ingest_flow,
        address=address,
        n_workers=workers,
        processes=processes and urls.protocol(out) != "memory",
        source=source,
        out=str(out),
        options=options,
        overwrite=overwrite,
        progress=progress,
    )
    return flow_result(state)
