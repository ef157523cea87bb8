"""`speclens embed ...`: embeddings of a dataset store, by encoder id or imported from files."""

from __future__ import annotations

from typing import Annotated

import typer

from speclens.commands.exits import fail

app = typer.Typer(
    help="Embed a dataset store with encoders, or import precomputed vectors.",
    invoke_without_command=True,
)


@app.callback()
def embed(
    ctx: typer.Context,
    dataset: Annotated[str | None, typer.Option("--dataset", help="Dataset store URL.")] = None,
    encoder: Annotated[
        list[str] | None,
        typer.Option(
            "--encoder",
            help="Encoder id "
            "(repeatable): hue-hist, grad-hist, pixels, open_clip:<arch>@<tag>, "
            "open_clip-text:<arch>@<tag>, timm:<model>@<tag>.",
        ),
    ] = None,
    out: Annotated[
        list[str] | None,
        typer.Option(
            "--out",
            help="Embedding store URL per "
            "encoder [default: <root>/embeddings/<dataset>/<encoder>.zarr].",
        ),
    ] = None,
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:N.")] = "auto",
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 64,
    normalize: Annotated[
        bool,
        typer.Option(
            "--normalize/--no-normalize", help="L2-normalise vectors (recorded in the store)."
        ),
    ] = False,
    seed: Annotated[int, typer.Option("--seed", help="Seed of @random weights.")] = 0,
    concurrency: Annotated[
        int,
        typer.Option(
            "--concurrency", min=1, help="Shards at once in this process (models per device)."
        ),
    ] = 1,
    address: Annotated[
        str | None, typer.Option("--address", help="Existing Dask scheduler to run the shards on.")
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite")] = False,
    progress: Annotated[bool, typer.Option("--progress/--no-progress")] = True,
) -> None:
    """Embed --dataset with each --encoder (resumable: a rerun redoes only missing shards)."""
    if ctx.invoked_subcommand is not None:
        return
    from speclens.errors import IncompleteRun, SpeclensError
    from speclens.tasks.checks import check_embed

    if not dataset or not encoder:
        fail(
            ValueError(
                "pass --dataset URL and at least one --encoder ID (see `speclens embed --help`)."
            )
        )
    if out and len(out) != len(encoder):
        fail(
            ValueError(
                f"{len(out)} --out for {len(encoder)} --encoder; give one per encoder or none."
            )
        )
    try:
        check_embed(dataset, encoder)  # in seconds, before Prefect is even imported
        from speclens.flows.embed import embed as run_embed
        from speclens.flows.embed import summary_lines

        summaries = run_embed(
            dataset,
            encoder,
            outs=out or None,
            device=device,
            batch_size=batch_size,
            normalize=normalize,
            seed=seed,
            overwrite=overwrite,
            concurrency=concurrency,
            address=address,
            progress=progress,
        )
    except SpeclensError as exc:
        fail(exc)
    except IncompleteRun as exc:
        fail(exc, 1)
    for s in summaries:
        for line in summary_lines(s):
            typer.echo(line)


@app.command("import")
def import_vectors(
    file: Annotated[str, typer.Argument(help=".npy (with --ids), .npz or .parquet file.")],
    dataset: Annotated[str, typer.Option("--dataset", help="Dataset store URL.")],
    name: Annotated[
        str,
        typer.Option(
            "--name",
            help="Encoder name for these vectors, e.g. my-model@v3; used as encoder id in compare.",
        ),
    ],
    out: Annotated[str | None, typer.Option("--out", help="Embedding store URL.")] = None,
    ids: Annotated[
        str | None,
        typer.Option("--ids", help="For .npy: text file (one sample_id per line) or .npy of ids."),
    ] = None,
    key: Annotated[str, typer.Option("--key", help=".npz array of vectors.")] = "embeddings",
    ids_key: Annotated[str, typer.Option("--ids-key", help=".npz array of ids.")] = "ids",
    id_column: Annotated[str, typer.Option("--id-column")] = "sample_id",
    vector_column: Annotated[str, typer.Option("--vector-column")] = "embedding",
    allow_missing: Annotated[
        bool,
        typer.Option(
            "--allow-missing", help="Accept vectors for a subset of the dataset's samples."
        ),
    ] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite")] = False,
) -> None:
    """Import precomputed vectors, matched to the dataset's rows by sample_id."""
    from speclens.errors import SpeclensError
    from speclens.tasks.vector_import import import_vectors as run_import

    try:
        summary = run_import(
            file,
            dataset,
            name,
            out=out,
            ids=ids,
            key=key,
            ids_key=ids_key,
            id_column=id_column,
            vector_column=vector_column,
            allow_missing=allow_missing,
            overwrite=overwrite,
        )
    except SpeclensError as exc:
        fail(exc)
    typer.echo(
        f"imported {summary['valid']} vectors of dim {summary['dim']} as "
        f"{summary['encoder_id']} -> {summary['out']}"
    )
