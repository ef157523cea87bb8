"""The storage layer without services: where things live under a root."""

from __future__ import annotations

import pytest

from speclens.storage.embedding_store import default_embedding_url
from speclens.storage.layout import Layout, encoder_slug
from speclens.tasks.publish import warehouse_url


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
