"""The compare flow's ``samples`` table on a real Dask cluster: every sample's scores equal the
in-process engine's, its mode follows the planted groups, its local agreement equals a
brute-force reference and finds the samples whose neighbourhood was scrambled, and the map
places every sample; ``--no-local-agreement`` and ``map_points=0`` leave those columns null."""

from __future__ import annotations

import numpy as np
import pytest
from test_compare_flow import N, planted  # noqa: F401  (its dataset fixture)

from speclens.flows.compare import compare
from speclens.spec import SPEC
from speclens.storage.dataset_store import DatasetStore
from speclens.storage.warehouse import Warehouse
from speclens.tasks.vector_import import import_vectors

pytestmark = pytest.mark.integration
GROUP, K = 30, 10


def _knn(v: np.ndarray, k: int) -> list[set]:
    d = ((v[:, None, :] - v[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    return [set(np.argsort(row, kind="stable")[:k].tolist()) for row in d]


@pytest.fixture(scope="module")
def scrambled(planted, tmp_path_factory):  # noqa: F811
    """Y = X (padded) for every sample but GROUP of them, whose Y vectors are random."""
    root = tmp_path_factory.mktemp("scrambled")
    rng = np.random.default_rng(11)
    x = rng.standard_normal((N, 8))
    y = np.hstack([x, np.zeros((N, 4))])
    group = np.sort(rng.choice(N, GROUP, replace=False))
    y[group] = rng.standard_normal((GROUP, 12)) * 1.5
    ids = np.array(DatasetStore.open(planted["dataset"]).sample_ids().tolist(), dtype=str)
    out = {}
    for name, vec in (("sx", x), ("sy", y)):
        np.savez(root / f"{name}.npz", embeddings=vec.astype(np.float32), ids=ids)
        out[name] = import_vectors(str(root / f"{name}.npz"), planted["dataset"], name)["out"]
    return {**out, "x": x.astype(np.float32), "y": y.astype(np.float32), "group": group}


def _rows(root: str, run_id: str) -> tuple[list[dict], dict]:
    wh = Warehouse(root + "/warehouse")
    return wh.read("samples", run_id).to_pylist(), wh.read("runs", run_id).to_pylist()[0]


def test_samples_hold_every_score_and_the_planted_modes(planted, dask_address):  # noqa: F811
    p = planted["p"]
    kw = dict(sigma_x=2.0, sigma_y=2.5, rff_dim=300, n_modes=3, seed=5, dtype="float64")
    compare(
        planted["dataset"],
        [planted["vx"], planted["vy"]],
        root=planted["root"],
        run_id="samples-run",
        address=dask_address,
        members=30,
        uncertainty=False,
        **kw,
    )
    samples, run = _rows(planted["root"], "samples-run")
    ids = DatasetStore.open(planted["dataset"]).sample_ids().tolist()
    assert [s["sample_id"] for s in samples] == ids  # every sample, in the store's order
    engine = SPEC(
        sigma_x=2.0, sigma_y=2.5, rff_dim=300, n_modes=3, random_state=5, dtype="float64"
    ).fit(p.X, p.Y)
    want = engine.transform(p.X, p.Y)  # signs: the largest-magnitude entry positive
    got = np.array([s["scores"] for s in samples])
    np.testing.assert_allclose(got, want, atol=1e-6 * np.abs(want).max(), rtol=0)  # float32
    mode = np.array([-1 if s["top_mode"] is None else s["top_mode"] for s in samples])
    assert np.mean(mode[p.group_x] == 0) >= 0.9 and np.mean(mode[p.group_y] == 3) >= 0.9
    others = np.setdiff1d(np.arange(N), np.concatenate([p.group_x, p.group_y]))
    assert np.mean(np.isin(mode[others], (0, 3))) <= 0.1
    for s in samples:
        if s["top_mode"] is not None:
            assert s["top_share"] >= 0.5
    assert all(s["map_x"] is not None and s["map_y"] is not None for s in samples)
    assert run["map_method"].startswith("umap") and f"{N} of {N}" in run["map_method"]


def test_local_agreement_equals_brute_force_and_finds_the_scrambled(
    planted,  # noqa: F811
    scrambled,
    dask_address,
):
    compare(
        planted["dataset"],
        [scrambled["sx"], scrambled["sy"]],
        root=planted["root"],
        run_id="agreement-run",
        address=dask_address,
        rff_dim=200,
        n_modes=2,
        uncertainty=False,
        map_points=0,
    )
    samples, run = _rows(planted["root"], "agreement-run")
    nx, ny = _knn(scrambled["x"], K), _knn(scrambled["y"], K)
    ref = np.array([len(a & b) / len(a | b) for a, b in zip(nx, ny, strict=True)])
    got = np.array([s["local_agreement"] for s in samples])
    np.testing.assert_allclose(got, ref, atol=1e-12)
    lowest = np.argsort(got, kind="stable")[:GROUP]
    assert np.isin(lowest, scrambled["group"]).mean() >= 0.9  # the scrambled neighbourhoods
    assert (run["neighbors_method"], run["neighbors_k"], run["neighbors_recall"]) == (
        "exact",
        K,
        1.0,
    )
    assert run["map_method"] is None and all(s["map_x"] is None for s in samples)


def test_no_local_agreement_leaves_its_columns_null(planted, scrambled, dask_address):  # noqa: F811
    compare(
        planted["dataset"],
        [scrambled["sx"], scrambled["sy"]],
        root=planted["root"],
        run_id="no-agreement-run",
        address=dask_address,
        rff_dim=200,
        n_modes=2,
        uncertainty=True,
        local_agreement=False,
        map_points=0,
    )
    samples, run = _rows(planted["root"], "no-agreement-run")
    assert len(samples) == N and all(s["local_agreement"] is None for s in samples)
    assert run["neighbors_method"] is None and run["neighbors_k"] is None
    assert all(len(s["scores"]) == 4 for s in samples)  # the uncertainty's pass scores too


def test_a_large_run_page_gets_its_mapped_and_lowest_agreement_samples():
    """Above SAMPLE_ROWS rows the page gets the mapped samples and the SAMPLE_ROWS of lowest
    local agreement, nothing else."""
    import pyarrow as pa

    from speclens.report.interactive import SAMPLE_ROWS
    from speclens.storage.warehouse_schema import file_schema
    from speclens.tasks.publish_samples import report_samples

    n = 3 * SAMPLE_ROWS
    rng = np.random.default_rng(0)
    agreement = rng.permutation(n) / n
    mapped = np.arange(n) % 7 == 0
    table = pa.table(
        {
            "sample_id": [f"s{i:05d}" for i in range(n)],
            "label": [None] * n,
            "caption": [None] * n,
            "scores": [[0.0]] * n,
            "top_mode": [None] * n,
            "top_share": [None] * n,
            "local_agreement": agreement,
            "map_x": [float(i) if m else None for i, m in enumerate(mapped)],
            "map_y": [0.0 if m else None for m in mapped],
        },
        schema=file_schema("samples"),
    )
    got = {r["sample_id"] for r in report_samples(table)}
    low = set(np.argsort(agreement)[:SAMPLE_ROWS].tolist())
    want = {f"s{i:05d}" for i in range(n) if mapped[i] or i in low}
    assert got == want
