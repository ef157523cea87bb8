"""`speclens export RUN --format parquet|atlas|hf --out DIR`: a run's samples, with their
images, as files other tools open (see :mod:`speclens.export`)."""

from __future__ import annotations

import enum
import shlex
from typing import Annotated

import typer

from speclens.commands.compare import Root, WarehouseOpt
from speclens.commands.exits import fail


class Format(enum.StrEnum):
    parquet = "parquet"
    atlas = "atlas"
    hf = "hf"


def export(
    run_id: Annotated[str, typer.Argument(help="A published run id.")],
    fmt: Annotated[
        Format,
        typer.Option(
            "--format",
            help="parquet: one file + PNG thumbnails; atlas: a folder embedding-atlas opens; "
            "hf: a Hugging Face dataset folder (load_dataset).",
        ),
    ],
    out: Annotated[str, typer.Option("--out", help="A new or empty local folder.")],
    root: Root = "speclens-out",
    warehouse: WarehouseOpt = None,
    dataset: Annotated[
        str | None,
        typer.Option("--dataset", help="Dataset store of the images, when not where the run says."),
    ] = None,
    thumbnail: Annotated[
        int, typer.Option("--thumbnail", help="Longest side of the thumbnails, in pixels.")
    ] = 128,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Export a run's samples (scores, mode, local agreement, map) with their images."""
    from speclens.errors import SpeclensError
    from speclens.export import export_run

    try:
        done = export_run(
            run_id, fmt.value, out, root, warehouse, dataset, thumbnail, progress=progress
        )
    except SpeclensError as exc:
        fail(exc)
    typer.echo(
        f"exported {done['rows']} samples of run {run_id} ({done['with_images']} with an image) "
        f"as {fmt.value} to {done['out']}"
    )
    if "command" in done:
        typer.echo(f"open it: cd {shlex.quote(done['out'])} && {done['command']}")
