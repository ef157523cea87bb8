"""`speclens align`: SPEC-align an embedding to a reference, measured before and after."""

from __future__ import annotations

from typing import Annotated

import typer

from speclens.commands.options import compare_options
from speclens.spec.adapter_config import AdapterConfig
from speclens.tasks.align.options import TRAIN_FRAC, finetune_settings

ADAPTER = AdapterConfig()  # the adapter's defaults
FINETUNE = finetune_settings({})  # the fine-tune loop's and model's defaults

_ADAPTER = "Adapter mode only: "
_FINETUNE = "Finetune mode only: "


#: options that belong to one mode: (parameter name, flag, the mode it belongs to)
_MODE_OPTIONS = [
    ("kind", "--kind", "adapter"),
    ("preserve_weight", "--preserve-weight", "adapter"),
    ("epochs", "--epochs", "adapter"),
    ("steps", "--steps", "finetune"),
    ("lr", "--lr", "finetune"),
    ("spec_weight", "--spec-weight", "finetune"),
    ("checkpoint_every", "--checkpoint-every", "finetune"),
]


def _unused_options(ctx: typer.Context, mode: str) -> list[str]:
    """Flags given on the command line that the chosen mode does not use (compared by name:
    typer ships its own copy of click's ParameterSource)."""
    return [
        flag
        for name, flag, owner in _MODE_OPTIONS
        if owner != mode and getattr(ctx.get_parameter_source(name), "name", None) == "COMMANDLINE"
    ]


def probes_line(probes: dict) -> str:
    """The label probes before -> after, and the rows they used, in one line."""
    pb, pa, rows = probes["before"], probes["after"], probes["rows"]
    return (
        f"label k-NN {pb['knn']:.3f} -> {pa['knn']:.3f}; linear probe "
        f"{pb['linear_probe']:.3f} -> {pa['linear_probe']:.3f} (fit on {rows['train']}, "
        f"scored on {rows['held_out']} held-out rows)"
    )


