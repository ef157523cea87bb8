"""The storage layer without services: the shared shard/marker/manifest rules of both store
kinds, markers written before the hash key was shared, named dimensions, writing a whole
embedding store from arrays, and where things live under a root."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from speclens.datasets.ingest import IngestOptions, fill_shard, finalize, prepare
from speclens.datasets.sources import IngestSource
from speclens.storage import urls
from speclens.storage.dataset_store import DatasetStore
from speclens.storage.embedding_store import (
    EmbeddingStore,
    write_embedding_store,
)
from speclens.storage.layout import Layout, encoder_slug
from speclens.storage.sharded import MARKER_HASH_KEY

N, SHARD = 40, 16  # three shards, the last one short


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> str:
    out = str(tmp_path_factory.mktemp("storage") / "datasets" / "sample.zarr")
    planned = prepare(IngestSource.sample(N, 1), out, IngestOptions(shard_size=SHARD))
    for shard_id in planned["pending"]:
        fill_shard(out, shard_id)
    finalize(out)
    return out


def ids(n: int = N) -> np.ndarray:
    return np.array([f"s{i:03d}" for i in range(n)])


def provenance(input_hash: str = "h1") -> dict:
    return {"encoder_id": "enc", "dataset_url": "memory://d", "dataset_input_hash": input_hash}


def rewrite_marker(store, shard_id: int, change) -> None:
    marker = urls.read_json(store.marker_url(shard_id))
    change(marker)
    urls.write_json(store.marker_url(shard_id), marker)


# ---------------------------------------------------------------- shared shard rules
def test_both_kinds_share_shard_ranges_with_a_bounds_check(dataset, tmp_path):
    emb = EmbeddingStore.create(
        str(tmp_path / "e.zarr"),
        n_samples=N,
        dim=3,
        shard_size=SHARD,
        sample_id=ids(),
        provenance=provenance(),
    )
    for store in (DatasetStore.open(dataset), emb):
        assert store.n_shards == 3
        assert [store.shard_range(i) for i in range(3)] == [(0, 16), (16, 32), (32, 40)]
        for bad in (-1, 3):
            with pytest.raises(IndexError, match="out of range 0..2"):
                store.shard_range(bad)


def test_both_kinds_write_markers_under_one_hash_key(dataset, tmp_path):
    ds = DatasetStore.open(dataset)
    manifest = write_embedding_store(
        str(tmp_path / "e.zarr"),
        sample_id=ids(),
        shard_size=SHARD,
        vectors=np.ones((N, 2), dtype=np.float32),
        valid=np.ones(N, dtype=bool),
        provenance=provenance("h1"),
    )
    emb = EmbeddingStore.open(str(tmp_path / "e.zarr"))
    assert manifest["state"] == "complete" and emb.complete
    for store, expected in ((ds, ds.input_hash), (emb, "h1")):
        markers = store.markers()
        assert sorted(markers) == store.committed() == [0, 1, 2] and store.pending() == []
        assert {m[MARKER_HASH_KEY] for m in markers.values()} == {expected}
        assert all("dataset_input_hash" not in m for m in markers.values())
        assert [(m["start"], m["stop"]) for m in markers.values()] == [(0, 16), (16, 32), (32, 40)]


def test_markers_written_before_the_shared_key_still_count(dataset, tmp_path):
    url = str(tmp_path / "e.zarr")
    write_embedding_store(
        url,
        sample_id=ids(),
        shard_size=SHARD,
        vectors=np.ones((N, 2)),
        valid=np.ones(N, dtype=bool),
        provenance=provenance("h1"),
    )
    emb = EmbeddingStore.open(url)

    def old_embedding_marker(m):
        m["dataset_input_hash"] = m.pop(MARKER_HASH_KEY)

    rewrite_marker(emb, 0, old_embedding_marker)  # how embed wrote markers before
    rewrite_marker(emb, 1, lambda m: m.update({MARKER_HASH_KEY: "another dataset"}))
    assert emb.committed() == [0, 2] and emb.pending() == [1] and not emb.complete
    assert emb.marker(0)["dataset_input_hash"] == "h1"
    # a dataset store's markers always used input_hash; another key does not commit a shard
    copy = str(tmp_path / "d.zarr")
    fs, _ = urls.fs_and_path(copy)
    fs.copy(dataset, copy, recursive=True)
    ds = DatasetStore.open(copy)
    rewrite_marker(ds, 2, old_embedding_marker)
    assert ds.committed() == [0, 1] and ds.pending() == [2]
    assert not ds.committed_rows()[32:].any() and ds.committed_rows()[:32].all()


def test_unreadable_or_stray_marker_files_do_not_commit_anything(tmp_path):
    store = EmbeddingStore.create(
        str(tmp_path / "e.zarr"),
        n_samples=N,
        dim=2,
        shard_size=SHARD,
        sample_id=ids(),
        provenance=provenance(),
    )
    urls.write_bytes(store.marker_url(0), b"{not json")
    urls.write_json(store.marker_url(1), [1, 2])
    urls.write_json(store.marker_url(7), {MARKER_HASH_KEY: "h1"})  # no such shard
    urls.write_bytes(urls.join(store.url, "_shards", "notes.json"), b"{}")
    assert store.markers() == {} and store.pending() == [0, 1, 2]


def test_manifest_has_the_store_fields_and_the_callers(dataset, tmp_path):
    store = EmbeddingStore.create(
        str(tmp_path / "e.zarr"),
        n_samples=N,
        dim=2,
        shard_size=SHARD,
        sample_id=ids(),
        provenance=provenance(),
    )
    assert store.manifest() == {
        "encoder_id": "enc",
        "dataset_url": "memory://d",
        "dataset_input_hash": "h1",
        "n_samples": N,
        "dim": 2,
        "state": "planned",
    }
    ds = DatasetStore.open(dataset)
    m = ds.manifest()
    assert m["state"] == "complete" and m["n_shards"] == 3 and m["input_hash"] == ds.input_hash
    assert m["counts"]["ok"] == N and m["n_samples"] == N
    assert m["dropped"] == {}  # written when planned, kept by the later manifests


# ------------------------------------------------------------------ named dimensions
def test_embedding_arrays_have_named_dimensions(tmp_path):
    url = str(tmp_path / "e.zarr")
    EmbeddingStore.create(
        url, n_samples=N, dim=5, shard_size=SHARD, sample_id=ids(), provenance=provenance()
    )
    group = zarr.open_group(url, mode="r")
    assert group["embedding"].metadata.dimension_names == ("sample", "feature")
    assert group["valid"].metadata.dimension_names == ("sample",)
    assert group["sample_id"].metadata.dimension_names == ("sample",)
    assert group["embedding"].chunks == (SHARD, 5)


# ------------------------------------------------------- write a whole embedding store
def test_write_at_rows_leaves_every_other_row_invalid(tmp_path):
    url = str(tmp_path / "view.zarr")
    rows = np.array([1, 5, 17, 39])
    vectors = np.arange(8, dtype=np.float32).reshape(4, 2)
    manifest = write_embedding_store(
        url,
        sample_id=ids(),
        shard_size=SHARD,
        vectors=vectors,
        rows=rows,
        provenance=provenance(),
        stats={"view": True},
    )
    store = EmbeddingStore.open(url)
    got, valid = store.rows()
    assert np.flatnonzero(valid).tolist() == rows.tolist()
    np.testing.assert_array_equal(got[rows], vectors)
    assert np.isnan(np.delete(got, rows, axis=0)).all()
    assert manifest["state"] == "complete" and (manifest["valid"], manifest["invalid"]) == (4, 36)
    assert [m["valid"] for m in store.markers().values()] == [2, 1, 1]
    assert all(m["view"] is True for m in store.markers().values())
    np.testing.assert_array_equal(store.sample_ids(), ids())


def test_write_with_a_valid_mask_replaces_what_was_there(tmp_path):
    url = str(tmp_path / "e.zarr")
    write_embedding_store(
        url,
        sample_id=ids(50),
        shard_size=10,
        vectors=np.zeros((50, 3)),
        valid=np.ones(50, dtype=bool),
        provenance=provenance("old"),
    )
    valid = np.arange(N) % 3 != 0
    vectors = np.random.default_rng(0).standard_normal((N, 2)).astype(np.float32)
    write_embedding_store(
        url,
        sample_id=ids(),
        shard_size=SHARD,
        vectors=vectors,
        valid=valid,
        provenance=provenance("new"),
    )
    store = EmbeddingStore.open(url)
    assert (store.n_samples, store.dim, store.n_shards) == (N, 2, 3)
    assert store.dataset_input_hash == "new" and store.committed() == [0, 1, 2]
    assert sorted(urls.list_names(urls.join(url, "_shards"))) == [
        "00000.json",
        "00001.json",
        "00002.json",
    ]
    got, got_valid = store.rows()
    np.testing.assert_array_equal(got_valid, valid)
    np.testing.assert_array_equal(got[valid], vectors[valid])
    assert np.isnan(got[~valid]).all()


def test_write_refuses_inconsistent_arrays(tmp_path):
    url = str(tmp_path / "e.zarr")
    common = {"sample_id": ids(), "shard_size": SHARD, "provenance": provenance()}
    for kwargs, match in (
        ({"vectors": np.ones((N, 2))}, "one of valid and rows"),
        (
            {"vectors": np.ones((N, 2)), "valid": np.ones(N, bool), "rows": np.arange(3)},
            "one of valid and rows",
        ),
        ({"vectors": np.ones((N - 1, 2)), "valid": np.ones(N, bool)}, "40 samples"),
        ({"vectors": np.ones((2, 2)), "rows": np.arange(3)}, "3 rows"),
    ):
        with pytest.raises(ValueError, match=match):
            write_embedding_store(url, **common, **kwargs)
    assert not urls.exists(url)


# ----------------------------------------------------------------------------- layout
def test_layout_places_everything_under_the_root():
    layout = Layout("s3://bucket/out/")
    assert layout.dataset("sample") == "s3://bucket/out/datasets/sample.zarr"
    assert layout.run("r1") == "s3://bucket/out/runs/r1"
    assert layout.report("r1") == "s3://bucket/out/reports/r1"
    assert layout.warehouse() == "s3://bucket/out/warehouse"
    assert layout.warehouse("memory://wh") == "memory://wh"
    assert Layout.of_report(layout.report("r1")).warehouse() == layout.warehouse()
    # the names the flows still import give the same locations


@pytest.mark.parametrize(
    ("dataset_url", "expected"),
    [
        ("/r/datasets/sample.zarr", "/r/embeddings/sample/hog.zarr"),
        ("/r/datasets/sample.zarr/", "/r/embeddings/sample/hog.zarr"),
        ("s3://b/r/datasets/sample.zarr", "s3://b/r/embeddings/sample/hog.zarr"),
        ("/elsewhere/mine.zarr", "/elsewhere/embeddings/mine/hog.zarr"),
        ("datasets/sample.zarr", "./embeddings/sample/hog.zarr"),
        ("sample.zarr", "./embeddings/sample/hog.zarr"),
    ],
)
def test_embeddings_sit_beside_their_dataset(dataset_url, expected):
    assert Layout.embedding(dataset_url, "hog") == expected
    assert Layout("/some/other/root").embedding(dataset_url, "hog") == expected


def test_encoder_slugs_are_file_names_and_unique():
    assert encoder_slug("open_clip:ViT-B-32@openai") == "open_clip_ViT-B-32@openai"
    a, b = encoder_slug("x/y"), encoder_slug("x y")
    assert a != b and "/" not in a and " " not in b
