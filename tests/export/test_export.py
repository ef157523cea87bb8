"""`speclens export`: a run's samples with their images, opened by the real tools: pyarrow and
PIL (parquet), `datasets.load_dataset` (hf), and a headless `embedding-atlas` server on
127.0.0.1 asked through its HTTP API (atlas); each bad input is one sentence and exit code 2,
and a failed export leaves nothing behind.

The fixture ingests 24 embedded-sample images (32 px, in-process: no Prefect) into
``<root>/datasets/sample.zarr`` and publishes runs whose ``samples`` rows name 22 of them and 2
ids the store does not hold (null images)."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zarr
from PIL import Image
from typer.testing import CliRunner
from warehouse_rows import run_rows

from speclens.cli import app
from speclens.datasets.ingest import IngestOptions, fill_shards, finalize, prepare
from speclens.datasets.sources import IngestSource
from speclens.export import atlas, export_run, hf, rows
from speclens.export.run import ExportRun
from speclens.storage.warehouse import Warehouse

RUN, N_IN_STORE, MISSING = "exp-1", 22, ["shapes/999998", "shapes/999999"]
PNG = b"\x89PNG\r\n\x1a\n"


def _samples(ids: list[str], rng) -> list[dict]:
    """Realistic ``samples`` rows: 6 mode scores, some samples in no mode, some captions."""
    return [
        {
            "sample_id": sid,
            "label": ("red circle", "blue square")[i % 2],
            "caption": f"a shape number {i}" if i % 3 == 0 else None,
            "scores": [float(v) for v in rng.normal(0, 0.01, 6)],
            "top_mode": i % 7 if i % 7 < 6 else None,
            "top_share": 0.8 if i % 7 < 6 else None,
            "local_agreement": float(rng.uniform()),
            "map_x": float(rng.normal()),
            "map_y": float(rng.normal()),
        }
        for i, sid in enumerate(ids)
    ]


def _publish(wh: Warehouse, run_id: str, dataset: str, samples: list[dict] | None) -> dict:
    """A run's ``modes``, ``samples`` (unless None) and ``runs`` rows, as compare writes them."""
    made = run_rows(0, run_id)
    made["runs"][0]["dataset"] = dataset
    made["samples"] = samples or []
    for table in ("modes", "samples", "runs") if samples is not None else ("modes", "runs"):
        wh.write(table, run_id, made[table])
    return made


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("export") / "out"
    store = str(root / "datasets" / "sample.zarr")
    plan = prepare(
        IngestSource.sample(n=24, seed=0), store, IngestOptions(image_size=32, shard_size=8)
    )
    assert fill_shards(store, plan["pending"])[1] == {}
    finalize(store)
    from speclens.storage.dataset_store import DatasetStore

    ids = DatasetStore.open(store).sample_ids().tolist()
    wh = Warehouse(str(root / "warehouse"))
    rng = np.random.default_rng(0)
    made = _publish(wh, RUN, store, _samples(ids[:N_IN_STORE] + MISSING, rng))
    _publish(wh, "moved-1", "elsewhere/datasets/sample.zarr", _samples(ids[:3], rng))
    _publish(wh, "lost-1", str(root / "gone.zarr"), _samples(ids[:3], rng))
    _publish(wh, "foreign-1", store, _samples(MISSING, rng))
    _publish(wh, "nosamples-1", store, None)
    images = DatasetStore.open(store).images()
    return {"root": str(root), "store": store, "ids": ids, "rows": made, "images": images}


def _export(published, fmt: str, out: Path, run_id: str = RUN) -> dict:
    return export_run(run_id, fmt, str(out), root=published["root"], progress=False)


def test_parquet_round_trips_scores_and_images(published, tmp_path, monkeypatch):
    monkeypatch.setattr(rows, "BATCH", 5)  # several batches, the last one short
    done = _export(published, "parquet", tmp_path / "pq")
    table = pq.read_table(tmp_path / "pq" / "samples.parquet")
    want = sorted(published["rows"]["samples"], key=lambda r: r["sample_id"])
    assert done["rows"] == table.num_rows == len(want) and done["with_images"] == N_IN_STORE
    assert table.column("sample_id").to_pylist() == [r["sample_id"] for r in want]
    got = np.column_stack([table.column(f"score_{j}").to_numpy() for j in range(6)])
    np.testing.assert_array_equal(got, np.array([r["scores"] for r in want]))
    modes = {m["mode"]: m for m in published["rows"]["modes"]}
    for row, w in zip(table.to_pylist(), want, strict=True):
        assert row["top_mode"] == w["top_mode"] and row["map_x"] == w["map_x"]
        if w["top_mode"] is not None:
            assert row["mode_label"] == f"mode {w['top_mode']}: {modes[w['top_mode']]['label']}"
            direction = modes[w["top_mode"]]["direction"]
            assert row["mode_captured_by"] == (
                "hue-hist" if direction == "x_over_y" else "grad-hist"
            )
        if w["sample_id"] in MISSING:
            assert row["image"] is None
            continue
        with Image.open(tmp_path / "pq" / row["image"]) as img:
            pixels = np.asarray(img.convert("RGB"))
        row_in_store = published["ids"].index(w["sample_id"])
        np.testing.assert_array_equal(pixels, published["images"][row_in_store])
    meta = json.loads(table.schema.metadata[b"speclens"])
    assert meta["run_id"] == RUN and len(meta["modes"]) == 6


