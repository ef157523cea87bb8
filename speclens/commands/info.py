"""`speclens info URL`: what a dataset store holds (counts, shards committed/pending, reasons)."""

from __future__ import annotations

import json
from typing import Annotated

import typer


def info(
    url: Annotated[str, typer.Argument(help="Dataset store URL.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Counts, shards (committed / pending), quarantine reasons of a dataset store."""
    from speclens.errors import InputError
    from speclens.storage.dataset_store import DatasetStore

    try:
        s = DatasetStore.open(url).summary()
    except InputError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if as_json:
        typer.echo(json.dumps(s, indent=1, sort_keys=True))
        return
    counts = s["counts"]
    pending = s["pending"]
    cfg = s["config"]
    lines = [
        f"store       {s['url']} ({s['state']})",
        "source      "
        + ", ".join(f"{k}={v}" for k, v in s["source"].items() if k != "wnids" and v is not None),
        f"images      {s['n_samples']} at {cfg['image_size']}x{cfg['image_size']} "
        f"({cfg['resize_policy']})",
        f"shards      {s['n_shards']} of {cfg['shard_size']}: {s['committed']} committed, "
        f"{len(pending)} pending" + (f" {_ranges(pending)}" if pending else ""),
        f"rows        {s['rows_committed']} committed: ok {counts.get('ok', 0)}, "
        f"quarantined {counts.get('quarantined', 0)}",
    ]
    for title, key in (
        ("quarantined", "reasons"),
        ("converted", "conversions"),
        ("skipped", "dropped"),
    ):
        for k, v in sorted(s[key].items()):
            lines.append(f"{title:<11} {v:>7}  {k}")
            title = ""
    lines.append(f"input hash  {s['input_hash']}")
    typer.echo("\n".join(lines))


def _ranges(ids: list[int]) -> str:
    """[0, 1, 2, 5] -> '0-2,5' (first 10 runs)."""
    runs, start = [], None
    for i, x in enumerate(ids):
        if start is None:
            start = x
        if i + 1 == len(ids) or ids[i + 1] != x + 1:
            runs.append(f"{start}-{x}" if x != start else str(x))
            start = None
    return ",".join(runs[:10]) + (",..." if len(runs) > 10 else "")
