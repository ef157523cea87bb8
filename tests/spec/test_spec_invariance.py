"""Invariances of the engine: identity, chunking, merge order, permutation, seeds, backends."""

import os

import numpy as np
import pytest

from speclens.spec import (
    SPEC,
    GaussianRFF,
    GramAccumulator,
    merge_states,
    planted_pair,
)


@pytest.fixture(scope="module")
def data():
    p = planted_pair(n=700, dx=12, dy=20, group_size=70, random_state=1)
    return p.X, p.Y


def test_identical_embeddings_give_zero_spectrum(data):
    X, _ = data
    spec = SPEC(rff_dim=400, n_modes=3).fit(X, X.copy())
    assert np.all(spec.eigenvalues_ == 0.0) and spec.spec_diff_["max"] == 0.0
    assert spec.spectrum_.size == 0 and spec.gram_state_.identical
    assert np.all(spec.transform(X[:50], X[:50]) == 0.0)
    streamed = SPEC(kernel_x="cosine", kernel_y="cosine", n_modes=2)
    for a in range(0, X.shape[0], 128):
        streamed.partial_fit(X[a : a + 128], X[a : a + 128].copy())
    assert np.all(streamed.finalize().eigenvalues_ == 0.0)


def test_nearly_identical_or_differently_mapped_inputs_are_not_taken_for_identical(data):
    X, _ = data
    nudged = X.copy()
    nudged[5, 3] = np.nextafter(nudged[5, 3], np.inf)
    spec = SPEC(rff_dim=400, n_modes=3).fit(X, nudged)
    assert not spec.gram_state_.identical and spec.spectrum_.size > 0
    assert spec.spec_diff_["max"] < 1e-3  # rounding noise, not a difference
    other_map = SPEC(rff_dim=400, n_modes=3, sigma_x=1.0, sigma_y=2.0).fit(X, X.copy())
    assert not other_map.gram_state_.identical and other_map.spec_diff_["max"] > 1e-3


#: OpenBLAS kernels that compute the float32 block products of two equal feature blocks
#: differently, and the CPU flags each needs (AMD EPYC machines pick the Zen kernels).
KERNELS = {
    "Haswell": ("avx2", "fma"),
    "Zen": ("avx2", "fma"),
    "Sandybridge": ("avx",),
    "Prescott": (),
}


