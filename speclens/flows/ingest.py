"""The ingest flow: a dataset (ImageNet, COCO, image folder, embedded sample) -> Zarr store.

Reads like its table of contents:

1. ``plan-ingest``: list and validate the source; create the store, or reopen it to resume.
2. ``ingest-shards`` x batches of pending shards (one per worker thread, at most
   :data:`MAX_SHARDS_PER_TASK` shards each: :func:`shard_batches`), on Dask: read, checksum,
   decode, resize, write, commit each shard.
3. ``finalize-ingest``: flag duplicate files, write the complete manifest.
4. A summary (counts, quarantine reasons, throughput): a Prefect artifact and the terminal.

Call :func:`ingest` from Python; ``speclens ingest ...`` on the command line.
"""

from __future__ import annotations

import functools
import time

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.context import FlowRunContext

from speclens.datasets.decode import DEFAULT_MAX_PIXELS
from speclens.datasets.ingest import IngestOptions, committed_markers
from speclens.datasets.sources import IngestSource, check_paths
from speclens.errors import IncompleteRun
from speclens.flows.runtime import (
    LIGHT_IMAGES,
    collect_shards,
    describe_local,
    failure_text,
    flow_result,
    incomplete_message,
    run_flow,
    use_processes,
)
from speclens.storage import urls
from speclens.tasks.ingest import finalize_ingest, ingest_shards, plan_ingest

#: At most this many shards per ingest task (see :func:`shard_batches`): the task's fixed
#: cost is then a few percent of its work, and retries and the progress bar stay fine-grained.
MAX_SHARDS_PER_TASK = 8


@flow(name="ingest")
def ingest_flow(
    source: IngestSource,
    out: str,
    options: IngestOptions | None = None,
    overwrite: bool = False,
    progress: bool = True,
):
    """Plan, one task per batch of pending shards, finalize, summary. Returns the summary
    dict; raises an InputError (bad input) or an IncompleteRun (shards failed after their
    retries)."""
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
    threads = _start_workers() if pending else 0
    t0 = time.perf_counter()
    futures = {ingest_shards.submit(out, batch): batch for batch in shard_batches(pending, threads)}
    settle = functools.partial(settle_batch, out)
    written, failed = collect_shards(futures, planned["pending_rows"], "ingest", progress, settle)
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


def _start_workers() -> int:
    """Start the Dask cluster and load the task code on its workers before the clock
    starts, so the throughput measured is the workers' own. Returns the workers' threads
    (0 when not known)."""
    runner = getattr(FlowRunContext.get(), "task_runner", None)
    if runner is None or not hasattr(runner, "client"):
        return 0
    runner.client.run(load_task_code)
    return sum(runner.client.nthreads().values())


def shard_batches(pending: list[int], threads: int) -> list[list[int]]:
    """The pending shards in consecutive batches of about equal size, one ingest task each:
    one batch per worker thread, or more when that would put more than
    :data:`MAX_SHARDS_PER_TASK` in a batch (``threads`` 0, not known: batches of that size).

    A task costs a fixed 0.35-0.5 s in the worker (a Prefect client, state reports) and
    opens the store; a batch pays it once and overlaps each shard's write with the next
    shard's decode (:func:`speclens.datasets.ingest.fill_shards`). Measured in
    docs/ingest.md, "Throughput"."""
    if not pending:
        return []
    n = max(min(len(pending), threads), -(-len(pending) // MAX_SHARDS_PER_TASK))
    size, extra = divmod(len(pending), n)
    out, start = [], 0
    for i in range(n):
        stop = start + size + (i < extra)
        out.append(list(pending[start:stop]))
        start = stop
    return out


def settle_batch(out: str, shard_ids: list[int], result, exc) -> tuple[list[dict], dict]:
    """A batch task's outcome as (markers, ``{shard_id: 'Type: message'}``): its own result,
    or, when the task failed after its retries (an I/O error), the markers its shards left
    and the failure for each shard without one."""
    if exc is None:
        return result["markers"], result["failed"]
    markers, failed = [], {}
    for shard_id, marker in committed_markers(out, shard_ids).items():
        if marker is None:
            failed[shard_id] = failure_text(exc)
        else:
            markers.append(marker)
    return markers, failed


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
    if s.get("execution"):
        lines.append(f"ran on {s['execution']}")
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
    processes: bool | None = None,
) -> dict:
    """Ingest ``source`` into the store at ``out``; returns the summary.

    ``workers`` local Dask workers (processes, or threads of this process with
    ``processes=False``; by default threads up to ``LIGHT_IMAGES`` images; always threads
    for ``memory://`` stores), or the scheduler at ``address``. Raises :class:`~speclens.errors.InputError` (bad input, one sentence) or
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
    size = source.size_up_to(LIGHT_IMAGES)  # a folder is walked once
    processes = use_processes(size, LIGHT_IMAGES, processes)
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
    summary = flow_result(state)
    if not address:
        summary["execution"] = describe_local(processes, size, "images")
    return summary
