"""The differentiable mini-batch SPEC-diff: value against exact eigenvalues, gradients against
finite differences, the left/right eigenvector identity, warm starts and bad input."""

import numpy as np
import pytest
import torch

from speclens.spec import exact_modes, planted_pair
from speclens.spec.align import (
    COLD_START_FACTOR,
    SpecDiffLoss,
    features,
    spec_diff_loss,
    unit_frequencies,
)

pytestmark = pytest.mark.usefixtures("torch_one_thread")

SIGMAS = {"sigma_x": 2.0, "sigma_y": 2.5}


@pytest.fixture(scope="module")
def batch():
    p = planted_pair(n=120, dx=6, dy=8, group_size=25, random_state=1)
    return torch.tensor(p.X), torch.tensor(p.Y)


def _ends(evals):
    top, bottom = float(evals.max()), float(evals.min())
    return {"x_over_y": top, "y_over_x": -bottom, "max": max(top, -bottom)}


@pytest.mark.parametrize("kernel", ["cosine", "gaussian"])
@pytest.mark.parametrize("which", ["x_over_y", "y_over_x", "max"])
def test_exact_method_equals_exact_modes(batch, kernel, which):
    x, y = batch
    loss, _ = spec_diff_loss(x, y, kernel, kernel, which=which, method="exact", eta=1.3, **SIGMAS)
    evals, _ = exact_modes(x.numpy(), y.numpy(), kernel, kernel, eta=1.3, **SIGMAS)
    assert float(loss) == pytest.approx(_ends(evals)[which], abs=1e-10)


@pytest.mark.parametrize("kernel", ["cosine", "gaussian"])
@pytest.mark.parametrize("which", ["x_over_y", "y_over_x", "max"])
def test_power_method_equals_eigenvalue_of_its_features(batch, kernel, which):
    """Power iteration gives the exact eigenvalue of the batch kernel its features define
    (for cosine that kernel is exact; for Gaussian it is the random-feature kernel)."""
    x, y = batch
    loss, state = spec_diff_loss(
        x,
        y,
        kernel,
        kernel,
        which=which,
        method="power",
        eta=1.3,
        n_iter=5000,
        tol=1e-11,
        rff_dim=300,
        **SIGMAS,
    )
    ox, oy = (torch.from_numpy(unit_frequencies(a.shape[1], 300)) for a in (x, y))
    px, py = features(x, kernel, 2.0, ox), features(y, kernel, 2.5, oy)
    lam = (px @ px.T - 1.3 * py @ py.T) / x.shape[0]
    assert float(loss) == pytest.approx(_ends(torch.linalg.eigvalsh(lam))[which], abs=1e-9)
    assert max(state.residuals.values()) < 1e-10


def test_power_close_to_exact_kernel_for_gaussian(batch):
    x, y = batch
    exact, _ = spec_diff_loss(x, y, method="exact", which="max", **SIGMAS)
    power, _ = spec_diff_loss(
        x, y, method="power", which="max", rff_dim=1000, n_iter=3000, tol=1e-6, **SIGMAS
    )
    assert float(power) == pytest.approx(float(exact), abs=0.02)


def test_left_eigenvector_is_s_times_right(batch):
    """u = S w is the left eigenvector of A = S Psi^T Psi / b, so one iteration gives both."""
    x, y = batch
    _, state = spec_diff_loss(x, y, "cosine", "cosine", which="x_over_y", n_iter=5000, tol=1e-12)
    psi = torch.cat([features(x, "cosine", None, None), features(y, "cosine", None, None)], 1)
    s = torch.cat([torch.ones(x.shape[1]), -torch.ones(y.shape[1])]).double()
    a = s[:, None] * (psi.T @ psi) / x.shape[0]
    w, lam = state.w_top, state.eigenvalues["top"]
    u = s * w
    torch.testing.assert_close(a @ w, lam * w, atol=1e-9, rtol=0)
    torch.testing.assert_close(u @ a, lam * u, atol=1e-9, rtol=0)


