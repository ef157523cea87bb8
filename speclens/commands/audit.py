"""`speclens audit`: ingest -> embed -> compare -> warehouse and report, in one command.

From an audit config (``--config audit.yaml``, as the scheduled deployment reads it), from
flags (``--sample N`` or ``--dataset URL`` ..., ``--encoder A --encoder B``), or both: flags
override the file's keys. Runs on the shared local Prefect API (or PREFECT_API_URL's). A
config with problems prints one line per problem (the key and the fix), exits 2, runs nothing.
Every run joins its series (``speclens history``); when one crosses an alert threshold of the
config's ``alerts`` the command prints it and exits 3 (the runs are complete and published).
"""

from __future__ import annotations

import time
from typing import Annotated

import typer

from speclens.commands.options import compare_options

Opt = typer.Option


def _source(sample, dataset, folder, imagenet, labels, class_index, coco_images, captions):
    """The source mapping the flags name (None: none named); exits 2 when several are."""
    named = {
        "--sample": sample is not None,
        "--dataset": bool(dataset),
        "--folder": bool(folder),
        "--imagenet": bool(imagenet or labels or class_index),
        "--coco-images": bool(coco_images or captions),
    }
    given = [flag for flag, on in named.items() if on]
    if len(given) > 1:
        typer.echo(f"error: {' and '.join(given)} both name a dataset; pass one source.", err=True)
        raise typer.Exit(2)
    if sample is not None:
        return {"kind": "sample", "n": sample}
    if dataset:
        return {"kind": "dataset", "url": dataset}
    if folder:
        return {"kind": "folder", "path": folder}
    if named["--imagenet"]:
        extra = {k: v for k, v in (("labels", labels), ("class_index", class_index)) if v}
        return {"kind": "imagenet", "path": imagenet, **extra}
    if named["--coco-images"]:
        return {"kind": "coco", "images": coco_images, "captions": captions}
    return None