def test_identical_embeddings_give_zero_under_every_blas_kernel():
    """Before identical inputs were detected, the Haswell and Zen kernels gave 6.9e-06 here."""
    import pathlib
    import subprocess
    import sys

    flags = (
        set(pathlib.Path("/proc/cpuinfo").read_text().split())
        if pathlib.Path("/proc/cpuinfo").exists()
        else set()
    )
    script = (
        "import numpy as np; from speclens.spec import SPEC, planted_pair; "
        "X = planted_pair(n=700, dx=12, dy=20, group_size=70, random_state=1).X; "
        "print(max(np.abs(SPEC(rff_dim=r, n_modes=3).fit(X, X.copy()).eigenvalues_).max() "
        "for r in (37, 400)))"
    )
    ran = []
    for kernel, needs in KERNELS.items():
        if not set(needs) <= flags:
            continue
        env = {**os.environ, "OPENBLAS_CORETYPE": kernel}
        out = subprocess.run(
            [sys.executable, "-c", script],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        assert float(out.stdout.strip()) == 0.0, (kernel, out.stdout)
        ran.append(kernel)
    assert "Prescott" in ran


def _accumulate(X, Y, splits, order=None, dtype="float64"):
    fx, fy = GaussianRFF(3.0, 200, 4).fit(X), GaussianRFF(4.0, 200, 4).fit(Y)
    bounds = [0, *splits, X.shape[0]]
    states = [
        GramAccumulator(fx, fy, dtype=dtype).update(X[a:b], Y[a:b]).state()
        for a, b in zip(bounds[:-1], bounds[1:], strict=True)
    ]
    if order is not None:
        states = [states[i] for i in order]
    merged = states[0]
    for s in states[1:]:  # a left fold in the given order
        merged = merge_states(merged, s)
    return merged


def test_any_chunking_and_merge_order_gives_the_same_gram(data):
    X, Y = data
    whole = _accumulate(X, Y, [])
    for splits, order in [
        ([100, 350], [2, 0, 1]),
        ([1, 2, 3, 600], [4, 3, 2, 1, 0]),
        ([350], None),
    ]:
        other = _accumulate(X, Y, splits, order)
        assert other.count == whole.count == X.shape[0]
        np.testing.assert_allclose(other.gram_sum, whole.gram_sum, atol=1e-10, rtol=0)
        spec_a = SPEC(sigma_x=3.0, sigma_y=4.0, rff_dim=200, random_state=4, n_modes=3).solve(whole)
        spec_b = SPEC(sigma_x=3.0, sigma_y=4.0, rff_dim=200, random_state=4, n_modes=3).solve(other)
        np.testing.assert_allclose(spec_a.eigenvalues_, spec_b.eigenvalues_, atol=1e-10, rtol=0)


def test_partial_fit_equals_fit(data):
    X, Y = data
    kw = dict(sigma_x=3.0, sigma_y=4.0, rff_dim=300, n_modes=3, dtype="float64")
    full = SPEC(**kw).fit(X, Y)
    streamed = SPEC(**kw)
    for a in range(0, 700, 97):
        streamed.partial_fit(X[a : a + 97], Y[a : a + 97])
    streamed.finalize()
    np.testing.assert_allclose(streamed.eigenvalues_, full.eigenvalues_, atol=1e-10, rtol=0)


def test_permuting_samples_permutes_scores(data):
    X, Y = data
    perm = np.random.default_rng(0).permutation(X.shape[0])
    kw = dict(sigma_x=3.0, sigma_y=4.0, rff_dim=300, n_modes=3, dtype="float64")
    a = SPEC(**kw).fit(X, Y)
    b = SPEC(**kw).fit(X[perm], Y[perm])
    np.testing.assert_allclose(b.eigenvalues_, a.eigenvalues_, atol=1e-10, rtol=0)
    np.testing.assert_allclose(b.transform(X[perm], Y[perm]), a.transform(X, Y)[perm], atol=1e-8)


def test_same_seed_is_bitwise_reproducible_and_seed_matters(data):
    X, Y = data
    a = SPEC(rff_dim=300, n_modes=3, random_state=9).fit(X, Y)
    b = SPEC(rff_dim=300, n_modes=3, random_state=9).fit(X, Y)
    c = SPEC(rff_dim=300, n_modes=3, random_state=10).fit(X, Y)
    assert a.eigenvalues_.tobytes() == b.eigenvalues_.tobytes()
    assert a.eigenvalues_.tobytes() != c.eigenvalues_.tobytes()


def test_chunk_rows_does_not_change_the_result(data):
    X, Y = data
    kw = dict(rff_dim=200, n_modes=2, dtype="float64")
    a = SPEC(chunk_rows=64, **kw).fit(X, Y)
    b = SPEC(chunk_rows=8192, **kw).fit(X, Y)
    np.testing.assert_allclose(a.eigenvalues_, b.eigenvalues_, atol=1e-10, rtol=0)


def test_torch_backend_matches_numpy(data):
    torch = pytest.importorskip("torch")
    X, Y = data
    fx, fy = GaussianRFF(3.0, 150, 0).fit(X), GaussianRFF(4.0, 150, 0).fit(Y)
    ref = GramAccumulator(fx, fy, dtype="float64").update(X, Y).state()
    got = GramAccumulator(fx, fy, dtype="float64", backend="torch", device="cpu", block_rows=100)
    got = got.update(X, Y).state()
    np.testing.assert_allclose(got.gram_sum, ref.gram_sum, atol=1e-10, rtol=0)
    assert torch.get_default_dtype() == torch.float32  # nothing global was changed


def test_lanczos_and_eigh_agree(data):
    X, Y = data
    kw = dict(sigma_x=3.0, sigma_y=4.0, rff_dim=700, n_modes=4, dtype="float64")
    a = SPEC(solver="eigh", **kw).fit(X, Y)
    b = SPEC(solver="lanczos", **kw).fit(X, Y)
    assert b.solver_ == "lanczos"
    np.testing.assert_allclose(a.eigenvalues_, b.eigenvalues_, atol=1e-10, rtol=0)
    np.testing.assert_allclose(a.transform(X, Y), b.transform(X, Y), atol=1e-6)


def test_sign_convention_and_members(data):
    X, Y = data
    spec = SPEC(rff_dim=300, n_modes=2).fit(X, Y)
    scores = spec.transform(X, Y)
    extreme = scores[np.abs(scores).argmax(axis=0), np.arange(scores.shape[1])]
    assert np.all(extreme > 0)
    members = spec.members(scores, 10)
    assert members.shape == (4, 10)
    for j in range(4):
        assert np.all(np.diff(scores[members[j], j]) <= 0)
        assert scores[members[j], j].min() >= np.sort(scores[:, j])[-10]


def test_transform_is_row_wise(data):
    """The signs are fixed at fit time, so scoring a subset gives those rows of the whole."""
    X, Y = data
    spec = SPEC(rff_dim=300, n_modes=3, dtype="float64").fit(X, Y)
    whole = spec.transform(X, Y)
    for rows in (np.arange(10), np.arange(350, 700), np.array([3, 600, 41])):
        np.testing.assert_allclose(spec.transform(X[rows], Y[rows]), whole[rows], atol=1e-12)
    extreme = whole[np.abs(whole).argmax(axis=0), np.arange(whole.shape[1])]
    assert np.all(extreme > 0)
    np.testing.assert_allclose(
        SPEC(rff_dim=300, n_modes=3, dtype="float64").fit_transform(X, Y), whole, atol=1e-12
    )


def test_streamed_signs_equal_the_signs_of_fit(data):
    X, Y = data
    kw = dict(sigma_x=3.0, sigma_y=4.0, rff_dim=300, n_modes=3, dtype="float64")
    full = SPEC(**kw).fit(X, Y)
    streamed = SPEC(**kw)
    for a in range(0, 700, 97):
        streamed.partial_fit(X[a : a + 97], Y[a : a + 97])
    streamed.finalize()
    with pytest.raises(ValueError, match="signs are not fixed yet; call fit_signs"):
        streamed.transform(X, Y)
    for a in range(0, 700, 97):
        streamed.partial_fit_signs(X[a : a + 97], Y[a : a + 97])
    # the solver's raw signs may differ (another summation order); the convention may not
    np.testing.assert_allclose(
        streamed.transform(X[:20], Y[:20]), full.transform(X[:20], Y[:20]), atol=1e-8
    )