@compare_options(exclude=("seed",))
def align(
    ctx: typer.Context,
    dataset: Annotated[str, typer.Option("--dataset", help="Dataset store URL.")],
    encoder: Annotated[
        str,
        typer.Option(
            "--encoder",
            help="Embedding to align (encoder id "
            "or store URL; with --mode finetune an open_clip:<arch>@<tag> id whose "
            "embedding is stored).",
        ),
    ],
    reference: Annotated[str, typer.Option("--reference", help="Reference embedding.")],
    mode: Annotated[
        str,
        typer.Option(
            "--mode",
            help="adapter: train an adapter on the stored "
            "embeddings; finetune: fine-tune the encoder's open_clip image tower on the "
            "images and captions (contrastive + SPEC-align loss), checkpointed and "
            "resumable by --run-id.",
        ),
    ] = "adapter",
    kind: Annotated[str, typer.Option("--kind", help=_ADAPTER + "linear or mlp.")] = ADAPTER.kind,
    preserve_weight: Annotated[
        float | None,
        typer.Option(
            "--preserve-weight",
            min=0.0,
            help=_ADAPTER + "weight of the term that keeps the encoder's own structure "
            "\\[default: the adapter's measured default].",
        ),
    ] = None,
    epochs: Annotated[
        int, typer.Option("--epochs", min=1, help=_ADAPTER + "training epochs.")
    ] = ADAPTER.epochs,
    steps: Annotated[
        int,
        typer.Option(
            "--steps",
            min=1,
            help=_FINETUNE + "optimiser steps in "
            "all (a rerun of the run id resumes up to this many).",
        ),
    ] = FINETUNE["steps"],
    batch_size: Annotated[
        int | None,
        typer.Option(
            "--batch-size",
            min=2,
            help="Rows per step: "
            "adapter, stored vectors \\[default: train rows / 4, 16 to 256]; "
            "finetune, images (also the embedding batch of the fine-tuned model) "
            "\\[default: 64].",
        ),
    ] = None,
    lr: Annotated[
        float, typer.Option("--lr", min=0.0, help=_FINETUNE + "AdamW learning rate.")
    ] = FINETUNE["lr"],
    spec_weight: Annotated[
        float,
        typer.Option(
            "--spec-weight",
            min=0.0,
            help=_FINETUNE + "weight of the SPEC-align loss beside the contrastive loss.",
        ),
    ] = FINETUNE["spec_weight"],
    checkpoint_every: Annotated[
        int,
        typer.Option(
            "--checkpoint-every",
            min=1,
            help=_FINETUNE + "steps between checkpoints (one is always written at the end).",
        ),
    ] = FINETUNE["checkpoint_every"],
    device: Annotated[
        str,
        typer.Option(
            "--device",
            help="Where the adapter or the fine-tune "
            "trains: auto (CUDA when present), cpu, cuda or cuda:N.",
        ),
    ] = "auto",
    train_frac: Annotated[float, typer.Option("--train-frac", min=0.05, max=0.95)] = TRAIN_FRAC,
    root: Annotated[str, typer.Option("--root")] = "speclens-out",
    run_id: Annotated[
        str | None,
        typer.Option(
            "--run-id",
            help="Name of the run; rerun a finetune run id to resume from its latest checkpoint.",
        ),
    ] = None,
    seed: Annotated[
        int, typer.Option("--seed", help="Seed of the split, the training and the comparisons.")
    ] = 0,
    dask_address: Annotated[str | None, typer.Option("--dask-address")] = None,
    compare: dict | None = None,
) -> None:
    """Align the encoder so it also captures the reference's groups (an adapter on the stored
    embeddings, or a fine-tuned open_clip image tower); compare held-out samples before and
    after; publish both runs and an align report."""
    from speclens.commands.exits import fail
    from speclens.errors import InputError, SpeclensError
    from speclens.tasks.checks import check_align
    from speclens.tasks.params import CompareParams

    given = {
        "kind": kind,
        "preserve_weight": preserve_weight,
        "epochs": epochs,
        "steps": steps,
        "lr": lr,
        "spec_weight": spec_weight,
        "checkpoint_every": checkpoint_every,
        "batch_size": batch_size,
    }
    owner = {name: mode_of for name, _, mode_of in _MODE_OPTIONS}
    options = {k: v for k, v in given.items() if owner.get(k, mode) == mode and v is not None}
    try:
        unused = _unused_options(ctx, mode) if mode in ("adapter", "finetune") else []
        if unused:
            raise InputError(
                f"{', '.join(unused)} {'is' if len(unused) == 1 else 'are'} not "
                f"used by --mode {mode}; drop {'it' if len(unused) == 1 else 'them'} "
                f"or pass the --mode {'finetune' if mode == 'adapter' else 'adapter'} "
                f"that uses {'it' if len(unused) == 1 else 'them'}."
            )
        CompareParams.from_options({"seed": seed, **compare}).one_bandwidth()
        check_align(dataset, encoder, reference, mode, options)  # before Prefect is imported
        from speclens.flows.align import align as run_align

        s = run_align(
            dataset,
            encoder,
            reference,
            root=root,
            run_id=run_id,
            mode=mode,
            train_frac=train_frac,
            seed=seed,
            address=dask_address,
            options=options,
            device=device,
            compare=compare,
        )
    except SpeclensError as exc:
        fail(exc)
    print_align(s, encoder, reference, mode)


def print_align(s: dict, encoder: str, reference: str, mode: str) -> None:
    """What an align run did: the aligned entry, the checkpoint, the gap and the probes."""
    b, a = s["before"]["spec_diff"], s["after"]["spec_diff"]
    typer.echo(f"{s['run_id']}: aligned {encoder} to {reference} ({mode}) -> {s['aligned_id']}")
    if mode == "finetune":
        ft = s["finetune"]
        typer.echo(
            f"  checkpoint: {ft['checkpoint']} (step {ft['checkpoint_step']}, "
            f"{ft['steps_run']} this run, sha256 {ft['checkpoint_sha256'][:12]})"
        )
    typer.echo(
        f"  held-out SPEC-diff, {reference} over the encoder: {b['x_over_y']:.4f} -> "
        f"{a['x_over_y']:.4f}; the reverse: {b['y_over_x']:.4f} -> {a['y_over_x']:.4f}"
    )
    if s["probes"]:
        typer.echo(f"  {probes_line(s['probes'])}")
    typer.echo(f"  report: {s['report']}")
