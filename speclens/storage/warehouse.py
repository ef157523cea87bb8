"""The Parquet warehouse: six tables, hive-partitioned by run id, queried with DuckDB.

Layout (every location an fsspec URL)::

    <root>/<table>/run_id=<id>/part-0.parquet      table in runs, modes, members, pair_scores

The files hold every column but ``run_id`` (it is the partition folder, as Spark, Trino,
BigQuery and DuckDB expect). A write validates the rows against ``SCHEMAS[table]``, writes a
hidden temporary file (``.tmp-*``) in the table folder, then moves it onto the run's
``part-0.parquet``: a rerun of a run id replaces that run's partition and nothing else, and a
crash mid-write leaves the old partition whole (readers skip hidden files). Schemas and the
meaning of every column: ``speclens/storage/warehouse_schema.py``, ``docs/warehouse.md``.
"""

from __future__ import annotations

import re
import uuid

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from speclens.errors import InputError
from speclens.storage import urls
from speclens.storage.warehouse_conform import check_table_name, conform
from speclens.storage.warehouse_schema import SCHEMAS

__all__ = ["SCHEMAS", "Warehouse", "QueryError", "check_run_id"]

PART = "part-0.parquet"
_SQL_TYPES = {
    pa.bool_(): "BOOLEAN",
    pa.string(): "VARCHAR",
    pa.int32(): "INTEGER",
    pa.int64(): "BIGINT",
    pa.float64(): "DOUBLE",
    pa.timestamp("us", tz="UTC"): "TIMESTAMPTZ",
}
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


class QueryError(InputError):
    """A SQL query the warehouse could not run (DuckDB's message, on one line)."""


def check_run_id(run_id: str) -> str:
    """A run id is a path segment: letters, digits, '.', '_', '-', first a letter or digit."""
    if not isinstance(run_id, str) or not _RUN_ID.fullmatch(run_id):
        raise ValueError(
            f"run id {run_id!r} cannot name a partition; use 1-128 letters, digits, '.', '_' "
            "or '-', starting with a letter or digit."
        )
    return run_id


