"""Every write to the warehouse goes through :func:`conform`: rows (dicts or a table) become a
table with exactly the table's file schema (:mod:`speclens.storage.warehouse_schema`), or a
ValueError naming the table, the column and the fix."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pyarrow as pa

from speclens.storage.warehouse_schema import SCHEMAS, TYPE_NAMES, file_schema, meta, table_key


def check_table_name(table: str) -> None:
    if table not in SCHEMAS:
        raise ValueError(f"unknown warehouse table {table!r}; use one of {', '.join(SCHEMAS)}.")


def conform(table: str, run_id: str, rows: list[dict] | pa.Table) -> pa.Table:
    """``rows`` as a table with exactly ``file_schema(table)``, or a ValueError that names the
    table, the column and the fix. ``run_id`` may be absent from the rows; where present it
    must equal ``run_id``."""
    check_table_name(table)
    if isinstance(rows, pa.Table):
        columns = {name: rows.column(name) for name in rows.column_names}
    else:
        columns = _columns_from_rows(table, rows)
    given = columns.pop("run_id", None)
    if given is not None and any(v != run_id for v in _pylist(given)):
        raise ValueError(
            f"warehouse table {table!r}: column 'run_id' holds a value other than {run_id!r}; "
            "drop the column or write each run id separately."
        )
    schema = file_schema(table)
    extra = sorted(set(columns) - set(schema.names))
    if extra:
        raise _extra_column(table, extra[0])
    arrays = [_column(table, field, columns) for field in schema]
    out = pa.Table.from_arrays(arrays, schema=schema)
    _check_rows(table, out)
    return out


def _columns_from_rows(table: str, rows: list[dict]) -> dict[str, list]:
    if not isinstance(rows, list | tuple) or not all(isinstance(r, dict) for r in rows):
        raise ValueError(
            f"warehouse table {table!r}: rows must be a list of dicts or a pyarrow.Table, "
            f"got {type(rows).__name__}."
        )
    if not rows:  # no rows: an empty partition (it still replaces the run's old rows)
        return {name: [] for name in SCHEMAS[table].names}
    names = list(dict.fromkeys(k for r in rows for k in r))
    for name in names:
        if name not in SCHEMAS[table].names:
            raise _extra_column(table, name)
    for i, row in enumerate(rows):
        missing = [k for k in names if k not in row]
        if missing:
            raise ValueError(
                f"warehouse table {table!r}: row {i} has no column {missing[0]!r} (other rows "
                "have it); give every row the same keys, None for a missing value."
            )
    return {k: [r[k] for r in rows] for k in names}


def _pylist(values) -> list:
    return values.to_pylist() if hasattr(values, "to_pylist") else list(values)


def _height(columns: dict) -> int:
    first = next(iter(columns.values()), [])
    return len(first)


def _column(table: str, field: pa.Field, columns: dict) -> pa.Array:
    name, type_name = field.name, TYPE_NAMES[field.type]
    where = f"warehouse table {table!r}: column {name!r}"
    if name not in columns:
        if field.nullable:  # a column no row names is null, as in files written before it
            return pa.nulls(_height(columns), field.type)
        raise ValueError(f"{where} is missing; add it ({type_name}: {meta(field, 'doc')}).")
    values = columns[name]
    if meta(field, "json"):
        values = [_json_text(where, v) for v in _pylist(values)]
    try:
        if isinstance(values, pa.ChunkedArray | pa.Array):
            array = _cast(values, field.type)
        else:
            _check_numbers(values, field.type)
            array = pa.array(values, type=field.type)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError) as exc:
        raise ValueError(
            f"{where} must hold {type_name} values ({_first_line(exc)}); convert it to {type_name}."
        ) from None
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if not field.nullable and array.null_count:
        row = array.is_null().to_pylist().index(True)
        raise ValueError(f"{where} has no value in row {row}; it may not be null.")
    allowed = meta(field, "values")
    if allowed:
        bad = sorted({v for v in array.to_pylist() if v is not None} - set(allowed.split(",")))
        if bad:
            raise ValueError(f"{where} holds {bad[0]!r}; use one of {allowed.replace(',', ', ')}.")
    return array


def _check_numbers(values: list, target: pa.DataType) -> None:
    """What pyarrow would convert silently: bools to numbers, 1.5 to the integer 1."""
    if not (pa.types.is_integer(target) or pa.types.is_floating(target)):
        return
    for v in values:
        if isinstance(v, bool | np.bool_):
            raise TypeError(f"got the bool {v!r}")
        if pa.types.is_integer(target) and isinstance(v, float | np.floating) and v != int(v):
            raise TypeError(f"got the fraction {v!r}")


def _cast(values, target: pa.DataType):
    """Casts a table column may take: the same type, integers to wider integers or float64,
    float32 to float64, other timestamps (converted to UTC microseconds), large strings."""
    source = values.type
    ok = (
        source == target
        or (pa.types.is_integer(source) and (pa.types.is_integer(target) or target == pa.float64()))
        or (pa.types.is_floating(source) and pa.types.is_floating(target))
        or (pa.types.is_timestamp(source) and pa.types.is_timestamp(target) and source.tz)
        or (pa.types.is_null(source))
        or (pa.types.is_large_string(source) and pa.types.is_string(target))
    )
    if not ok:
        raise TypeError(f"got {TYPE_NAMES.get(source, str(source))}")
    return values.cast(target, safe=True)


def _json_text(where: str, value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            json.loads(value)
        except ValueError:
            raise ValueError(
                f"{where} must hold JSON text; {value[:40]!r} does not parse."
            ) from None
        return value
    try:
        return json.dumps(value, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: {exc}; pass plain dicts of str, numbers, lists.") from None


def _check_rows(table: str, data: pa.Table) -> None:
    if table == "runs" and data.num_rows != 1:
        raise ValueError(
            f"warehouse table 'runs' takes exactly one row per run id, got {data.num_rows}."
        )
    key = [k for k in table_key(table) if k != "run_id"]
    if not key:
        return
    seen: set[tuple] = set()
    for row in zip(*(data.column(k).to_pylist() for k in key), strict=True):
        if row in seen:
            shown = ", ".join(f"{k}={v!r}" for k, v in zip(key, row, strict=True))
            raise ValueError(
                f"warehouse table {table!r}: two rows have {shown}; ({', '.join(key)}) must be "
                "unique within a run."
            )
        seen.add(row)


def _extra_column(table: str, name: str) -> ValueError:
    return ValueError(
        f"warehouse table {table!r}: column {name!r} is not in the schema; remove it, "
        f"or add it to SCHEMAS[{table!r}] and docs/warehouse.md."
    )


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
