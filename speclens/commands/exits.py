"""How a command ends on an expected failure: the sentence on stderr and an exit code."""

from __future__ import annotations

import typer


def fail(exc: Exception, code: int = 2):
    """End the command with ``exc``'s sentence on stderr and exit ``code`` (2: the input is
    wrong; 1: the run is incomplete). A config error lists its problems, one per line, and
    says nothing was run."""
    problems = getattr(exc, "problems", None)
    if problems:
        typer.echo(f"error: {exc.source}: {len(problems)} problem(s), nothing was run:", err=True)
        for line in problems:
            typer.echo(f"  {line}", err=True)
    else:
        typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(code) from None