def test_hf_folder_loads_with_datasets(published, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setattr(rows, "BATCH", 7)
    monkeypatch.setattr(hf, "SHARD_ROWS", 10)  # 3 shards, cut inside batches
    done = _export(published, "hf", tmp_path / "hf")
    assert sorted(p.name for p in (tmp_path / "hf" / "data").iterdir()) == [
        f"train-0000{k}-of-00003.parquet" for k in range(3)
    ]
    card = (tmp_path / "hf" / "README.md").read_text()
    assert card.startswith("---\nconfigs:\n") and "dtype: image" in card

    from datasets import load_dataset

    ds = load_dataset(str(tmp_path / "hf"), split="train", cache_dir=str(tmp_path / "cache"))
    assert ds.num_rows == done["rows"] == N_IN_STORE + len(MISSING)
    assert type(ds.features["image"]).__name__ == "Image"
    assert {"sample_id", "mode_label", "local_agreement", "score_0", "score_5"} <= set(
        ds.column_names
    )
    by_id = {r["sample_id"]: r for r in ds}
    first = by_id[published["ids"][0]]
    assert first["image"].size == (32, 32)
    np.testing.assert_array_equal(np.asarray(first["image"].convert("RGB")), published["images"][0])
    assert all(by_id[m]["image"] is None for m in MISSING)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post_query(url: str, sql: str, kind: str = "json"):
    body = json.dumps({"sql": sql, "type": kind}).encode()
    req = urllib.request.Request(f"{url}/data/query", data=body, method="POST")
    with urllib.request.urlopen(req, timeout=10) as resp:
        raw = resp.read()
    return json.loads(raw) if kind == "json" else pa.ipc.open_stream(raw).read_all()


def _wait_for(url: str, proc: subprocess.Popen, log: Path, limit: float = 90) -> dict:
    """embedding-atlas's metadata, once it answers (it loads the file first)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        try:
            with urllib.request.urlopen(f"{url}/data/metadata.json", timeout=2) as resp:
                return json.loads(resp.read())
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"embedding-atlas did not answer on {url} in {limit} s")


def test_atlas_folder_is_served_by_embedding_atlas(published, tmp_path):
    done = _export(published, "atlas", tmp_path / "atlas")
    folder = tmp_path / "atlas"
    assert shlex.split(done["command"]) == [
        "embedding-atlas",
        "samples.parquet",
        "--text",
        "text",
        "--image",
        "image",
        "--x",
        "map_x",
        "--y",
        "map_y",
    ]
    assert done["command"] in (folder / "README.md").read_text()
    port = _free_port()
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    started, log = time.monotonic(), tmp_path / "atlas.log"
    with log.open("w") as out:  # the folder's own opener; the CLI opens no browser
        proc = subprocess.Popen(
            [
                "sh",
                str(folder / "open.sh"),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--no-auto-port",
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        meta = _wait_for(url, proc, log)
        print(f"embedding-atlas answered after {time.monotonic() - started:.1f} s")
        with urllib.request.urlopen(url, timeout=10) as page:  # its web app
            assert b"Embedding Atlas" in page.read()
        data = meta["props"]["data"]
        assert data["projection"] == {"x": "map_x", "y": "map_y"}
        assert (data["text"], data["image"]) == ("text", "image")
        counts = _post_query(url, "SELECT count(*) AS n, count(image) AS i FROM dataset")
        assert counts == [{"n": N_IN_STORE + len(MISSING), "i": N_IN_STORE}]
        columns = {
            r["column_name"] for r in _post_query(url, "SELECT column_name FROM (DESCRIBE dataset)")
        }
        assert {"sample_id", "map_x", "map_y", "text", "image", "mode_label", "score_5"} <= columns
        image = _post_query(
            url, "SELECT image FROM dataset WHERE image IS NOT NULL LIMIT 1", "arrow"
        )
        assert image.column("image")[0].as_py().startswith(PNG)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)
    assert proc.poll() is not None


def _fake_run(map_x: list) -> ExportRun:
    samples = pa.table(
        {"map_x": pa.array(map_x, pa.float64()), "map_y": pa.array(map_x, pa.float64())}
    )
    return ExportRun({"run_id": "r"}, [], samples, None, "", "")


def test_atlas_command_follows_the_map():
    """Every sample mapped: the run's map; some: only those (embedding-atlas cannot place a
    point without coordinates); none: embedding-atlas projects the mode scores itself."""
    full = atlas.command(_fake_run([0.0, 1.0]))
    assert full[-4:] == ["--x", "map_x", "--y", "map_y"]
    assert atlas.command(_fake_run([0.0, None]))[-2:] == ["--query", atlas.MAPPED]
    assert atlas.command(_fake_run([None, None]))[-2:] == ["--vector", "scores"]


def test_a_run_that_names_a_relative_store_finds_it_under_the_root(published, tmp_path):
    done = _export(published, "parquet", tmp_path / "moved", run_id="moved-1")
    assert done["rows"] == done["with_images"] == 3


def test_a_store_without_images_exports_null_images(published, tmp_path):
    """A vector-only dataset store (no ``images`` array), given with --dataset: every row,
    no image."""
    store = tmp_path / "vectors.zarr"
    shutil.copytree(published["store"], store)
    del zarr.open_group(str(store), mode="r+")["images"]
    done = export_run(
        RUN, "atlas", str(tmp_path / "a"), root=published["root"], dataset=str(store),
        progress=False,
    )  # fmt: skip
    table = pq.read_table(tmp_path / "a" / "samples.parquet")
    assert done["rows"] == table.num_rows == N_IN_STORE + len(MISSING)
    assert done["with_images"] == 0 and table.column("image").null_count == table.num_rows


def _cli(published, args: list[str]):
    result = CliRunner().invoke(
        app, ["export", *args, "--root", published["root"], "--no-progress"]
    )
    return result.exit_code, " ".join(result.stderr.split())


@pytest.mark.parametrize(
    ("run_id", "sentence"),
    [
        ("no-such-run", "no run 'no-such-run' in {root}/warehouse; list runs with"),
        ("nosamples-1", "run 'nosamples-1' in {root}/warehouse has no rows in the samples table"),
        (
            "lost-1",
            "run 'lost-1''s dataset store {root}/gone.zarr is not a speclens dataset store "
            "(nothing is there); pass --dataset with the store the run compared",
        ),
        (
            "foreign-1",
            "none of run 'foreign-1''s 2 sample ids is in dataset store {store}; pass --dataset",
        ),
        ("bad/id", "run id 'bad/id' cannot name a partition"),
    ],
)
def test_bad_inputs_are_one_sentence(published, tmp_path, run_id, sentence):
    out = tmp_path / "out"
    code, err = _cli(published, [run_id, "--format", "hf", "--out", str(out)])
    assert code == 2, err
    assert sentence.format(root=published["root"], store=published["store"]) in err
    assert err.startswith("error: ") and "Traceback" not in err
    assert not out.exists() and os.listdir(tmp_path) == []


def test_an_out_folder_that_holds_files_is_refused_and_kept(published, tmp_path):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    code, err = _cli(published, [RUN, "--format", "atlas", "--out", str(out)])
    assert code == 2
    assert f"--out {out} already exists and is not an empty folder; pass a new or empty" in err
    assert os.listdir(out) == ["notes.txt"]
    code, _ = _cli(published, [RUN, "--format", "atlas", "--out", str(tmp_path / "new")])
    assert code == 0 and (tmp_path / "new" / "open.sh").exists()


def test_a_failed_export_leaves_nothing(published, tmp_path, monkeypatch):
    monkeypatch.setattr(rows, "BATCH", 4)
    calls = []

    def png(pixels, size):
        calls.append(1)
        if len(calls) > 6:  # in the second batch, after files were written
            raise OSError("disk full")
        return real_png(pixels, size)

    real_png = rows.png
    monkeypatch.setattr(rows, "png", png)
    (tmp_path / "empty").mkdir()
    with pytest.raises(OSError, match="disk full"):
        _export(published, "parquet", tmp_path / "empty")
    assert os.listdir(tmp_path) == ["empty"] and os.listdir(tmp_path / "empty") == []


def test_the_cli_says_what_it_wrote(published, tmp_path):
    code, _ = _cli(published, [RUN, "--format", "parquet", "--out", str(tmp_path / "p")])
    result = CliRunner().invoke(
        app,
        [
            "export",
            RUN,
            "--format",
            "atlas",
            "--out",
            str(tmp_path / "a"),
            "--root",
            published["root"],
            "--no-progress",
        ],
    )
    assert code == 0 and result.exit_code == 0
    assert f"exported 24 samples of run {RUN} (22 with an image) as atlas to" in result.stdout
    assert "embedding-atlas samples.parquet" in result.stdout
