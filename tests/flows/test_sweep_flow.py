"""A bandwidth sweep on a real Dask cluster: one pass, one ordinary run per bandwidth, the
sweep page, the peak at the planted scale; the random-feature check and the exact check."""

from __future__ import annotations

import math
import pathlib

import numpy as np
import pytest

from speclens.datasets.sources import IngestSource
from speclens.flows.compare import compare
from speclens.flows.ingest import ingest
from speclens.spec import planted_pair
from speclens.spec.exact import exact_ends
from speclens.spec.planted import peak_bandwidth
from speclens.storage.dataset_store import DatasetStore
from speclens.storage.warehouse import Warehouse
from speclens.tasks.vector_import import import_vectors

pytestmark = pytest.mark.integration
N = 400
SCALES = (0.0625, 0.125, 0.25, 0.5, 1.0, 2.0)


@pytest.fixture(scope="module")
def planted(tmp_path_factory, dask_address):
    """N samples whose X holds a tight group (tightness 0.05) that Y spreads out."""
    root = tmp_path_factory.mktemp("sweep")
    dataset = str(root / "datasets" / "sample.zarr")
    ingest(IngestSource.sample(N, 1), dataset, shard_size=64, address=dask_address, progress=False)
    ids = np.array(DatasetStore.open(dataset).sample_ids().tolist(), dtype=str)
    p = planted_pair(n=N, dx=16, dy=24, group_size=40, tightness=0.05, random_state=1)
    for name, vec in (("vx", p.X), ("vy", p.Y)):
        np.savez(root / f"{name}.npz", embeddings=vec.astype(np.float32), ids=ids)
        import_vectors(str(root / f"{name}.npz"), dataset, name)
    return {"root": str(root), "dataset": dataset, "p": p}


def test_a_sweep_is_one_run_per_bandwidth_peaking_at_the_planted_scale(planted, dask_address):
    root = planted["root"]
    kw = dict(root=root, address=dask_address, rff_dim=400, n_modes=2, members=20)
    compare(planted["dataset"], ["vx", "vy"], run_id="other", **kw)
    results = compare(planted["dataset"], ["vx", "vy"], run_id="sw", sigma_scale=list(SCALES), **kw)
    wh = Warehouse(root + "/warehouse")
    runs = {r["run_id"]: r for r in wh.read("runs").to_pylist() if r["parent_run_id"] == "sw"}
    assert sorted(runs) == sorted(f"sw--sigma{s:g}" for s in SCALES)
    assert [r["run_id"] for r in results] == [f"sw--sigma{s:g}" for s in SCALES]
    for rid, run in runs.items():  # ordinary runs: modes, members, their own page
        assert wh.read("modes", rid).num_rows == 4
        assert wh.read("members", rid).num_rows == 4 * 20
        assert pathlib.Path(root, "reports", rid, "index.html").exists()
        median = run["sigma_x"] / run["sigma_scale"]
        assert run["rff_dim"] == 400 and run["rff_rel_error"] >= 0
    # every run saw the same median: the scales differ, nothing else
    medians = {round(r["sigma_x"] / r["sigma_scale"], 9) for r in runs.values()}
    assert len(medians) == 1
    # the held-out SPEC-diff X over Y peaks within one grid step of the planted scale
    held = {
        r["sigma_scale"]: wh.read("pair_scores", rid)
        .column("spec_diff_x_over_y_heldout")[0]
        .as_py()
        for rid, r in runs.items()
    }
    peak = max(held, key=held.get)
    planted_scale = peak_bandwidth(planted["p"]) / median
    assert abs(math.log2(peak / planted_scale)) <= 1.0, (held, planted_scale)
    page = pathlib.Path(root, "reports", "sw", "index.html").read_text()
    assert "The difference is largest at" in page and "sweep.png" in page
    assert all(f"sw--sigma{s:g}/index.html" in page for s in SCALES)

    # a rerun of the sweep rewrites its own partitions only
    other = wh.read("members", "other")
    compare(planted["dataset"], ["vx", "vy"], run_id="sw", sigma_scale=[0.25, 0.5], **kw)
    assert wh.read("members", "other").equals(other)
    assert wh.read("modes", "sw--sigma0.25").num_rows == 4


def test_random_feature_error_falls_with_more_features_and_exact_check(planted, dask_address):
    """The estimated error shrinks as D grows, and is of the size of the actual distance to
    the exact n x n eigenvalues; the exact check records those next to the run's."""
    root, p = planted["root"], planted["p"]
    kw = dict(root=root, address=dask_address, n_modes=2, members=5, uncertainty=False)
    small = compare(planted["dataset"], ["vx", "vy"], run_id="d50", rff_dim=50, **kw)[0]
    large = compare(
        planted["dataset"], ["vx", "vy"], run_id="d800", rff_dim=800, exact_check=True, **kw
    )[0]
    assert large["rff_rel_error"] < small["rff_rel_error"]
    wh = Warehouse(root + "/warehouse")
    modes = wh.read("modes", "d800").sort_by("mode").to_pylist()
    assert wh.read("runs", "d800").column("exact_check_n")[0].as_py() == N
    exact = exact_ends(
        p.X.astype(np.float32),
        p.Y.astype(np.float32),
        2,
        sigma_x=large["sigma_x"],
        sigma_y=large["sigma_y"],
    )
    for m, e in zip(modes, exact, strict=True):
        assert m["exact_eigenvalue"] == pytest.approx(e, rel=1e-9, abs=1e-12)
        # every row checked: the run's features on the same rows are the run itself
        assert m["exact_rff_eigenvalue"] == pytest.approx(m["eigenvalue"], rel=1e-4, abs=1e-7)
    lead = [modes[0], modes[2]]
    actual = max(
        abs(m["eigenvalue"] - m["exact_eigenvalue"]) / abs(m["exact_eigenvalue"]) for m in lead
    )
    assert actual <= 5 * large["rff_rel_error"] + 0.02
    page = pathlib.Path(root, "reports", "d800", "index.html").read_text()
    assert "exact n × n" in page