class Warehouse:
    """The warehouse at ``root`` (a local path or any fsspec URL)."""

    def __init__(self, root: str):
        self.root = str(root).rstrip("/") or str(root)
        self.fs, self._path = urls.fs_and_path(self.root)

    def __repr__(self) -> str:
        return f"Warehouse({self.root!r})"

    # ---- paths --------------------------------------------------------------------------
    def _table_dir(self, table: str) -> str:
        return f"{self._path.rstrip('/')}/{table}"

    def _part(self, table: str, run_id: str) -> str:
        return f"{self._table_dir(table)}/run_id={run_id}/{PART}"

    def partition_url(self, table: str, run_id: str) -> str:
        """URL of the file that holds ``run_id``'s rows of ``table``."""
        check_table_name(table)
        return urls.full_url(self.fs, self._part(table, check_run_id(run_id)))

    # ---- write --------------------------------------------------------------------------
    def write(self, table: str, run_id: str, rows: list[dict] | pa.Table) -> str:
        """Replace ``run_id``'s partition of ``table`` with ``rows``; returns the file's URL.

        Rows are dicts (``run_id`` optional) or a pyarrow Table; they must match
        ``SCHEMAS[table]`` (a nullable column no row names is written as nulls; a missing
        non-null column or an extra one, a wrong type, a null in a
        non-null column or a duplicate key raises ValueError naming the column and the fix).
        An empty list writes an empty partition, which still replaces the old rows."""
        check_run_id(run_id)
        data = conform(table, run_id, rows)
        fs, table_dir = self.fs, self._table_dir(table)
        final = self._part(table, run_id)
        tmp = f"{table_dir}/.tmp-{uuid.uuid4().hex}-{PART}"
        fs.makedirs(table_dir, exist_ok=True)
        try:
            with fs.open(tmp, "wb") as f:
                pq.write_table(data, f)
            fs.makedirs(fs._parent(final), exist_ok=True)
            fs.mv(tmp, final)
        finally:
            if fs.exists(tmp):
                fs.rm_file(tmp)
        for other in fs.ls(fs._parent(final), detail=False):  # older layouts: one file per run
            if other.rstrip("/").rsplit("/", 1)[-1] != PART:
                fs.rm(other, recursive=True)
        return urls.full_url(fs, final)

    def delete(self, run_id: str, tables: list[str] | None = None) -> None:
        """Remove ``run_id``'s partitions (of ``tables``, default all)."""
        check_run_id(run_id)
        for table in tables or list(SCHEMAS):
            check_table_name(table)
            folder = f"{self._table_dir(table)}/run_id={run_id}"
            if self.fs.exists(folder):
                self.fs.rm(folder, recursive=True)

    # ---- read ---------------------------------------------------------------------------
    def run_ids(self, table: str | None = None) -> list[str]:
        """Sorted run ids with a partition in ``table`` (default: in any table)."""
        found: set[str] = set()
        for name in [table] if table else list(SCHEMAS):
            check_table_name(name)
            folder = self._table_dir(name)
            if not self.fs.exists(folder):
                continue
            for entry in self.fs.ls(folder, detail=False):
                base = entry.rstrip("/").rsplit("/", 1)[-1]
                if base.startswith("run_id=") and self.fs.exists(f"{entry.rstrip('/')}/{PART}"):
                    found.add(base[len("run_id=") :])
        return sorted(found)

    def read(self, table: str, run_id: str | None = None) -> pa.Table:
        """Rows of ``table`` (of one run, or of all runs) with exactly ``SCHEMAS[table]``;
        an absent run or table gives an empty table."""
        check_table_name(table)
        ids = [check_run_id(run_id)] if run_id is not None else self.run_ids(table)
        parts = [self._read_part(table, rid) for rid in ids]
        parts = [p for p in parts if p is not None]
        return pa.concat_tables(parts) if parts else SCHEMAS[table].empty_table()

    def _read_part(self, table: str, run_id: str) -> pa.Table | None:
        path = self._part(table, run_id)
        if not self.fs.exists(path):
            return None
        with self.fs.open(path, "rb") as f:
            data = pq.read_table(f)
        target = SCHEMAS[table]
        arrays = []
        for field in target:
            if field.name == "run_id":
                arrays.append(pa.array([run_id] * data.num_rows, pa.string()))
            elif field.name in data.column_names:  # files from an older schema lack new columns
                arrays.append(data.column(field.name).cast(field.type))
            else:
                arrays.append(pa.nulls(data.num_rows, field.type))
        return pa.Table.from_arrays(arrays, schema=target)

    # ---- SQL ----------------------------------------------------------------------------
    def connect(self) -> duckdb.DuckDBPyConnection:
        """An in-memory DuckDB connection with views ``runs``, ``modes``, ``members``,
        ``pair_scores`` over the Parquet files (``run_id`` read from the folder names). A
        table with no partition yet is an empty view with the table's schema."""
        con = duckdb.connect()
        try:
            con.execute("SET TimeZone = 'UTC'")
        except duckdb.Error:  # no ICU: timestamps print in the session's zone
            pass
        local = urls.is_local(self.root)
        if not local:
            con.register_filesystem(self.fs)
        for table in SCHEMAS:
            if self.run_ids(table):
                glob = urls.full_url(self.fs, f"{self._table_dir(table)}/run_id=*/*.parquet")
                source = (
                    f"read_parquet({_sql_str(glob)}, hive_partitioning = true, "
                    "hive_types = {'run_id': VARCHAR}, union_by_name = true)"
                )
                found = {row[0] for row in con.sql(f"DESCRIBE SELECT * FROM {source}").fetchall()}
            else:
                con.register(f"_empty_{table}", SCHEMAS[table].empty_table())
                source, found = f"_empty_{table}", set(SCHEMAS[table].names)
            columns = ", ".join(  # a column newer than every file reads as null
                f'"{f.name}"'
                if f.name in found
                else f'CAST(NULL AS {_SQL_TYPES[f.type]}) AS "{f.name}"'
                for f in SCHEMAS[table]
            )
            con.execute(f"CREATE VIEW {table} AS SELECT {columns} FROM {source}")
        return con

    def query(self, sql: str) -> pa.Table:
        """Run ``sql`` over the tables' views; the result as a pyarrow Table (empty for
        statements that return nothing). A failing query raises QueryError."""
        con = self.connect()
        try:
            result = con.sql(sql)
            return result.to_arrow_table() if result is not None else pa.table({})
        except duckdb.Error as exc:
            message = " ".join(str(exc).split())
            raise QueryError(f"the query failed on warehouse {self.root}: {message}") from None
        finally:
            con.close()


def _sql_str(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


#: ``text`` as a SQL string literal (quotes doubled), for queries built from values.
sql_literal = _sql_str
