"""The storage layer without services: writing a whole embedding store from arrays, and
where things live under a root."""

from __future__ import annotations

import numpy as np
import pytest

from speclens.storage import urls
from speclens.storage.embedding_store import (
    EmbeddingStore,
    default_embedding_url,
    write_embedding_store,
)
from speclens.storage.layout import Layout, encoder_slug
from speclens.tasks.publish import warehouse_url

N, SHARD = 40, 16  # three shards, the last one short


def ids(n: int = N) -> np.ndarray:
    return np.array([f"s{i:03d}" for i in range(n)])


def provenance(input_hash: str = "h1") -> dict:
    return {"encoder_id": "enc", "dataset_url": "memory://d", "dataset_input_hash": input_hash}


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
    assert store.dataset_input_hash == "new" and sorted(store.markers()) == [0, 1, 2]
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
    assert warehouse_url("s3://bucket/out", None) == layout.warehouse()
    assert default_embedding_url("/x/datasets/a.zarr", "hog") == Layout.embedding(
        "/x/datasets/a.zarr", "hog"
    )


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
