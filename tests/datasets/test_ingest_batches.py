"""Shards ingested in batches (one ingest task fills several shards, each shard's write
overlapping the next one's decode, files read ahead on a reader thread) write the same store
as shards ingested one at a time; a failed shard does not stop its batch; a retried batch
redoes only the shards without a marker; and the flow's batches cover the pending shards.
Runs the ingest steps in-process (no Prefect)."""

from __future__ import annotations

import numpy as np
import pytest
from imagefiles import encode, halves
from PIL import Image

from speclens.datasets import ingest as steps
from speclens.datasets.ingest import IngestOptions, fill_shard, fill_shards, prepare
from speclens.datasets.sources import IngestSource
from speclens.flows.ingest import MAX_SHARDS_PER_TASK, shard_batches
from speclens.storage.dataset_store import STRING_ROWS, DatasetStore

SHARD = 4


@pytest.fixture()
def photos(tmp_path):
    """14 files (4 shards of 4, the last short): photos of several sizes and modes, a
    truncated file and a file that is not an image."""
    root = tmp_path / "photos"
    root.mkdir()
    rng = np.random.default_rng(0)
    for i in range(12):
        w, h = 40 + 8 * i, 30 + 5 * (i % 4)
        img = Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
        fmt, ext = ("PNG", "png") if i % 3 == 0 else ("JPEG", "jpg")
        (root / f"p{i:02d}.{ext}").write_bytes(encode(img, fmt))
    (root / "p12-cut.jpg").write_bytes(encode(halves(300, 300), "JPEG")[:2000])
    (root / "p13-text.jpg").write_bytes(b"not an image\n" * 10)
    return root


def _everything(out: str) -> dict:
    store = DatasetStore.open(out)
    data = {
        name: store.array(name)[:] for name in ("images", "label", "duplicate_of", *STRING_ROWS)
    }
    data["captions"] = store.captions().to_pylist()
    markers = store.markers()
    for key in ("content_sha256", "counts", "reasons", "conversions", "bytes_read"):
        data[f"markers.{key}"] = [markers[i][key] for i in sorted(markers)]
    return data


def test_a_batch_writes_the_same_store_as_one_shard_at_a_time(photos, tmp_path, monkeypatch):
    source = IngestSource.folder(str(photos))
    one, batch = str(tmp_path / "one.zarr"), str(tmp_path / "batch.zarr")
    options = IngestOptions(shard_size=SHARD, image_size=24)
    monkeypatch.setattr(steps, "READ_AHEAD", 0)  # one file at a time, inline
    for shard_id in prepare(source, one, options)["pending"]:
        fill_shard(one, shard_id)
    monkeypatch.setattr(steps, "READ_AHEAD", 3)  # fewer than a shard: the window moves
    pending = prepare(source, batch, options)["pending"]
    assert pending == [0, 1, 2, 3]
    markers, failed = fill_shards(batch, pending)
    assert failed == {} and [m["shard"] for m in markers] == pending
    got, want = _everything(batch), _everything(one)
    assert got["status"].tolist().count("quarantined") == 2
    assert got.keys() == want.keys()
    for name, values in want.items():
        if isinstance(values, np.ndarray):
            np.testing.assert_array_equal(got[name], values, err_msg=name)
        else:
            assert got[name] == values, name


def test_a_failed_shard_does_not_stop_its_batch_and_a_retry_redoes_only_it(
    photos, tmp_path, monkeypatch
):
    out = str(tmp_path / "s.zarr")
    prepare(IngestSource.folder(str(photos)), out, IngestOptions(shard_size=SHARD, image_size=16))
    real_rows, real_write = steps.shard_rows, DatasetStore.write_shard

    def rows(store, shard_id):
        if shard_id == 1:
            raise ValueError("a bug in shard 1")
        return real_rows(store, shard_id)

    def write(self, shard_id, *args):
        if shard_id == 2:
            raise ConnectionResetError("the store went away")
        return real_write(self, shard_id, *args)

    monkeypatch.setattr(steps, "shard_rows", rows)
    monkeypatch.setattr(DatasetStore, "write_shard", write)
    markers, failed = fill_shards(out, [0, 1, 2, 3])
    assert [m["shard"] for m in markers] == [0, 3]
    assert isinstance(failed[1], ValueError) and isinstance(failed[2], ConnectionResetError)
    assert DatasetStore.open(out).pending() == [1, 2]

    monkeypatch.undo()
    written = DatasetStore.open(out).markers()
    markers, failed = fill_shards(out, [0, 1, 2, 3], skip_committed=True)
    assert failed == {} and [m["shard"] for m in markers] == [0, 1, 2, 3]
    after = DatasetStore.open(out).markers()
    assert after[0] == written[0] and after[3] == written[3]  # not redone
    assert DatasetStore.open(out).pending() == []


def test_the_task_raises_an_io_error_so_that_prefect_retries_the_batch(
    photos, tmp_path, monkeypatch
):
    from speclens.tasks.ingest import ingest_shards

    out = str(tmp_path / "s.zarr")
    prepare(IngestSource.folder(str(photos)), out, IngestOptions(shard_size=SHARD, image_size=16))
    real_write = DatasetStore.write_shard

    def write(self, shard_id, *args):
        if shard_id == 0:
            raise OSError(5, "Input/output error")
        return real_write(self, shard_id, *args)

    monkeypatch.setattr(DatasetStore, "write_shard", write)
    with pytest.raises(OSError, match="Input/output error"):
        ingest_shards.fn(out, [0, 1])
    assert DatasetStore.open(out).pending() == [0, 2, 3]  # shard 1 was still committed


@pytest.mark.parametrize(
    ("n", "threads", "sizes"),
    [
        (6, 1, [6]),
        (6, 2, [3, 3]),
        (7, 2, [4, 3]),
        (5, 8, [1, 1, 1, 1, 1]),
        (16, 1, [8, 8]),
        (20, 0, [7, 7, 6]),
        (0, 2, []),
    ],
)
def test_batches_are_consecutive_even_and_cover_every_pending_shard(n, threads, sizes):
    pending = [2 * i + 1 for i in range(n)]  # any ids: a resumed run's pending shards
    batches = shard_batches(pending, threads)
    assert [len(b) for b in batches] == sizes
    assert [s for b in batches for s in b] == pending
    assert all(len(b) <= MAX_SHARDS_PER_TASK for b in batches)
