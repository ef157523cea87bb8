"""The ImageNet (train, val) and COCO readers on real JPEG copies of the embedded sample,
through the real ingest flow (Prefect test server + Dask LocalCluster)."""

from __future__ import annotations

import numpy as np
import pytest

from speclens.datasets import sample
from speclens.datasets.imagenet import plan_imagenet, read_class_index
from speclens.datasets.sample_export import index_of
from speclens.datasets.sources import IngestSource
from speclens.flows.ingest import ingest
from speclens.storage.dataset_store import DatasetStore

pytestmark = pytest.mark.integration


def truth(copies):
    images, f, caps = sample.generate(copies["n"], copies["seed"])
    return images, f, caps


def check_pixels_and_labels(store, copies, with_labels=True):
    images, f, _ = truth(copies)
    idx = np.array([index_of(s) for s in store.sample_ids()])
    assert sorted(idx) == list(range(copies["n"]))  # every sample exactly once
    assert (store.status() == "ok").all()
    stored = store.images().astype(np.float32).reshape(len(idx), -1)
    flat = images.astype(np.float32).reshape(len(images), -1)
    err = np.abs(stored[:, None, :] - flat[None, :, :]).mean(axis=2)  # stored x generated
    assert err[np.arange(len(idx)), idx].max() < 6  # JPEG of a noisy image, nothing else
    assert (err.argmin(axis=1) == idx).all()  # and each row is its own image, not another
    if with_labels:
        np.testing.assert_array_equal(store.labels(), f.label[idx])
        assert store.label_names == sample.LABEL_NAMES
    return idx


def test_imagenet_train_layout(sample_copies, dask_address, tmp_path):
    train = sample_copies["imagenet_train"]
    out = str(tmp_path / "train.zarr")
    summary = ingest(
        IngestSource.imagenet(train["root"], class_index=train["class_index"]),
        out,
        image_size=64,
        shard_size=16,
        address=dask_address,
        progress=False,
    )
    assert summary["counts"] == {"ok": sample_copies["n"], "quarantined": 0}
    store = DatasetStore.open(out)
    check_pixels_and_labels(store, sample_copies)
    ids = list(store.sample_ids())
    assert ids == sorted(ids) and ids[0].startswith("n09000000/n09000000_")
    assert store.meta["source"]["wnids"][:2] == ["n09000000", "n09000001"]


def test_imagenet_train_without_class_index_names_classes_by_wnid(sample_copies):
    plan = plan_imagenet(sample_copies["imagenet_train"]["root"])
    wnids = sorted({s.split("/")[0] for s in plan.table.column("sample_id").to_pylist()})
    assert plan.label_names == wnids
    assert read_class_index(sample_copies["imagenet_train"]["class_index"])[4] == (
        "n09000004",
        "green square",
    )


def test_imagenet_val_layout(sample_copies, dask_address, tmp_path):
    val = sample_copies["imagenet_val"]
    out = str(tmp_path / "val.zarr")
    ingest(
        IngestSource.imagenet(val["root"], labels=val["labels"], class_index=val["class_index"]),
        out,
        image_size=64,
        shard_size=20,
        address=dask_address,
        progress=False,
    )
    store = DatasetStore.open(out)
    idx = check_pixels_and_labels(store, sample_copies)
    assert (np.diff(idx) == 1).all()  # ILSVRC2012_val_<k> sorts in sample order


def test_coco_layout_keeps_every_caption(sample_copies, dask_address, tmp_path):
    coco = sample_copies["coco"]
    out = str(tmp_path / "coco.zarr")
    ingest(
        IngestSource.coco(coco["images"], coco["captions"]),
        out,
        image_size=64,
        shard_size=16,
        address=dask_address,
        progress=False,
    )
    store = DatasetStore.open(out)
    idx = check_pixels_and_labels(store, sample_copies, with_labels=False)
    assert (store.labels() == -1).all()
    _, _, caps = truth(sample_copies)
    table = store.captions().to_pylist()
    by_id: dict[str, list[str]] = {}
    for row in table:
        by_id.setdefault(row["sample_id"], []).append(row["caption"])
    for sid, i in zip(store.sample_ids(), idx, strict=True):
        assert by_id[sid] == caps[i]
    assert list(store.array("caption")[:]) == [caps[i][0] for i in idx]
