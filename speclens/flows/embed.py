"""The embed flow: a dataset store -> one embedding store per encoder.

Reads like its table of contents, for each encoder:

1. ``plan-embed``: check the dataset is complete, build the encoder, create the embedding
   store (or reopen it to resume), list the shards still to do.
2. ``embed-shard`` x pending shards: batched inference (on a GPU, the next batch is prepared
   on a loader thread meanwhile; on a CPU inline, since both would share the cores); rows
   then marker, one writer per shard.
3. ``finalize-embed``: counts and timings into the manifest; a summary artifact.

By default shards run in this process (``concurrency`` at a time, 1: one model per device);
with ``address`` they run on an existing Dask cluster, and with a CUDA device each task asks
for one ``GPU`` resource, so a GPU worker started with ``--resources GPU=1`` runs one at a time.
Call :func:`embed` from Python; ``speclens embed ...`` on the command line.
"""

from __future__ import annotations

import contextlib
import time

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.task_runners import ThreadPoolTaskRunner

from speclens.errors import IncompleteRun
from speclens.flows.runtime import (
    collect_shards,
    flow_result,
    incomplete_message,
    prefect_api,
    task_runner,
)
from speclens.storage.layout import Layout
from speclens.tasks.checks import check_embed
from speclens.tasks.embed import embed_shard, finalize_embed, plan_embed


@flow(name="embed")
def embed_flow(
    dataset: str,
    encoders: list[str],
    outs: list[str],
    device: str = "auto",
    batch_size: int = 64,
    normalize: bool = False,
    seed: int = 0,
    overwrite: bool = False,
    progress: bool = True,
):
    settings = {"device": device, "batch_size": batch_size, "normalize": normalize, "seed": seed}
    return [
        embed_one(dataset, encoder_id, out, settings, overwrite, progress)
        for encoder_id, out in zip(encoders, outs, strict=True)
    ]


def embed_one(
    dataset: str,
    encoder_id: str,
    out: str,
    settings: dict,
    overwrite: bool,
    progress: bool,
    entry: dict | None = None,
) -> dict:
    """Plan, embed the pending shards, finalize; the summary of one encoder's store
    (``settings``: device, batch_size, normalize, seed; ``entry``: see ``plan_embed``)."""
    logger = get_run_logger()
    plan = plan_embed(dataset, out, encoder_id, overwrite=overwrite, entry=entry, **settings)
    logger.info(
        "%s -> %s: %d shards, %d to embed%s",
        *(plan["encoder_id"], out, plan["n_shards"], len(plan["pending"])),
        " (resuming)" if plan["resumed"] else "",
    )
    t0 = time.perf_counter()
    with _gpu_annotation(settings["device"]):
        futures = {
            embed_shard.submit(dataset, out, encoder_id, shard_id, **settings): shard_id
            for shard_id in plan["pending"]
        }
    _, failed = collect_shards(futures, plan["pending_rows"], f"embed {encoder_id}", progress)
    if failed:
        raise IncompleteRun(incomplete_message(failed, plan["n_shards"], out))
    seconds = time.perf_counter() - t0
    summary = {
        **finalize_embed(out),
        "seconds": round(seconds, 3),
        "rows_written": plan["pending_rows"],
        "images_per_s": round(plan["pending_rows"] / seconds, 1) if seconds else 0.0,
    }
    create_markdown_artifact(
        markdown=summary_markdown(summary),
        key="embed-summary",
        description=f"embedding {encoder_id} of {dataset}",
    )
    logger.info(" | ".join(summary_lines(summary)))
    return summary


@contextlib.contextmanager
def _gpu_annotation(device: str):
    if not str(device).startswith("cuda"):
        yield
        return
    import dask

    with dask.annotate(resources={"GPU": 1}):
        yield


def summary_lines(s: dict) -> list[str]:
    t = s.get("timings", {})
    return [
        f"{s['encoder_id']} -> {s['out']}: {s['valid']} vectors of dim {s['dim']} "
        f"({s['invalid']} rows without one)",
        f"this run: {s['rows_written']} rows in {s['seconds']:.1f} s ({s['images_per_s']:.0f}/s); "
        f"read {t.get('read_s', 0):.1f} s, prepare {t.get('prepare_s', 0):.1f} s, "
        f"compute {t.get('compute_s', 0):.1f} s",
    ]


def summary_markdown(s: dict) -> str:
    return (
        "\n".join(
            [
                f"# Embedding `{s['encoder_id']}`",
                "",
                *[f"- {x}" for x in summary_lines(s)],
                f"- store: `{s['out']}`",
                f"- dataset input hash: `{s['dataset_input_hash']}`",
            ]
        )
        + "\n"
    )


def embed(
    dataset: str,
    encoders: list[str] | str,
    *,
    outs: list[str] | None = None,
    device: str = "auto",
    batch_size: int = 64,
    normalize: bool = False,
    seed: int = 0,
    overwrite: bool = False,
    concurrency: int = 1,
    address: str | None = None,
    progress: bool = True,
) -> list[dict]:
    """Embed ``dataset`` with each encoder; returns one summary per encoder.

    Raises a :class:`~speclens.errors.SpeclensError` (bad input, one sentence; checked before
    any server starts where the input alone shows it) or an
    :class:`~speclens.errors.IncompleteRun`.
    """
    encoders = [encoders] if isinstance(encoders, str) else list(encoders)
    check_embed(str(dataset), encoders)
    outs = outs or [Layout.embedding(dataset, e) for e in encoders]
    runner = (
        task_runner(address)
        if address
        else ThreadPoolTaskRunner(max_workers=max(1, int(concurrency)))
    )
    with prefect_api():
        state = embed_flow.with_options(task_runner=runner)(
            dataset=str(dataset),
            encoders=encoders,
            outs=outs,
            device=device,
            batch_size=batch_size,
            normalize=normalize,
            seed=seed,
            overwrite=overwrite,
            progress=progress,
            return_state=True,
        )
    return flow_result(state)
