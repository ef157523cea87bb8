"""The Parquet warehouse: round trips, schema enforcement, one-partition overwrites, crash
safety, empty views, the documented example queries and `speclens query`."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner
from warehouse_rows import fill, run_rows

from speclens.storage import warehouse as warehouse_mod
from speclens.storage.warehouse import SCHEMAS, QueryError, Warehouse
from speclens.storage.warehouse_schema import schema_markdown

DOCS = Path(__file__).resolve().parents[2] / "docs" / "warehouse.md"


@pytest.fixture()
def wh(tmp_path) -> Warehouse:
    return Warehouse(str(tmp_path / "warehouse"))


def test_round_trip_keeps_values_types_and_run_id(wh):
    rows = fill(wh)
    assert wh.run_ids() == ["emb-001", "emb-002", "emb-003"]
    runs = wh.read("runs")
    assert runs.schema == SCHEMAS["runs"]
    one = wh.read("runs", "emb-002").to_pylist()[0]
    assert one["created_at"] == datetime(2025, 6, 1, 10, tzinfo=UTC)
    assert one["sigma_y"] is None and one["kernel_y"] == "cosine"
    assert json.loads(one["library_versions"]) == {"duckdb": "2.0.1", "numpy": "2.1.3"}
    members = wh.read("members", "emb-001")
    assert members.num_rows == len(rows["emb-001"]["members"]) == 48
    assert set(members.column("run_id").to_pylist()) == {"emb-001"}
    assert members.to_pylist()[3]["sample_id"] == rows["emb-001"]["members"][3]["sample_id"]
    modes = wh.read("modes", "emb-003").to_pylist()
    assert [m["eigenvalue"] for m in modes] == [m["eigenvalue"] for m in rows["emb-003"]["modes"]]
    # files hold no run_id column: it is the hive partition folder
    part = Path(wh.partition_url("modes", "emb-001"))
    assert part.parent.name == "run_id=emb-001" and part.name == "part-0.parquet"
    assert "run_id" not in pq.read_schema(part).names


def test_memory_url_round_trip_and_query():
    wh = Warehouse(f"memory://wh-{uuid.uuid4().hex}")
    fill(wh, runs=(0, 1))
    assert wh.read("pair_scores").num_rows == 2
    got = wh.query("SELECT run_id, count(*) AS n FROM members GROUP BY run_id ORDER BY run_id")
    assert got.to_pylist() == [{"run_id": "emb-001", "n": 48}, {"run_id": "emb-002", "n": 48}]


def test_table_input_with_safe_casts(wh):
    rows = run_rows(0)["pair_scores"]
    table = pa.Table.from_pylist(rows)  # float64 and string columns, no run_id
    wh.write("pair_scores", "t-1", table)
    modes = pa.Table.from_pylist(run_rows(0, run_id="t-1")["modes"]).set_column(
        1, "mode", pa.array(range(6), pa.int64())
    )  # int64 -> int32
    wh.write("modes", "t-1", modes)
    assert wh.read("modes", "t-1").column("mode").type == pa.int32()


def _modes(**change):
    rows = [{k: v for k, v in r.items() if k != "run_id"} for r in run_rows(0)["modes"]]
    for key, value in change.items():
        if value is KeyError:
            rows = [{k: v for k, v in r.items() if k != key} for r in rows]
        else:
            rows[2][key] = value
    return rows


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (_modes(summary=KeyError), "table 'modes': column 'summary' is missing; add it (string"),
        (_modes(colour="red"), "column 'colour' is not in the schema; remove it, or add it to"),
        (_modes(eigenvalue="0.3"), "column 'eigenvalue' must hold float64 values"),
        (_modes(mode=1.5), "column 'mode' must hold int32 values (got the fraction 1.5)"),
        (_modes(eigenvalue=True), "column 'eigenvalue' must hold float64 values (got the bool"),
        (_modes(mass_share=None), "column 'mass_share' has no value in row 2; it may not be null"),
        (_modes(direction="x_minus_y"), "holds 'x_minus_y'; use one of x_over_y, y_over_x"),
        (_modes(mode=0), "two rows have mode=0; (mode) must be unique within a run"),
        ("not rows", "rows must be a list of dicts or a pyarrow.Table"),
    ],
)
def test_schema_errors_name_table_column_and_fix(wh, rows, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        wh.write("modes", "r-1", rows)
    assert wh.run_ids() == []  # nothing written


def test_other_schema_errors(wh):
    run = run_rows(0)["runs"][0]
    with pytest.raises(ValueError, match="column 'run_id' holds a value other than 'r-1'; drop"):
        wh.write("runs", "r-1", [run])
    run = {k: v for k, v in run.items() if k != "run_id"}
    with pytest.raises(ValueError, match="exactly one row per run id, got 2"):
        wh.write("runs", "r-1", [run, run])
    with pytest.raises(ValueError, match="'stage_timings' must hold JSON text"):
        wh.write("runs", "r-1", [{**run, "stage_timings": "gram=3s"}])
    with pytest.raises(ValueError, match="row 1 has no column 'label'"):
        wh.write(
            "members",
            "r-1",
            [
                {
                    "mode": 0,
                    "rank": 1,
                    "sample_id": "a",
                    "score": 1.0,
                    "label": None,
                    "caption": None,
                },
                {"mode": 0, "rank": 2, "sample_id": "b", "score": 0.5, "caption": None},
            ],
        )
    table = pa.Table.from_pylist(run_rows(0)["pair_scores"])
    bad = table.set_column(2, "spec_diff_x_over_y", pa.array(["0.1"]))
    with pytest.raises(
        ValueError, match="'spec_diff_x_over_y' must hold float64 values .got string"
    ):
        wh.write("pair_scores", "r-1", bad)
    with pytest.raises(ValueError, match="unknown warehouse table 'mode'; use one of runs"):
        wh.write("mode", "r-1", [])
    with pytest.raises(ValueError, match="run id '../x' cannot name a partition"):
        wh.write("modes", "../x", [])


def test_rerun_overwrites_only_its_own_partition(wh, tmp_path):
    fill(wh)
    others = {
        (t, r): Path(wh.partition_url(t, r)).read_bytes()
        for t in SCHEMAS
        for r in ("emb-001", "emb-003")
        if Path(wh.partition_url(t, r)).exists()  # mode_matches: audit runs only
    }
    assert len(others) == 2 * (len(SCHEMAS) - 1)
    members_002 = Path(wh.partition_url("members", "emb-002")).read_bytes()
    new = run_rows(1)["modes"][:2]
    new[0]["summary"] = "rerun"
    wh.write("modes", "emb-002", new)
    assert wh.read("modes", "emb-002").column("summary").to_pylist() == ["rerun", new[1]["summary"]]
    assert wh.query("SELECT count(*) AS c FROM modes").column("c").to_pylist() == [14]
    for (table, run_id), data in others.items():
        assert Path(wh.partition_url(table, run_id)).read_bytes() == data
    assert Path(wh.partition_url("members", "emb-002")).read_bytes() == members_002
    wh.write("modes", "emb-002", [])  # an empty rerun still replaces the old rows
    assert wh.read("modes", "emb-002").num_rows == 0 and wh.read("modes").num_rows == 12
    wh.delete("emb-003")
    assert wh.run_ids() == ["emb-001", "emb-002"]


def test_crash_mid_write_leaves_old_partition(wh, monkeypatch):
    fill(wh, runs=(0,))
    before = wh.read("members", "emb-001")

    def crash(table, where, **kwargs):  # half a file, then the process "dies"
        where.write(b"PAR1 half a parquet file")
        raise OSError("disk full")

    monkeypatch.setattr(warehouse_mod.pq, "write_table", crash)
    with pytest.raises(OSError, match="disk full"):
        wh.write("members", "emb-001", run_rows(0)["members"][:3])
    monkeypatch.undo()
    assert wh.read("members", "emb-001").equals(before)
    table_dir = Path(wh.root) / "members"
    assert sorted(p.name for p in table_dir.iterdir()) == ["run_id=emb-001"]
    # a hard crash leaves its hidden temporary file behind: readers skip it
    (table_dir / ".tmp-dead-part-0.parquet").write_bytes(b"PAR1 torn")
    assert wh.run_ids() == ["emb-001"]
    assert wh.query("SELECT count(*) AS c FROM members").column("c").to_pylist() == [48]


def test_crash_during_move_leaves_old_partition(wh, monkeypatch):
    fill(wh, runs=(0,))
    before = wh.read("modes", "emb-001")

    def fail_move(*args, **kwargs):
        raise OSError("connection reset")

    monkeypatch.setattr(wh.fs, "mv", fail_move)
    with pytest.raises(OSError, match="connection reset"):
        wh.write("modes", "emb-001", run_rows(0)["modes"][:1])
    monkeypatch.undo()
    assert wh.read("modes", "emb-001").equals(before)
    assert not [p for p in (Path(wh.root) / "modes").iterdir() if p.name.startswith(".tmp")]


def test_empty_warehouse_has_typed_empty_views(wh):
    for table, schema in SCHEMAS.items():
        got = wh.query(f"SELECT * FROM {table}")
        assert got.num_rows == 0 and got.column_names == schema.names
        assert wh.read(table).schema == schema
    assert wh.query("SELECT count(*) AS c FROM modes JOIN runs USING (run_id)").to_pylist() == [
        {"c": 0}
    ]
    wh.write(
        "modes", "only-modes", run_rows(0, run_id="only-modes")["modes"]
    )  # runs still empty: view still works
    assert wh.query("SELECT count(*) AS c FROM runs").to_pylist() == [{"c": 0}]


def test_older_files_without_a_new_column_read_as_null(wh):
    old = pa.Table.from_pylist(run_rows(0)["pair_scores"]).drop_columns(["spec_diff"])
    path = Path(wh.root) / "pair_scores" / "run_id=old" / "part-0.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(old, path)
    assert wh.read("pair_scores", "old").column("spec_diff").to_pylist() == [None]
    assert wh.query("SELECT spec_diff FROM pair_scores").to_pylist() == [{"spec_diff": None}]


def test_query_error_is_one_sentence(wh):
    with pytest.raises(QueryError) as err:
        wh.query("SELECT nope FROM modes")
    assert "\n" not in str(err.value) and 'column "nope" not found' in str(err.value)


# ---- docs/warehouse.md -------------------------------------------------------------------
def test_docs_show_every_schema():
    text = DOCS.read_text()
    for table in SCHEMAS:
        assert schema_markdown(table) in text, f"docs/warehouse.md: refresh the {table} table"


def test_docs_example_queries_run(wh):
    fill(wh)
    wh.write("runs", "emb-003", [{**run_rows(2)["runs"][0], "status": "failed"}])
    queries = re.findall(r"```sql\n(.*?)```", DOCS.read_text(), re.S)
    assert len(queries) == 10  # the last two, of audit series: test_docs_series_queries_run
    results = [wh.query(q).to_pylist() for q in queries[:8]]
    top, significant, sweeps, few_features, missed, matrix, recent, aligned = results
    assert sweeps == []  # no sweep here: test_docs_sweep_queries_run writes one
    assert [(r["run_id"], r["rff_dim_suggested"]) for r in few_features] == [("emb-002", 4500)]
    assert len(significant) == 3 * 4  # two of each end's three modes, in each of three runs
    assert {m["mode"] for m in significant} == {0, 1, 3, 4}
    assert all(m["low"] < m["eigenvalue"] < m["high"] for m in significant)
    assert aligned == []  # no align runs here; tests/test_align_flow.py runs it on one
    assert [m["mode"] for m in top] == [0, 1, 2, 3] and top[0]["label"] == "red"
    assert top[3]["direction"] == "y_over_x"
    assert {
        "missed_by": "hue-hist",
        "label": "square",
        "modes": 3,
        "captured_by": "grad-hist, pixels",
    } in missed
    assert not [r for r in missed if r["missed_by"] == "grad-hist" and "pixels" in r["captured_by"]]
    assert [r["captured_by"] for r in matrix] == ["grad-hist", "hue-hist", "pixels"]
    hue = matrix[1]
    assert hue["hue-hist"] is None and hue["grad-hist"] == round(
        run_rows(0)["modes"][0]["eigenvalue"], 4
    )
    assert [r["run_id"] for r in recent] == ["emb-003", "emb-002", "emb-001"]
    assert recent[2]["gram_s"] == 3.5 and recent[0]["numpy"] == "2.1.3"


def test_docs_sweep_queries_run(wh):
    """The sweep query lists a sweep's runs by scale, and no other run (not an align run's
    'after', whose parent is the 'before' run)."""
    fill(wh)
    for scale in (1.0, 0.5):
        rows = run_rows(0, run_id=f"sw--sigma{scale:g}")
        rows["runs"][0].update(parent_run_id="sw", sigma_scale=scale)
        for table in ("modes", "members", "pair_scores", "runs"):
            wh.write(table, rows["runs"][0]["run_id"], rows[table])
    after = run_rows(1, run_id="al-after")
    after["runs"][0].update(parent_run_id="al-before", sigma_scale=0.5)
    for table in ("modes", "members", "pair_scores", "runs"):
        wh.write(table, "al-after", after[table])
    query = re.findall(r"```sql\n(.*?)```", DOCS.read_text(), re.S)[2]
    rows = wh.query(query).to_pylist()
    assert [(r["sweep"], r["sigma_scale"]) for r in rows] == [("sw", 0.5), ("sw", 1.0)]
    assert rows[0]["rff_error"] == 0.04


def test_docs_series_queries_run(wh):
    """The series queries on a series of two runs of pair 0, the second with its mode 0's
    members replaced: the runs in time order, and that mode new and its old self gone."""
    from datetime import timedelta

    from speclens.history.record import record_run

    series = re.search(r"WHERE r.series = '([^']+)'", DOCS.read_text()).group(1)
    for i, run_id in enumerate(("nightly-1", "nightly-2")):
        rows = run_rows(0, run_id)
        rows["runs"][0].update(
            series=series, created_at=rows["runs"][0]["created_at"] + timedelta(days=i)
        )
        if i:
            for m in rows["members"]:
                if m["mode"] == 0:
                    m["sample_id"] = "other/" + m["sample_id"]
        for table in ("modes", "members", "samples", "pair_scores", "runs"):
            wh.write(table, run_id, rows[table])
        record_run(wh, run_id, {"spec_diff": 0.02, "p_value": 0.01})
    runs_q, changed_q = re.findall(r"```sql\n(.*?)```", DOCS.read_text(), re.S)[8:]
    runs = wh.query(runs_q).to_pylist()
    assert [r["run_id"] for r in runs] == ["nightly-1", "nightly-2"] and runs[1]["alerts"] >= 1
    changed = wh.query(changed_q).to_pylist()
    assert {(r["status"], r["mode"], r["previous_mode"]) for r in changed} == {
        ("new", 0, None),
        ("gone", None, 0),
    }
    assert {r["previous_run_id"] for r in changed} == {"nightly-1"}


# ---- speclens query ----------------------------------------------------------------------
def test_query_command_formats_and_errors(wh, monkeypatch):
    from speclens.cli import app

    fill(wh, runs=(0,))
    runner = CliRunner()
    sql = "SELECT mode, label, eigenvalue FROM modes WHERE mode < 2 ORDER BY mode"
    out = runner.invoke(app, ["query", sql, "--warehouse", wh.root])
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    assert lines[0].split() == ["mode", "label", "eigenvalue"] and lines[-1] == "(2 rows)"
    assert lines[2].split()[:2] == ["0", "red"]
    monkeypatch.setenv("SPECLENS_WAREHOUSE", wh.root)  # default location from the environment
    out = runner.invoke(app, ["query", sql, "--format", "csv"])
    assert out.exit_code == 0 and out.output.splitlines()[0] == "mode,label,eigenvalue"
    assert float(out.output.splitlines()[1].split(",")[2]) == run_rows(0)["modes"][0]["eigenvalue"]
    out = runner.invoke(
        app, ["query", "SELECT run_id, created_at, sigma_y FROM runs", "--format", "json"]
    )
    assert json.loads(out.output) == [
        {"run_id": "emb-001", "sigma_y": 0.52, "created_at": "2025-06-01T09:00:00+00:00"}
    ]
    out = runner.invoke(app, ["query", "SELEC 1"])
    assert out.exit_code == 2
    assert out.output.startswith("error: the query failed on warehouse") and "syntax" in out.output
