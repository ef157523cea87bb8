"""`speclens query "SQL"`: DuckDB over the warehouse, with runs, modes, members, pair_scores
as views; prints the result as an aligned table, CSV or JSON."""

from __future__ import annotations

import csv
import datetime as dt
import enum
import json
import math
import os
import sys
from typing import Annotated, Any

import typer

DEFAULT_WAREHOUSE = "./speclens-out/warehouse"
WAREHOUSE_ENV = "SPECLENS_WAREHOUSE"
MAX_CELL = 60


class Format(enum.StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


def query(
    sql: Annotated[
        str,
        typer.Argument(
            help="SQL over the views runs, modes, members, pair_scores (see docs/warehouse.md)."
        ),
    ],
    warehouse: Annotated[
        str | None,
        typer.Option(
            "--warehouse", help=f"Warehouse URL [default: ${WAREHOUSE_ENV} or {DEFAULT_WAREHOUSE}]."
        ),
    ] = None,
    fmt: Annotated[
        Format,
        typer.Option("--format", help=f"table (cells cut at {MAX_CELL} characters), csv or json."),
    ] = Format.table,
) -> None:
    """Run SQL (DuckDB) over the warehouse tables and print the result."""
    from speclens.storage import urls
    from speclens.storage.warehouse import QueryError, Warehouse

    url = warehouse or os.environ.get(WAREHOUSE_ENV) or DEFAULT_WAREHOUSE
    if not urls.exists(url):
        typer.echo(f"note: no warehouse at {url} yet; the tables are empty.", err=True)
    try:
        result = Warehouse(url).query(sql)
    except QueryError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    names = result.column_names
    rows = [[row[n] for n in names] for row in result.to_pylist()] if names else []
    if fmt is Format.csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(names)
        writer.writerows([[_csv_value(v) for v in row] for row in rows])
    elif fmt is Format.json:
        records = [dict(zip(names, map(_json_value, row), strict=True)) for row in rows]
        typer.echo(json.dumps(records, indent=1, ensure_ascii=False))
    else:
        typer.echo(aligned(names, rows))


def aligned(names: list[str], rows: list[list[Any]]) -> str:
    """Columns padded to their widest cell, numbers right-aligned, a rule under the header."""
    cells = [[_cut(_text(v, "NULL")) for v in row] for row in rows]
    widths = [max([len(n)] + [len(r[i]) for r in cells]) for i, n in enumerate(names)]
    numeric = [
        bool(rows) and all(isinstance(r[i], int | float) or r[i] is None for r in rows)
        for i in range(len(names))
    ]

    def line(values: list[str]) -> str:
        parts = [
            v.rjust(w) if num else v.ljust(w)
            for v, w, num in zip(values, widths, numeric, strict=True)
        ]
        return "  ".join(parts).rstrip()

    out = [line(names), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in cells]
    out.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(out)


def _text(value: Any, null: str) -> str:
    if value is None:
        return null
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return str(value)


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return str(value)  # floats in full precision


def _cut(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 3] + "..."


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, int | float | str | bool) or value is None:
        return value
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    return str(value)
