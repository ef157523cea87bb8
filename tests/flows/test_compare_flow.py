"""The compare flow against a real Dask scheduler and workers, the join checks, and the
block functions of the map-reduce without any cluster."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from speclens.datasets.sources import IngestSource
from speclens.errors import InputError
from speclens.flows.compare import compare
from speclens.flows.ingest import ingest
from speclens.spec import SPEC, GramAccumulator, planted_pair
from speclens.storage.dataset_store import DatasetStore
from speclens.storage.warehouse import Warehouse
from speclens.tasks import mapreduce
from speclens.tasks.vector_import import import_vectors

pytestmark = pytest.mark.integration
N, SHARD = 240, 32


@pytest.fixture(scope="module")
def planted(tmp_path_factory, dask_address):
    """A dataset of N samples with planted X and Y vectors imported as two embeddings."""
    root = tmp_path_factory.mktemp("compare")
    dataset = str(root / "datasets" / "sample.zarr")
    ingest(
        IngestSource.sample(N, 1), dataset, shard_size=SHARD, address=dask_address, progress=False
    )
    ids = np.array(DatasetStore.open(dataset).sample_ids().tolist(), dtype=str)
    p = planted_pair(n=N, dx=8, dy=12, group_size=30, random_state=4)
    urls = {}
    for name, vec in (("vx", p.X), ("vy", p.Y)):
        np.savez(root / f"{name}.npz", embeddings=vec.astype(np.float32), ids=ids)
        urls[name] = import_vectors(str(root / f"{name}.npz"), dataset, name)["out"]
    return {"root": str(root), "dataset": dataset, "p": p, **urls}


@pytest.fixture(scope="module")
def dask_cli_cluster(tmp_path_factory, prefect_api):
    """`dask scheduler` and two `dask worker` processes on 127.0.0.1, stopped afterwards."""
    folder = tmp_path_factory.mktemp("dask")
    sched_file = folder / "scheduler.json"
    bindir = os.path.dirname(sys.executable)
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    procs = [
        subprocess.Popen(
            [
                f"{bindir}/dask",
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--dashboard-address",
                ":0",
                "--scheduler-file",
                str(sched_file),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    ]
    deadline = time.time() + 60
    while not sched_file.exists() and time.time() < deadline:
        time.sleep(0.2)
    for _ in range(2):
        procs.append(
            subprocess.Popen(
                [
                    f"{bindir}/dask",
                    "worker",
                    "--scheduler-file",
                    str(sched_file),
                    "--nthreads",
                    "1",
                    "--host",
                    "127.0.0.1",
                    "--no-dashboard",
                ],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    from distributed import Client

    with Client(scheduler_file=str(sched_file), timeout="60s") as client:
        client.wait_for_workers(2, timeout=60)
        address = client.scheduler.address
        assert address.startswith("tcp://127.0.0.1:")
    yield address
    for proc in reversed(procs):
        proc.terminate()
    for proc in procs:
        proc.wait(timeout=30)


def test_compare_on_a_real_cluster_equals_the_in_process_engine(planted, dask_cli_cluster):
    p = planted["p"]
    kw = dict(sigma_x=2.0, sigma_y=2.5, rff_dim=300, n_modes=3, seed=5)
    results = compare(
        planted["dataset"],
        [planted["vx"], planted["vy"]],
        root=planted["root"],
        run_id="cluster-run",
        address=dask_cli_cluster,
        dtype="float64",
        members=30,
        **kw,
    )
    ids = DatasetStore.open(planted["dataset"]).sample_ids().tolist()
    engine = SPEC(
        sigma_x=2.0,
        sigma_y=2.5,
        rff_dim=300,
        n_modes=3,
        random_state=5,
        dtype="float64",
        uncertainty=True,
    ).fit(p.X, p.Y, keys=np.array(ids, dtype=str))
    np.testing.assert_allclose(results[0]["eigenvalues"], engine.eigenvalues_, atol=1e-8, rtol=0)
    wh = Warehouse(planted["root"] + "/warehouse")
    modes = wh.read("modes", "cluster-run").sort_by("mode").to_pylist()
    assert [m["direction"] for m in modes] == ["x_over_y"] * 3 + ["y_over_x"] * 3
    _same_uncertainty(modes, engine.uncertainty_, engine.eigenvalues_)
    members = wh.read("members", "cluster-run").to_pylist()
    top = {
        i for i, sid in enumerate(ids) if sid in {m["sample_id"] for m in members if m["mode"] == 0}
    }
    bottom = {
        i for i, sid in enumerate(ids) if sid in {m["sample_id"] for m in members if m["mode"] == 3}
    }
    assert len(top & set(p.group_x.tolist())) >= 27  # planted truth: >= 0.9 precision
    assert len(bottom & set(p.group_y.tolist())) >= 27
    scores = engine.transform(p.X, p.Y)
    got = sorted((m["rank"], m["score"]) for m in members if m["mode"] == 0)
    np.testing.assert_allclose([s for _, s in got], np.sort(scores[:, 0])[::-1][:30], atol=1e-8)
    pair = wh.read("pair_scores", "cluster-run").to_pylist()[0]
    assert pair["spec_diff_x_over_y"] == pytest.approx(engine.spec_diff_["x_over_y"], abs=1e-8)
    assert pair["spec_diff_x_over_y_low"] == pytest.approx(modes[0]["eigenvalue_low"], abs=1e-12)
    assert pair["spec_diff_y_over_x_high"] == pytest.approx(-modes[3]["eigenvalue_low"], abs=1e-12)
    assert pair["spec_diff_y_over_x_heldout"] == pytest.approx(-modes[3]["heldout_eigenvalue"])
    assert pair["spec_diff_x_over_y_p"] == modes[0]["p_value"] < 0.01  # the planted groups
    assert pair["spec_diff_y_over_x_p"] == modes[3]["p_value"] < 0.01
    run = wh.read("runs", "cluster-run").to_pylist()[0]
    assert run["sigma_x"] == 2.0 and run["n"] == N and run["status"] == "succeeded"


def _same_uncertainty(modes: list[dict], u, eigenvalues: np.ndarray) -> None:
    """The published uncertainty columns equal the in-process estimator's (same halves, same
    second draw of features), and each interval holds its value."""
    z = u.z
    columns = {
        "eigenvalue_se": u.eigenvalue_se,
        "eigenvalue_low": eigenvalues - z * u.eigenvalue_se,
        "heldout_eigenvalue": u.heldout,
        "heldout_se": u.heldout_se,
        "rff_error": u.rff_error,
        "p_value": u.p_value,
        "p_adjusted": u.p_adjusted,
        "stability": u.stability,
    }
    for name, want in columns.items():
        got = [m[name] for m in modes]
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9, err_msg=name)
    assert [m["near_tie"] for m in modes] == u.near_tie.tolist()
    for m in modes:
        assert m["eigenvalue_low"] <= m["eigenvalue"] <= m["eigenvalue_high"]
        assert m["heldout_low"] <= m["heldout_eigenvalue"] <= m["heldout_high"]
        assert m["p_value"] <= m["p_adjusted"] <= 1 and 0 <= m["stability"] <= 1


def test_a_rerun_on_a_long_lived_cluster_uses_its_own_frequencies(planted, dask_cli_cluster):
    """Workers that served a run id must not serve its old feature maps to a rerun of that id
    with another bandwidth (the frequencies file is rewritten at the same URL)."""
    kw = dict(rff_dim=100, n_modes=2, members=5, address=dask_cli_cluster)
    root = planted["root"]
    compare(planted["dataset"], ["vx", "vy"], root=root, run_id="r", sigma_scale=0.5, **kw)
    compare(planted["dataset"], ["vx", "vy"], root=root, run_id="r", sigma_scale=0.25, **kw)
    compare(planted["dataset"], ["vx", "vy"], root=root, run_id="fresh", sigma_scale=0.25, **kw)
    wh = Warehouse(root + "/warehouse")
    rerun = wh.read("modes", "r").sort_by("mode").column("eigenvalue").to_numpy()
    fresh = wh.read("modes", "fresh").sort_by("mode").column("eigenvalue").to_numpy()
    np.testing.assert_allclose(rerun, fresh, atol=1e-8, rtol=0)
    assert (
        wh.read("runs", "r").column("sigma_x")[0] == wh.read("runs", "fresh").column("sigma_x")[0]
    )


def test_rerunning_a_run_id_overwrites_only_its_partitions(planted, dask_address):
    kw = dict(rff_dim=100, n_modes=2, members=10)
    compare(
        planted["dataset"],
        ["vx", "vy"],
        root=planted["root"],
        run_id="a",
        address=dask_address,
        **kw,
    )
    compare(
        planted["dataset"],
        ["vx", "vy"],
        root=planted["root"],
        run_id="b",
        address=dask_address,
        **kw,
    )
    wh = Warehouse(planted["root"] + "/warehouse")
    before_b = wh.read("members", "b")
    compare(
        planted["dataset"],
        ["vx", "vy"],
        root=planted["root"],
        run_id="a",
        address=dask_address,
        rff_dim=100,
        n_modes=3,
        members=10,
        uncertainty=False,
    )
    assert wh.read("modes", "a").num_rows == 6
    assert wh.read("members", "b").equals(before_b)
    # the rerun without uncertainty publishes nulls there, not the first run's numbers
    modes = wh.read("modes", "a").to_pylist()
    assert all(m["heldout_eigenvalue"] is None and m["near_tie"] is None for m in modes)
    assert wh.read("runs", "a").column("confidence")[0].as_py() is None
    assert wh.read("pair_scores", "a").column("spec_diff_x_over_y_p")[0].as_py() is None
    assert wh.read("modes", "b").column("p_adjusted").null_count == 0


def test_mismatched_embeddings_are_refused(planted, tmp_path, dask_address):
    other = str(tmp_path / "datasets" / "other.zarr")
    ingest(
        IngestSource.sample(40, 2), other, shard_size=SHARD, address=dask_address, progress=False
    )
    ids = np.array(DatasetStore.open(other).sample_ids().tolist(), dtype=str)
    np.savez(
        tmp_path / "v.npz",
        embeddings=np.ones((40, 3), np.float32) + np.arange(40)[:, None],
        ids=ids,
    )
    foreign = import_vectors(str(tmp_path / "v.npz"), other, "foreign")["out"]
    with pytest.raises(InputError, match="embeds other samples than.*same dataset store"):
        compare(
            planted["dataset"], [planted["vx"], foreign], root=str(tmp_path), address=dask_address
        )
    with pytest.raises(InputError, match="no embedding of .* by 'nope'.*speclens embed"):
        compare(planted["dataset"], ["vx", "nope"], root=str(tmp_path), address=dask_address)
    missing = str(tmp_path / "datasets" / "missing.zarr")
    with pytest.raises(InputError, match="missing.zarr is not a speclens dataset store"):
        compare(missing, ["vx", "vy"], root=str(tmp_path), address=dask_address)
    with pytest.raises(
        InputError,
        match=r"held-out halves have \d+ and \d+ samples.*2 x n_modes = 140.*--no-uncertainty",
    ):
        compare(planted["dataset"], ["vx", "vy"], root=str(tmp_path), n_modes=70, rff_dim=300)
    with pytest.raises(InputError, match="at least two encoders"):
        compare(planted["dataset"], ["vx"], root=str(tmp_path))


def test_block_functions_without_a_cluster(planted, tmp_path):
    """chunk / combine / aggregate in plain Python equal the one-pass accumulator, for each of
    two runs (two bandwidths) sharing one read of every block."""
    from speclens.spec import GaussianRFF

    p = planted["p"]
    fx, fy = GaussianRFF(2.0, 64, 1).fit(8), GaussianRFF(2.5, 64, 1).fit(12)
    freq = mapreduce.save_frequencies(str(tmp_path / "f.npz"), fx, fy)
    wide = mapreduce.save_frequencies(
        str(tmp_path / "f2.npz"), GaussianRFF(8.0, 32, 1).fit(8), GaussianRFF(9.0, 32, 1).fit(12)
    )
    blocks = mapreduce.blocks_for(planted["vx"], planted["vy"], N, 50)
    pairs = [mapreduce.block_gram(b, (freq, wide), "float64") for b in blocks]
    merged, merged_wide = functools.reduce(
        functools.partial(mapreduce.merge_each, lambda a, b: a + b), reversed(pairs)
    )
    assert merged_wide.summed().shape == (128, 128) and merged_wide.count == N
    alone = functools.reduce(
        lambda a, b: a + b, [mapreduce.block_gram(b, (wide,), "float64")[0] for b in blocks]
    )
    np.testing.assert_allclose(merged_wide.summed(), alone.summed(), atol=1e-10, rtol=0)
    # a sweep's maps (one seed, bandwidths x2): the second's projection is the first's rescaled
    twice = mapreduce.save_frequencies(
        str(tmp_path / "f3.npz"), GaussianRFF(4.0, 64, 1).fit(8), GaussianRFF(5.0, 64, 1).fit(12)
    )
    swept = [mapreduce.block_gram(b, (freq, twice), "float64")[1] for b in blocks]
    single = [mapreduce.block_gram(b, (twice,), "float64")[0] for b in blocks]
    for a, b in zip(swept, single, strict=True):  # equal up to float64 rounding of x @ W
        np.testing.assert_allclose(a.summed(), b.summed(), atol=1e-9 * max(a.count, 1), rtol=0)
    whole = (
        GramAccumulator(fx, fy, dtype="float64")
        .update(p.X.astype(np.float32), p.Y.astype(np.float32))
        .state()
    )
    np.testing.assert_allclose(merged.summed(), whole.summed(), atol=1e-10, rtol=0)
    spec = SPEC(
        sigma_x=2.0, sigma_y=2.5, rff_dim=64, n_modes=2, random_state=1, dtype="float64"
    ).solve(merged, fx, fy)
    parts = [mapreduce.block_members(b, (freq,), (spec.weights_,), 7, "float64")[0] for b in blocks]
    signs, rows, scores = mapreduce.finish_members(
        functools.reduce(lambda a, b: mapreduce.merge_members(a, b, 7), parts)
    )
    ref = spec.fit_signs(p.X.astype(np.float32), p.Y.astype(np.float32)).transform(
        p.X.astype(np.float32), p.Y.astype(np.float32)
    )
    np.testing.assert_array_equal(signs, spec.signs_)
    np.testing.assert_array_equal(rows, spec.members(ref, 7))
    np.testing.assert_allclose(scores, np.take_along_axis(ref.T, rows, axis=1), atol=1e-10)
