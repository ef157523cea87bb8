"""`speclens align`: SPEC-align an embedding to a reference, measured before and after."""

from __future__ import annotations

import json
from typing import Annotated

import typer


def align(
    dataset: Annotated[str, typer.Option("--dataset", help="Dataset store URL.")],
    encoder: Annotated[str, typer.Option("--encoder", help="Embedding to align (encoder id "
                       "or store URL).")],
    reference: Annotated[str, typer.Option("--reference", help="Reference embedding.")],
    mode: Annotated[str, typer.Option("--mode", help="adapter (trained on stored "
                    "embeddings).")] = "adapter",
    kind: Annotated[str, typer.Option("--kind", help="Adapter: linear or mlp.")] = "linear",
    preserve_weight: Annotated[float | None, typer.Option("--preserve-weight", help="Weight of "
                               "the term that keeps the encoder's own structure [default: the "
                               "adapter's measured default].")] = None,
    epochs: Annotated[int, typer.Option("--epochs", min=1)] = 30,
    train_frac: Annotated[float, typer.Option("--train-frac", min=0.05, max=0.95)] = 0.5,
    root: Annotated[str, typer.Option("--root")] = "speclens-out",
    run_id: Annotated[str | None, typer.Option("--run-id")] = None,
    rff_dim: Annotated[int, typer.Option("--rff-dim", min=1)] = 1000,
    n_modes: Annotated[int, typer.Option("--n-modes", min=1)] = 5,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    dask_address: Annotated[str | None, typer.Option("--dask-address")] = None,
) -> None:
    """Train an adapter so the encoder also captures the reference's groups; compare
    held-out samples before and after; publish both runs and an align report."""
    from speclens.commands.compare import fail
    from speclens.flows.align import align as run_align
    from speclens.storage.errors import InputError

    try:
        s = run_align(dataset, encoder, reference, root=root, run_id=run_id, mode=mode,
                      train_frac=train_frac, seed=seed, address=dask_address,
                      adapter_options={"kind": kind, "epochs": epochs,
                                       **({} if preserve_weight is None else
                                          {"preserve_weight": preserve_weight})},
                      compare_params={"rff_dim": rff_dim, "n_modes": n_modes})
    except (InputError, ValueError) as exc:
        fail(exc)
    b, a = s["before"]["spec_diff"], s["after"]["spec_diff"]
    typer.echo(f"{s['run_id']}: aligned {encoder} to {reference} -> {s['aligned_id']}")
    typer.echo(f"  held-out SPEC-diff, {reference} over the encoder: {b['x_over_y']:.4f} -> "
               f"{a['x_over_y']:.4f}; the reverse: {b['y_over_x']:.4f} -> {a['y_over_x']:.4f}")
    if s["probes"]:
        typer.echo(f"  label probes before -> after: {json.dumps(s['probes'])}")
    typer.echo(f"  report: {s['report']}")
