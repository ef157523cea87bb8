"""The align flow end to end on the embedded sample: hog aligned to grad-hist."""

from __future__ import annotations

import pathlib
import re

import pytest

from speclens.datasets.sources import IngestSource
from speclens.errors import InputError
from speclens.flows.align import align
from speclens.flows.embed import embed
from speclens.flows.ingest import ingest
from speclens.storage.embedding_store import EmbeddingStore
from speclens.storage.layout import Layout
from speclens.storage.warehouse import Warehouse
from speclens.tasks.align import probes as align_tasks

pytestmark = pytest.mark.integration


def test_align_flow_publishes_linked_runs_and_lowers_the_reference_gap(
    tmp_path, dask_address, monkeypatch
):
    root = str(tmp_path)
    dataset = f"{root}/datasets/sample.zarr"
    ingest(
        IngestSource.sample(400, 4), dataset, shard_size=200, address=dask_address, progress=False
    )
    embed(dataset, ["hog", "grad-hist"], device="cpu", progress=False)
    s = align(
        dataset,
        "hog",
        "grad-hist",
        root=root,
        run_id="al",
        seed=0,
        address=dask_address,
        options={"batch_size": 50},
        compare={"rff_dim": 300, "n_modes": 2, "members": 10},
    )
    assert s["train"] == 200 and s["held_out"] == 200
    # the reference (X in both comparisons) captures less that the aligned encoder misses
    before, after = s["before"]["spec_diff"]["x_over_y"], s["after"]["spec_diff"]["x_over_y"]
    assert after <= 0.5 * before  # issue 6: at least halved
    assert max(s["after"]["eigenvalues"]) == pytest.approx(after)
    assert s["probes"]["after"]["knn"] >= s["probes"]["before"]["knn"] - 0.02
    aligned = EmbeddingStore.open(s["aligned_url"])
    assert aligned.encoder_id == "hog+aligned@al" and aligned.valid().sum() == 400
    runs = {r["run_id"]: r for r in Warehouse(f"{root}/warehouse").read("runs").to_pylist()}
    assert runs["al-after"]["parent_run_id"] == "al-before"
    assert runs["al-after"]["encoder_y"] == "hog+aligned@al" and runs["al-before"]["n"] == 200
    assert s["probes"]["rows"] == {"train": 200, "held_out": 200}
    # the documented before/after query (docs/warehouse.md) on this warehouse
    docs = (pathlib.Path(__file__).parents[2] / "docs" / "warehouse.md").read_text()
    (query,) = [q for q in re.findall(r"```sql\n(.*?)```", docs, re.S) if "before_run" in q]
    pair = Warehouse(f"{root}/warehouse").query(query)
    assert pair.to_pylist() == [
        {
            "before_run": "al-before",
            "after_run": "al-after",
            "reference": "grad-hist",
            "encoder": "hog",
            "aligned": "hog+aligned@al",
            "missed_before": round(before, 4),
            "missed_after": round(after, 4),
        }
    ]
    text = open(s["report"], encoding="utf-8").read()
    assert "../al-before/index.html" in text and "k-NN label accuracy" in text
    with open(s["report"].replace("index.html", "spectra.png"), "rb") as png:
        assert png.read(8) == b"\x89PNG\r\n\x1a\n"

    # probes on a large split use seeded subsamples of capped size
    monkeypatch.setattr(align_tasks, "PROBE_MAX_TRAIN", 50)
    monkeypatch.setattr(align_tasks, "PROBE_MAX_HELD_OUT", 30)
    x_url = Layout.embedding(dataset, "hog")
    split_url = f"{root}/runs/al/split.npz"
    capped = align_tasks.label_probes.fn(dataset, x_url, s["aligned_url"], split_url, 0)
    assert capped["rows"] == {"train": 50, "held_out": 30}
    assert capped == align_tasks.label_probes.fn(dataset, x_url, s["aligned_url"], split_url, 0)


def test_bad_align_input_is_one_sentence_and_writes_nothing(tmp_path, dask_address):
    root = str(tmp_path)
    dataset, other = f"{root}/datasets/sample.zarr", f"{root}/datasets/other.zarr"
    for url, n, seed in ((dataset, 60, 4), (other, 40, 5)):
        ingest(
            IngestSource.sample(n, seed), url, shard_size=60, address=dask_address, progress=False
        )
        embed(url, ["hog", "grad-hist"], device="cpu", progress=False)
    kw = {
        "root": root,
        "address": dask_address,
        "compare": {"rff_dim": 64, "n_modes": 1, "members": 5},
    }
    before = sorted(p.name for p in (tmp_path / "embeddings" / "sample").iterdir())
    cases = [
        ((dataset, "hog", "hog"), {}, "--encoder and --reference are the same embedding"),
        (
            (dataset, Layout.embedding(other, "hog"), "grad-hist"),
            {},
            "--encoder .*other/hog.zarr embeds another dataset than --dataset",
        ),
        (
            (dataset, "hog", "grad-hist"),
            {"options": {"kind": "deep"}},
            r"adapter option: kind must be one of \('linear', 'mlp'\), got 'deep'",
        ),
        (
            (dataset, "hog", "grad-hist"),
            {"options": {"preserve_weight": -1}},
            "adapter option: preserve_weight must be >= 0",
        ),
    ]
    for args, extra, message in cases:
        with pytest.raises(InputError, match=message):
            align(*args, run_id="bad", **kw, **extra)
    assert sorted(p.name for p in (tmp_path / "embeddings" / "sample").iterdir()) == before
    assert not (tmp_path / "runs" / "bad").exists()
    # a run id is one alignment: reusing it for another encoder is refused, nothing overwritten
    s = align(dataset, "hog", "grad-hist", run_id="one", seed=0, **kw)
    with open(f"{root}/runs/one/align.json", "rb") as f:
        saved = f.read()
    with pytest.raises(InputError, match=r"run .*one is an align run with another encoder 'hog'"):
        align(dataset, "grad-hist", "hog", run_id="one", **kw)
    with open(f"{root}/runs/one/align.json", "rb") as f:
        assert f.read() == saved
    prov = EmbeddingStore.open(s["aligned_url"]).meta
    assert prov["aligned_to"] == "grad-hist" and len(prov["adapter_sha256"]) == 64
