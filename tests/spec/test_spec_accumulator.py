"""Property tests of the Gram accumulator and the feature maps."""

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from speclens.spec import (
    Cosine,
    GaussianRFF,
    GramAccumulator,
    GramState,
    feature_map_from_state,
    gram_from_state,
    kernel_matrix,
    merge_states,
)

rows = st.integers(min_value=1, max_value=40)


def _maps(dx=5, dy=3):
    return GaussianRFF(1.5, 32, 0).fit(dx), Cosine().fit(dy)


@settings(max_examples=40, deadline=None)
@given(n=rows, cut=st.floats(0, 1), seed=st.integers(0, 2**16), block=st.integers(1, 50))
def test_split_and_merge_equals_one_pass(n, cut, seed, block):
    rng = np.random.default_rng(seed)
    X, Y = rng.standard_normal((n, 5)), rng.standard_normal((n, 3)) + 0.1
    fx, fy = _maps()
    k = int(cut * n)
    whole = GramAccumulator(fx, fy, dtype="float64", block_rows=block).update(X, Y).state()
    parts = [GramAccumulator(fx, fy, dtype="float64") for _ in range(2)]
    if k:
        parts[0].update(X[:k], Y[:k])
    if k < n:
        parts[1].update(X[k:], Y[k:])
    merged = parts[0].merge(parts[1]).state()
    assert merged.count == whole.count == n
    np.testing.assert_allclose(merged.gram_sum, whole.gram_sum, atol=1e-12, rtol=0)
    np.testing.assert_array_equal(merged.gram_sum, merged.gram_sum.T)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**16), n=st.integers(1, 300), block=st.integers(1, 120))
def test_syrk_path_equals_the_general_product(seed, n, block):
    """The SYRK path (one triangle, mirrored when read) against the full general product, in
    float64, over several blocks and after a reload: equal to rounding (both sum the same
    products; the kernels may order them differently), and the state exactly symmetric."""
    rng = np.random.default_rng(seed)
    X, Y = rng.standard_normal((n, 5)), rng.standard_normal((n, 3)) + 0.1
    fx, fy = GaussianRFF(1.5, 40, seed).fit(5), GaussianRFF(2.0, 30, seed + 1).fit(3)
    states = {}
    for product in ("syrk", "gemm"):
        acc = GramAccumulator(fx, fy, dtype="float64", block_rows=block, product=product)
        half = n // 2
        acc.update(X[:half], Y[:half]) if half else None
        acc.load_state(acc.state()).update(X[half:], Y[half:])
        states[product] = acc.state()
    syrk, gemm = states["syrk"].gram_sum, states["gemm"].gram_sum
    np.testing.assert_array_equal(syrk, syrk.T)
    np.testing.assert_allclose(syrk, gemm, rtol=0, atol=1e-10 * max(1.0, np.abs(gemm).max()))
    phi = np.hstack([fx.transform(X), fy.transform(Y)])
    np.testing.assert_allclose(syrk, phi.T @ phi, rtol=0, atol=1e-10 * n)


def test_unknown_product_is_refused_by_name():
    with pytest.raises(ValueError, match="product must be one of"):
        GramAccumulator(*_maps(), product="syr2k")


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**16), sizes=st.lists(st.integers(1, 9), min_size=3, max_size=3))
def test_merge_is_commutative_and_associative(seed, sizes):
    rng = np.random.default_rng(seed)
    states = [GramState((lambda a: a @ a.T)(rng.standard_normal((6, n))), n, 4) for n in sizes]
    a, b, c = states
    np.testing.assert_array_equal(merge_states(a, b).gram_sum, merge_states(b, a).gram_sum)
    left = merge_states(merge_states(a, b), c)
    right = merge_states(a, merge_states(b, c))
    np.testing.assert_allclose(left.gram_sum, right.gram_sum, atol=1e-12, rtol=0)
    assert left.count == right.count == sum(sizes)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**16), eta=st.floats(0.1, 5.0))
def test_gram_is_psi_t_psi_over_n(seed, eta):
    rng = np.random.default_rng(seed)
    X, Y = rng.standard_normal((17, 5)), rng.standard_normal((17, 3)) + 0.1
    fx, fy = _maps()
    G = gram_from_state(GramAccumulator(fx, fy, dtype="float64").update(X, Y).state(), eta)
    psi = np.hstack([fx.transform(X), np.sqrt(eta) * fy.transform(Y)])
    np.testing.assert_allclose(G, psi.T @ psi / 17, atol=1e-12, rtol=0)


def test_state_round_trips_through_plain_arrays():
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((30, 5)), rng.standard_normal((30, 3))
    fx, fy = _maps()
    acc = GramAccumulator(fx, fy).update(X, Y)
    arrays = acc.to_arrays()
    assert set(arrays) == {"gram_sum", "count", "m_x", "identical"}
    assert arrays["gram_sum"].dtype == np.float64
    back = GramAccumulator(fx, fy).load_state(GramAccumulator.state_from_arrays(arrays))
    np.testing.assert_array_equal(back.state().gram_sum, acc.state().gram_sum)
    assert back.state().identical is acc.state().identical is False


def test_rff_self_kernel_is_exactly_one_and_approximates_gaussian():
    rng = np.random.default_rng(1)
    A = rng.standard_normal((50, 6))
    fmap = GaussianRFF(2.0, 20000, 3).fit(A)
    phi = fmap.transform(A.astype(np.float64))
    np.testing.assert_allclose(np.einsum("ij,ij->i", phi, phi), 1.0, atol=1e-12)
    approx = phi @ phi.T
    assert np.abs(approx - kernel_matrix(A, "gaussian", 2.0)).max() < 0.05


def test_frequencies_reproduce_bit_for_bit_in_another_process():
    fmap = GaussianRFF(1.7, 64, 123).fit(9)
    x = np.linspace(-1, 1, 90, dtype=np.float32).reshape(10, 9)
    digest = fmap.transform(x).tobytes().hex()
    # from the saved state (as a worker would receive it) ...
    clone = feature_map_from_state(fmap.get_state())
    assert clone.transform(x).tobytes().hex() == digest
    # ... and from the seed alone, in a fresh interpreter
    code = (
        "import numpy as np; from speclens.spec import GaussianRFF;"
        "x = np.linspace(-1, 1, 90, dtype=np.float32).reshape(10, 9);"
        "print(GaussianRFF(1.7, 64, 123).fit(9).transform(x).tobytes().hex())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == digest


def test_features_in_numpy_equal_torchs_within_float32_rounding(monkeypatch):
    """Small blocks skip torch while it is not loaded (its import costs seconds): numpy's cos
    and sin give the same features to a few float32 units."""
    import speclens.spec.features as features

    torch, torch_for = features._torch_or_none(), features.torch_for
    if torch is None:
        pytest.skip("torch is not installed")
    assert torch_for(features.TORCH_WORTH) is torch  # large work always uses torch
    X = np.random.default_rng(4).normal(size=(300, 20)).astype(np.float32)
    rff = features.GaussianRFF(2.0, 256, 0).fit(X)
    monkeypatch.setattr(features, "torch_for", lambda size: torch)
    with_torch = rff.transform(X)
    monkeypatch.setattr(features, "torch_for", lambda size: None)
    with_numpy = rff.transform(X)
    assert with_numpy.dtype == np.float32
    np.testing.assert_allclose(with_numpy, with_torch, rtol=0, atol=8 * np.finfo(np.float32).eps)