@pytest.mark.parametrize("method", ["exact", "power"])
@pytest.mark.parametrize("kernel", ["cosine", "gaussian"])
@pytest.mark.parametrize("sigma", [1.5, None])
def test_gradient_matches_finite_differences(method, kernel, sigma):
    """float64 gradcheck (fast mode: random directional derivatives) of both ends; the power
    method is run to convergence at every evaluation, where its gradient is exact."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(10, 3, dtype=torch.float64, generator=g, requires_grad=True)
    y = torch.randn(10, 4, dtype=torch.float64, generator=g, requires_grad=True)
    for which in ("x_over_y", "y_over_x"):

        def f(a, b, which=which):
            return spec_diff_loss(
                a,
                b,
                kernel,
                kernel,
                sigma_x=sigma,
                sigma_y=sigma,
                which=which,
                method=method,
                n_iter=20000,
                tol=1e-12,
                rff_dim=32,
            )[0]

        assert torch.autograd.gradcheck(f, (x, y), eps=1e-6, atol=1e-5, rtol=1e-4, fast_mode=True)


def test_batch_bandwidth_makes_loss_scale_invariant(batch):
    x, y = batch
    a, _ = spec_diff_loss(x, y, method="exact", sigma_y=2.5)
    b, _ = spec_diff_loss(7.0 * x, y, method="exact", sigma_y=2.5)
    assert float(a) == pytest.approx(float(b), rel=1e-10)


def test_warm_start_needs_fewer_iterations(batch):
    x, y = batch
    loss_fn = SpecDiffLoss(which="max", n_iter=5000, tol=1e-7, rff_dim=100, **SIGMAS)
    loss_fn(x[:100], y[:100])
    cold = dict(loss_fn.state.iterations)
    loss_fn(x[20:], y[20:])  # an overlapping batch: the feature-space vectors carry over
    assert sum(loss_fn.state.iterations.values()) < 0.8 * sum(cold.values())
    loss_fn(x[20:], y[20:])  # the same batch again: already converged
    assert loss_fn.state.iterations == {"top": 1, "bottom": 1}


def test_cold_start_gets_a_longer_budget(batch):
    """The first call has no warm vector: it may run COLD_START_FACTOR x n_iter iterations, so
    a small per-step budget (as the fine-tune uses) still starts from a converged value."""
    x, y = batch
    loose, state = spec_diff_loss(
        x, y, which="y_over_x", n_iter=20, tol=1e-8, rff_dim=100, **SIGMAS
    )
    tight, _ = spec_diff_loss(
        x, y, which="y_over_x", n_iter=20000, tol=1e-12, rff_dim=100, **SIGMAS
    )
    assert 20 < state.iterations["bottom"] <= COLD_START_FACTOR * 20
    assert float(loose) == pytest.approx(float(tight), rel=1e-6)


def test_identical_embeddings_give_zero(batch):
    x, _ = batch
    for method in ("exact", "power"):
        loss, _ = spec_diff_loss(x, x.clone(), which="max", method=method, sigma_x=2.0, sigma_y=2.0)
        assert abs(float(loss)) < 1e-10


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"which": "both"}, "which must be one of"),
        ({"method": "lanczos"}, "method must be one of"),
        ({"kernel_x": "rbf"}, "kernel_x must be one of"),
        ({"eta": 0}, "eta must be a positive number"),
    ],
)
def test_bad_arguments(batch, kwargs, match):
    x, y = batch
    with pytest.raises(ValueError, match=match):
        spec_diff_loss(x, y, **kwargs)


def test_mismatched_rows_and_arrays():
    with pytest.raises(ValueError, match="same batch"):
        spec_diff_loss(torch.ones(4, 2), torch.ones(5, 2))
    with pytest.raises(ValueError, match="torch tensors"):
        spec_diff_loss(np.ones((4, 2)), np.ones((4, 2)))
