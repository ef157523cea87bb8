"""`speclens compare`, `speclens report`: find and publish what differs (``print_runs`` is
shared with `speclens audit`)."""

from __future__ import annotations

from typing import Annotated

import typer

from speclens.commands.exits import fail
from speclens.commands.options import compare_options

Root = Annotated[str, typer.Option("--root", help="Output root: runs/, warehouse/, reports/.")]
WarehouseOpt = Annotated[
    str | None, typer.Option("--warehouse", help="Warehouse URL, when not <root>/warehouse.")
]


def print_runs(results: list[dict], top: int = 3) -> None:
    from speclens.report.evidence import exact_rows, rff_sentence
    from speclens.report.numbers import caveats, mode_numbers, significant_sentence
    from speclens.storage.layout import Layout
    from speclens.storage.warehouse import Warehouse

    sweep_last = {r["sweep_report"]: r for r in results if r.get("sweep_report")}
    for r in results:
        if "matrix" in r:
            typer.echo(f"\nSPEC-diff matrix (row over column) of {len(r['encoders'])} encoders:")
            width = max(len(e) for e in r["encoders"])
            for e, row in zip(r["encoders"], r["matrix"], strict=True):
                typer.echo(f"  {e:<{width}}  " + "  ".join(f"{v:8.4f}" for v in row))
            typer.echo(f"  report: {r['report']}")
            continue
        sd = r["spec_diff"]
        typer.echo(f"\n{r['run_id']}: {r['encoder_x']} vs {r['encoder_y']} (n={r['n']})")
        typer.echo(
            f"  SPEC-diff: {sd['x_over_y']:.4f} ({r['encoder_x']} over {r['encoder_y']}), "
            f"{sd['y_over_x']:.4f} (the reverse)"
        )
        wh = r.get("warehouse") or Layout.of_report(r["report"]).warehouse()
        modes = Warehouse(wh).read("modes", r["run_id"]).sort_by("mode").to_pylist()
        if sentence := significant_sentence(modes, r["encoder_x"], r["encoder_y"]):
            typer.echo(f"  {sentence}")
        run = Warehouse(wh).read("runs", r["run_id"]).to_pylist()[0]
        if sentence := rff_sentence(run):
            typer.echo(f"  {sentence}")
        for j, lam, _, exact, rel in exact_rows(modes):
            typer.echo(f"  exact check, mode {j}: {lam:.4g} here, {exact:.4g} exact ({rel:.1%})")
        for direction, who, other in (
            ("x_over_y", r["encoder_x"], r["encoder_y"]),
            ("y_over_x", r["encoder_y"], r["encoder_x"]),
        ):
            typer.echo(f"  captured by {who}, not by {other}:")
            for m in [m for m in modes if m["direction"] == direction][:top]:
                flags = "; ".join(caveats(m))
                typer.echo(f"    mode {m['mode']:>2}  {mode_numbers(m)}  {m['summary']}")
                if flags:
                    typer.echo(f"             ({flags})")
        typer.echo(f"  report: {r['report']}")
        if r.get("sweep_report") and r is sweep_last.get(r["sweep_report"]):
            print_sweep(r["sweep_id"], r["sweep_report"], wh)


def print_sweep(sweep_id: str, page: str, warehouse: str) -> None:
    """The sweep's answer: SPEC-diff per scale, and where it peaks and where labels gather."""
    from speclens.report.sweep import sweep_summary
    from speclens.storage.warehouse import Warehouse
    from speclens.tasks.sweep import sweep_entries

    s = sweep_summary(sweep_entries(Warehouse(warehouse), sweep_id))
    typer.echo(f"\nbandwidth sweep {sweep_id} ({s['estimate']} SPEC-diff per scale):")
    for scale, d, c in zip(s["scales"], s["difference"], s["concentration"], strict=True):
        share = "" if c is None else f"   leading modes' label share {c:.0%}"
        typer.echo(f"  scale {scale:<8g} SPEC-diff {d:.4f}{share}")
    typer.echo(f"  largest difference at scale {s['peak_scale']:g}")
    if s["concentrated_scale"] is not None:
        typer.echo(f"  most label-concentrated modes at scale {s['concentrated_scale']:g}")
    typer.echo(f"  sweep page: {page}")


@compare_options()
def compare(
    dataset: Annotated[str, typer.Option("--dataset", help="Dataset store URL.")],
    encoder: Annotated[
        list[str],
        typer.Option(
            "--encoder",
            help="Encoder id or embedding store URL; two or more (every pair is compared).",
        ),
    ],
    root: Root = "speclens-out",
    warehouse: WarehouseOpt = None,
    run_id: Annotated[
        str | None,
        typer.Option("--run-id", help="Rerunning an id overwrites its own partitions only."),
    ] = None,
    dask_address: Annotated[
        str | None,
        typer.Option("--dask-address", help="tcp://HOST:PORT of an existing Dask scheduler."),
    ] = None,
    compare: dict | None = None,
) -> None:
    """Compare embeddings of one dataset: modes, SPEC-diff, warehouse rows, report."""
    from speclens.errors import SpeclensError
    from speclens.tasks.checks import check_compare
    from speclens.tasks.params import CompareParams

    try:
        params = CompareParams.from_options(compare)
        check_compare(dataset, encoder)  # in seconds, before Prefect is even imported
        from speclens.flows.compare import compare as run_compare

        results = run_compare(
            dataset,
            encoder,
            root=root,
            run_id=run_id,
            address=dask_address,
            warehouse=warehouse,
            params=params,
        )
    except SpeclensError as exc:
        fail(exc)
    print_runs(results)


def report(
    run_id: Annotated[str, typer.Argument(help="A published run id.")],
    root: Root = "speclens-out",
    warehouse: WarehouseOpt = None,
) -> None:
    """(Re)write the HTML report of a published run from the warehouse."""
    from speclens.errors import InputError
    from speclens.flows.runtime import prefect_api
    from speclens.storage.layout import Layout
    from speclens.storage.warehouse import Warehouse
    from speclens.tasks.publish import write_run_report

    wh_url = Layout(root).warehouse(warehouse)
    runs = Warehouse(wh_url).read("runs", run_id).to_pylist()
    if not runs:
        fail(
            InputError(
                f"no run {run_id!r} in {wh_url}; list runs with "
                f'`speclens query "select run_id from runs"`.'
            )
        )
    with prefect_api():
        path = write_run_report.fn(runs[0]["dataset"], root, run_id, warehouse)
    typer.echo(path)