@compare_options(defaults=False)
def audit(
    config: Annotated[
        str | None,
        Opt(
            "--config",
            help="Audit config YAML (see deployments/audit.yaml); flags below override its keys.",
        ),
    ] = None,
    sample: Annotated[
        int | None, Opt("--sample", help="Source: N images of the embedded sample.")
    ] = None,
    dataset: Annotated[
        str | None, Opt("--dataset", help="Source: an ingested dataset store URL (skips ingest).")
    ] = None,
    folder: Annotated[str | None, Opt("--folder", help="Source: a folder of images.")] = None,
    imagenet: Annotated[
        str | None, Opt("--imagenet", help="Source: an ImageNet split folder.")
    ] = None,
    labels: Annotated[str | None, Opt("--labels", help="ImageNet val labels file.")] = None,
    class_index: Annotated[str | None, Opt("--class-index", help="ImageNet class index.")] = None,
    coco_images: Annotated[
        str | None, Opt("--coco-images", help="Source: COCO image folder.")
    ] = None,
    captions: Annotated[str | None, Opt("--captions", help="COCO captions JSON.")] = None,
    name: Annotated[
        str | None, Opt("--name", help="Dataset store name under <root>/datasets.")
    ] = None,
    encoder: Annotated[
        list[str] | None, Opt("--encoder", help="Encoder id; two or more (every pair compared).")
    ] = None,
    baseline: Annotated[
        str | None,
        Opt(
            "--baseline", help="Encoder id or embedding store URL the candidates are compared with."
        ),
    ] = None,
    candidate: Annotated[
        list[str] | None,
        Opt(
            "--candidate",
            help="Encoder id or store URL compared with --baseline; NAME=ID keeps a stable "
            "series name for an id that changes (e.g. nightly=open_clip:ViT-B-32@/ckpt/last.pt).",
        ),
    ] = None,
    series: Annotated[
        str | None,
        Opt("--series", help="Series name (default: derived from dataset, encoders, parameters)."),
    ] = None,
    root: Annotated[str | None, Opt("--root", help="Output root (default: speclens-out).")] = None,
    warehouse: Annotated[
        str | None, Opt("--warehouse", help="Warehouse URL (default: <root>/warehouse).")
    ] = None,
    run_id: Annotated[str | None, Opt("--run-id")] = None,
    device: Annotated[str | None, Opt("--device", help="auto, cpu, cuda or cuda:N.")] = None,
    dask_address: Annotated[
        str | None,
        Opt(
            "--dask-address", help="tcp://HOST:PORT of a Dask scheduler (default: a local cluster)."
        ),
    ] = None,
    progress: Annotated[bool, Opt("--progress/--no-progress")] = True,
    compare: dict | None = None,
) -> None:
    """Audit a dataset end to end: ingest, embed, compare every pair (or a baseline with each
    candidate), publish, and track each comparison as a series (exit 3: an alert fired)."""
    from speclens.commands.compare import print_runs
    from speclens.commands.exits import fail
    from speclens.config import merge, read_config, validate_config
    from speclens.errors import IncompleteRun, SpeclensError
    from speclens.tasks.checks import check_audit

    top = {
        "name": name,
        "encoders": encoder or None,
        "baseline": baseline,
        "candidates": [_candidate(c) for c in candidate] if candidate else None,
        "series": series,
        "root": root,
        "warehouse": warehouse,
        "run_id": run_id,
        "device": device,
        "dask_address": dask_address,
        "compare": compare or None,
    }
    source = _source(sample, dataset, folder, imagenet, labels, class_index, coco_images, captions)
    try:
        raw = read_config(config) if config else {}
        if isinstance(raw, dict):
            if baseline or candidate:  # roles from the flags replace the file's encoders
                raw = {k: v for k, v in raw.items() if k != "encoders"}
            elif encoder:
                raw = {k: v for k, v in raw.items() if k not in ("baseline", "candidates")}
            raw = merge(raw, {k: v for k, v in top.items() if v is not None})
            raw = {**raw, "source": source} if source else raw
        cfg = validate_config(raw, config or "audit flags")
        check_audit(cfg.ingest_source(), cfg.dataset, cfg.embed_ids)
        from speclens.flows.audit import audit_config  # Prefect is imported once all is checked

        t0 = time.perf_counter()
        results = audit_config(cfg, progress=progress)
    except SpeclensError as exc:
        fail(exc)
    except IncompleteRun as exc:  # shards failed after retries: the same command redoes them
        fail(exc, 1)
    typer.echo(f"\nAudit of {cfg.dataset} in {time.perf_counter() - t0:.0f} s.")
    print_runs(results)
    alerts = print_series(results)
    typer.echo(f"\nWarehouse: {cfg.warehouse_url}")
    if alerts:  # a finding, not a failure: its own exit code for cron and CI
        typer.echo(f"{alerts} alert(s) fired; exit code {ALERT_EXIT}.", err=True)
        raise typer.Exit(ALERT_EXIT)


#: The exit code of an audit in which a series crossed one of its alert thresholds.
ALERT_EXIT = 3


def _candidate(flag: str):
    """``NAME=ID`` -> {encoder, name}; a plain id or URL as it is."""
    name, sep, value = flag.partition("=")
    if sep and name and "/" not in name and ":" not in name:
        return {"encoder": value, "name": name}
    return flag


def print_series(results: list[dict]) -> int:
    """Each run's series and verdict, and its alerts; returns how many alerts fired."""
    fired = 0
    for r in results:
        if not r.get("series"):
            continue
        typer.echo(f"\nseries {r['series']}: {r['verdict']} (run {r['run_id']})")
        for a in r.get("alerts") or []:
            typer.echo(f"  ALERT: {a}")
            fired += 1
        if r.get("series_page"):
            typer.echo(f"  history: {r['series_page']}")
    return fired
