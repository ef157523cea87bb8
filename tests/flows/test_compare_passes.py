"""The compare passes' batching: a task folding several blocks (the next read while one
computes) equals the blocks one by one, and row samples read on the cluster equal a local
read of the same rows."""

from __future__ import annotations

import functools

import numpy as np
from test_compare_flow import N, planted  # noqa: F401  (its dataset fixture)

from speclens.spec import GaussianRFF
from speclens.storage.embedding_store import EmbeddingStore
from speclens.tasks import mapreduce


def test_a_batch_of_blocks_equals_its_blocks_one_by_one(planted, tmp_path):  # noqa: F811
    fx, fy = GaussianRFF(2.0, 48, 3).fit(8), GaussianRFF(2.5, 48, 3).fit(12)
    freq = mapreduce.save_frequencies(str(tmp_path / "f.npz"), fx, fy)
    blocks = mapreduce.blocks_for(planted["vx"], planted["vy"], N, 50)
    batch = mapreduce.block_gram(tuple(blocks), (freq,), "float64")[0]
    one_by_one = functools.reduce(
        lambda a, b: a + b, [mapreduce.block_gram(b, (freq,), "float64")[0] for b in blocks]
    )
    assert batch.count == one_by_one.count == N
    np.testing.assert_allclose(batch.gram_sum, one_by_one.gram_sum, atol=1e-10 * N, rtol=0)
    w = np.random.default_rng(0).standard_normal((batch.gram_sum.shape[0], 3))
    batched = mapreduce.block_members(tuple(blocks), (freq,), (w,), 5, "float64")[0]
    parts = [mapreduce.block_members(b, (freq,), (w,), 5, "float64")[0] for b in blocks]
    merged = functools.reduce(lambda a, b: mapreduce.merge_members(a, b, 5), parts)
    for key in ("rows_hi", "rows_lo"):
        np.testing.assert_array_equal(batched[key], merged[key])
    np.testing.assert_allclose(batched["hi"], merged["hi"], atol=1e-12, rtol=0)


def test_row_samples_read_on_the_cluster_equal_a_local_read(
    planted,  # noqa: F811
    dask_address,
    monkeypatch,
):
    blocks = mapreduce.blocks_for(planted["vx"], planted["vy"], N, 32)
    rows = np.sort(np.random.default_rng(5).choice(N, size=60, replace=False))
    local = mapreduce.sample_pairs(blocks, rows)
    monkeypatch.setattr(mapreduce, "SAMPLE_BLOCKS_LOCAL", 0)  # every block a cluster task
    remote = mapreduce.sample_pairs(blocks, rows, dask_address)
    x = EmbeddingStore.open(planted["vx"]).take(rows)
    y = EmbeddingStore.open(planted["vy"]).take(rows)
    for got in (local, remote):
        np.testing.assert_array_equal(got[0], x)
        np.testing.assert_array_equal(got[1], y)


def test_the_in_process_client_gives_what_the_cluster_gives(planted, dask_address, tmp_path):  # noqa: F811
    """The passes on threads of this process (no scheduler: a small local compare) against
    the same passes on a LocalCluster of worker processes: the same Gram state (the same
    reduction tree), the same members and scores, the same row samples."""
    from speclens.tasks.local_client import IN_PROCESS

    fx, fy = GaussianRFF(2.0, 48, 3).fit(8), GaussianRFF(2.5, 48, 3).fit(12)
    freq = (mapreduce.save_frequencies(str(tmp_path / "f.npz"), fx, fy),)
    blocks = mapreduce.blocks_for(planted["vx"], planted["vy"], N, 40)
    w = (np.random.default_rng(1).standard_normal((192, 4)),)
    rows = np.sort(np.random.default_rng(5).choice(N, size=60, replace=False))
    got = {}
    for address in (IN_PROCESS, dask_address):
        with mapreduce.dask_client(address) as client:
            assert sum(client.nthreads().values()) >= 1
            state = mapreduce.gram_mapreduce(client, blocks, freq, "float64")[0]
            members = mapreduce.members_mapreduce(client, blocks, freq, w, 5, "float64")[0]
        got[address] = (state, members, mapreduce.sample_pairs(blocks, rows, address))
    (a, ma, sa), (b, mb, sb) = got[IN_PROCESS], got[dask_address]
    assert a.count == b.count == N
    np.testing.assert_allclose(a.summed(), b.summed(), atol=1e-10 * N, rtol=0)
    for part_a, part_b in zip(ma, mb, strict=True):  # (members, scores) of the one run
        for x, y in zip(part_a, part_b, strict=True):
            np.testing.assert_allclose(np.asarray(x, float), np.asarray(y, float), atol=1e-10)
    for x, y in zip(sa, sb, strict=True):
        np.testing.assert_array_equal(x, y)
