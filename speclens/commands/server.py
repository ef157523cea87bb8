"""`speclens server start|stop|status`: the local Prefect API that speclens commands share.

Without ``PREFECT_API_URL`` every command uses one local Prefect server (started by the first
command that needs it, stopped after it has been idle for 30 minutes); these commands make
that explicit. With ``PREFECT_API_URL`` set, commands use that server and start nothing.
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Annotated

import typer

app = typer.Typer(help="The local Prefect API speclens commands share.", no_args_is_help=True)


def _site() -> str | None:
    url = os.environ.get("PREFECT_API_URL")
    if url:
        typer.echo(f"PREFECT_API_URL is set: speclens commands use {url} and start no server.")
    return url


def _describe(rec: dict) -> str:
    started = dt.datetime.fromtimestamp(rec["started"], dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"{rec['url']} (pid {rec['pid']}, started {started}, stops after "
        f"{rec['idle_s'] / 60:.3g} min without a request)"
    )


@app.command("start")
def start(
    idle_minutes: Annotated[
        float | None,
        typer.Option("--idle-minutes", help="Stop after this long without a request [30]."),
    ] = None,
) -> None:
    """Start the shared local server (or show the one running)."""
    from speclens.flows.local_server import ensure_server, running

    if _site():
        return
    before = running()
    rec = ensure_server(None if idle_minutes is None else 60 * idle_minutes)
    typer.echo(("running: " if before else "started: ") + _describe(rec))


@app.command("stop")
def stop() -> None:
    """Stop the shared local server."""
    from speclens.flows.local_server import stop_server

    rec = stop_server()
    typer.echo(f"stopped: {rec['url']} (pid {rec['pid']})" if rec else "no local server running.")


@app.command("status")
def status() -> None:
    """Say whether the shared local server runs, where, and until when."""
    from speclens.flows.local_server import read_record, running, state_dir

    if _site():
        return
    rec = running()
    if rec:
        typer.echo("running: " + _describe(rec))
    elif read_record():
        typer.echo(f"not running (a stale record in {state_dir()}; the next command replaces it).")
    else:
        typer.echo(f"not running; the next command starts one (state in {state_dir()}).")
