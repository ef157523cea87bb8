"""Differentiable mini-batch SPEC-diff in torch: the loss that SPEC-align minimises.

For a batch of ``b`` paired rows ``x`` (b x dx) and ``y`` (b x dy) the batch difference
kernel is ``Lambda_b = K_X / b - eta K_Y / b``. Which eigenvalue is the loss (``which``):

* ``'x_over_y'``: ``lambda_max(Lambda_b)``, groups X ties together and Y does not (the same
  sign convention as ``SPEC.spec_diff_['x_over_y']``);
* ``'y_over_x'``: ``-lambda_min(Lambda_b)``, groups Y ties together and X does not. Training
  X so that the reference Y's clusters are also captured in X lowers *this* side;
* ``'max'``: the larger of the two, i.e. the magnitude of the dominant eigenvalue.

Two methods give the value and its gradient with respect to ``x`` and ``y``:

``method='power'`` (the paper's scalable form). With features ``Psi = [Phi_X, sqrt(eta) Phi_Y]``
(b x m, m = m_x + m_y; cosine: normalised rows; Gaussian: random Fourier features with fixed
unit frequencies ``omega`` divided by sigma) and ``S = diag(I, -I)``, ``Lambda_b = Psi S Psi^T / b``
has the nonzero eigenvalues of the non-symmetric m x m matrix ``A = S Psi^T Psi / b``. Power
iteration runs on ``A + c I`` (top end) or ``-A + c I`` (bottom end); the shift ``c`` is the
trace bound ``eta tr(K_Y) / b`` (resp. ``tr(K_X) / b``), which is at least the magnitude of the
opposite end, so the shifted matrix's dominant eigenvalue is the wanted end and not the
larger-magnitude eigenvalue of the other sign. Its right eigenvector ``w`` lives in feature
space, so it carries over to the next batch (warm start through ``state``). The left
eigenvector is ``u = S w`` exactly (``A^T = G S`` and ``G S (S w) = G w = S (A w)``), so one
iteration gives both. The eigenvalue's gradient ``u^T dA w / (u^T w)`` equals
``2 v^T dPsi S Psi^T v / (b |v|^2)`` with ``v = Psi w``: the loss is computed as the Rayleigh
quotient of the b-dimensional eigenvector ``v`` (held constant) with ``Psi`` differentiable,
which gives that gradient at convergence and a lower bound of the value before it.

``method='exact'``: the b x b symmetric ``Lambda_b`` from the exact kernels (no random
features) and ``torch.linalg.eigvalsh``; its backward is ``v v^T`` for a simple eigenvalue.
Cost O(b^3): for small batches and as the reference.

Bandwidths: a float is fixed; ``None`` is ``sigma_scale`` times the median pairwise distance
*of the batch*, differentiable, so the loss is invariant to rescaling that embedding (an
adapter cannot lower it by shrinking or inflating its output).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from speclens.spec.features import DEFAULT_SIGMA_SCALE, GaussianRFF
from speclens.spec.validation import METHODS, WHICH, check_int, check_kernel, check_positive

#: a cold start (no warm vector in ``state``) may run this many times ``n_iter`` iterations
COLD_START_FACTOR = 10


def batch_sigma(a: torch.Tensor, scale: float = DEFAULT_SIGMA_SCALE) -> torch.Tensor:
    """``scale`` times the median pairwise Euclidean distance of the rows of ``a`` (differentiable)."""
    d2 = pairwise_sq_dists(a)
    iu = torch.triu_indices(a.shape[0], a.shape[0], offset=1, device=a.device)
    dist = d2[iu[0], iu[1]].clamp_min(1e-30).sqrt()
    med = torch.quantile(dist, 0.5)
    if not bool(med > 0):
        raise ValueError(
            "the batch rows are all identical, so the median distance is 0; pass sigma explicitly."
        )
    return scale * med


def pairwise_sq_dists(a: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances between all rows of ``a`` (b x b, clamped at 0)."""
    sq = (a * a).sum(dim=1)
    return (sq[:, None] + sq[None, :] - 2.0 * (a @ a.T)).clamp_min(0.0)


def unit_frequencies(d: int, rff_dim: int, random_state: int | None = 0) -> np.ndarray:
    """(d x rff_dim) N(0, 1) draws, the same numbers as ``GaussianRFF(sigma, rff_dim,
    random_state).fit(d).frequencies_ * sigma`` (common random numbers with ``SPEC``)."""
    return np.random.default_rng(random_state).standard_normal((int(d), int(rff_dim)))


def features(a: torch.Tensor, kernel: str, sigma, omega: torch.Tensor | None) -> torch.Tensor:
    """Differentiable feature map: normalised rows (cosine) or ``[cos, sin](a omega / sigma) / sqrt(D)``."""
    if kernel == "cosine":
        norms = torch.linalg.vector_norm(a, dim=1, keepdim=True)
        if bool((norms == 0).any()):
            raise ValueError("a row has zero norm, where the cosine kernel is undefined; drop it.")
        return a / norms
    proj = (a @ omega) / sigma
    return torch.cat([torch.cos(proj), torch.sin(proj)], dim=1) / math.sqrt(omega.shape[1])


def exact_kernel(a: torch.Tensor, kernel: str, sigma) -> torch.Tensor:
    """The b x b kernel matrix of the rows of ``a`` (no random features)."""
    if kernel == "cosine":
        u = features(a, "cosine", None, None)
        return u @ u.T
    return torch.exp(-pairwise_sq_dists(a) / (2.0 * sigma**2))


@dataclass
class SpecDiffState:
    """What one call hands to the next: warm-start vectors, frequencies and diagnostics.

    ``w_top`` / ``w_bottom``: right eigenvectors (feature space, length m) of the top and
    bottom ends; ``omega_x`` / ``omega_y``: unit frequencies (Gaussian kernels);
    ``eigenvalues``: the last batch's ``{'top': ..., 'bottom': ...}``; ``iterations`` and
    ``residuals``: power iterations used and final relative residual
    ``|A w - lam w| / (|lam| + shift)`` (``w`` a unit vector).
    """

    w_top: torch.Tensor | None = None
    w_bottom: torch.Tensor | None = None
    omega_x: torch.Tensor | None = None
    omega_y: torch.Tensor | None = None
    eigenvalues: dict = field(default_factory=dict)
    iterations: dict = field(default_factory=dict)
    residuals: dict = field(default_factory=dict)


def _omega(state_omega, a, kernel, rff_dim, random_state, given):
    if kernel == "cosine":
        return None
    if given is not None:
        om = torch.as_tensor(np.asarray(given) if not torch.is_tensor(given) else given)
    elif state_omega is not None:
        om = state_omega
    else:
        om = torch.from_numpy(unit_frequencies(a.shape[1], rff_dim, random_state))
    if om.shape[0] != a.shape[1]:
        raise ValueError(
            f"frequencies are for {om.shape[0]} input features but the embedding has "
            f"{a.shape[1]}; use the same embedding width or new frequencies."
        )
    return om.to(device=a.device, dtype=a.dtype)


def _resolve_rff(rff, sigma):
    """A fitted ``GaussianRFF`` (or its state) -> (unit frequencies, sigma)."""
    if rff is None:
        return None, sigma
    fmap = GaussianRFF.from_state(rff) if isinstance(rff, dict) else rff
    return fmap.frequencies_ * fmap.sigma, (fmap.sigma if sigma is None else sigma)


def _start_vector(m, like, random_state, end):
    gen = torch.Generator().manual_seed((0 if random_state is None else int(random_state)) + end)
    w = torch.randn(m, generator=gen, dtype=torch.float64)
    return (w / w.norm()).to(device=like.device, dtype=like.dtype)


def _power_end(psi_d, m_x, sign, shift, w, n_iter, tol):
    """Shifted power iteration on ``sign * A + shift I`` (``A = S Psi^T Psi / b``); returns
    the eigenvector ``w``, the eigenvalue of ``A``, iterations used and the relative residual
    (relative to ``|lam| + shift``, the scale of the shifted matrix, so a zero eigenvalue converges)."""
    b = psi_d.shape[0]
    s = torch.ones(psi_d.shape[1], dtype=psi_d.dtype, device=psi_d.device)
    s[m_x:] = -1.0
    lam, resid = 0.0, float("inf")
    for it in range(1, n_iter + 1):
        t = psi_d @ w
        z = s * (psi_d.T @ t) / b  # A w
        tt = float(t @ t)
        lam = float(b * (z @ (s * z)) / tt) if tt > 0 else 0.0  # Rayleigh quotient of v = Psi w
        resid = float(torch.linalg.vector_norm(z - lam * w)) / (abs(lam) + shift)
        if resid < tol:
            return w, lam, it, resid
        w = sign * z + shift * w
        w = w / torch.linalg.vector_norm(w)
    return w, lam, n_iter, resid


def _rayleigh(psi, psi_d, w, m_x):
    """``v^T Psi S Psi^T v / (b |v|^2)`` with ``v = Psi_detached w`` constant, Psi differentiable."""
    v = psi_d @ w
    p = psi.T @ v
    return ((p[:m_x] ** 2).sum() - (p[m_x:] ** 2).sum()) / (psi.shape[0] * (v @ v))


def spec_diff_loss(
    x: torch.Tensor,
    y: torch.Tensor,
    kernel_x: str = "gaussian",
    kernel_y: str = "gaussian",
    sigma_x=None,
    sigma_y=None,
    eta: float = 1.0,
    which: str = "x_over_y",
    method: str = "power",
    n_iter: int = 100,
    tol: float = 1e-6,
    state: SpecDiffState | None = None,
    rff_dim: int = 512,
    random_state: int | None = 0,
    sigma_scale: float = DEFAULT_SIGMA_SCALE,
    rff_x=None,
    rff_y=None,
) -> tuple[torch.Tensor, SpecDiffState]:
    """Mini-batch SPEC-diff of ``x`` against ``y`` and the state for the next batch.

    ``x``, ``y``: (b, dx) and (b, dy) tensors of the same samples (gradients flow to both).
    ``which``: 'x_over_y' (largest eigenvalue), 'y_over_x' (minus the smallest) or 'max'.
    ``method``: 'power' (random features, warm-started shifted power iteration, at most
    ``n_iter`` steps per end, :data:`COLD_START_FACTOR` times more on a cold start, until the
    relative residual is below ``tol``) or 'exact'
    (b x b eigvalsh of the exact kernels). ``sigma_*``: float, or None for the batch
    heuristic. ``rff_x`` / ``rff_y``: optional fitted ``GaussianRFF`` (or its ``get_state()``)
    whose frequencies and sigma to use; otherwise unit frequencies are drawn from
    ``random_state`` (shared by X and Y, as in ``SPEC``) with ``rff_dim`` columns.
    Returns ``(loss, state)``; pass ``state`` back on the next call to warm-start.
    """
    _check_args(x, y, kernel_x, kernel_y, eta, which, method, n_iter)
    state = SpecDiffState() if state is None else state
    given_x, sigma_x = _resolve_rff(rff_x, sigma_x)
    given_y, sigma_y = _resolve_rff(rff_y, sigma_y)
    sx = _sigma(x, kernel_x, sigma_x, sigma_scale)
    sy = _sigma(y, kernel_y, sigma_y, sigma_scale)
    b = x.shape[0]
    if method == "exact":
        lam = (exact_kernel(x, kernel_x, sx) - eta * exact_kernel(y, kernel_y, sy)) / b
        evals = torch.linalg.eigvalsh((lam + lam.T) / 2.0)
        top, bottom = evals[-1], evals[0]
    else:
        state.omega_x = _omega(state.omega_x, x, kernel_x, rff_dim, random_state, given_x)
        state.omega_y = _omega(state.omega_y, y, kernel_y, rff_dim, random_state, given_y)
        phi_x = features(x, kernel_x, sx, state.omega_x)
        phi_y = features(y, kernel_y, sy, state.omega_y) * math.sqrt(eta)
        psi = torch.cat([phi_x, phi_y], dim=1)
        top, bottom = _power(psi, phi_x.shape[1], which, n_iter, tol, state, random_state)
    state.eigenvalues = {
        k: float(v.detach()) for k, v in (("top", top), ("bottom", bottom)) if v is not None
    }
    if which == "x_over_y":
        return top, state
    if which == "y_over_x":
        return -bottom, state
    return torch.maximum(top, -bottom), state


def _power(psi, m_x, which, n_iter, tol, state, random_state):
    psi_d = psi.detach()
    b, m = psi_d.shape
    out = {"top": None, "bottom": None}
    for end, sign, attr in (("top", 1.0, "w_top"), ("bottom", -1.0, "w_bottom")):
        if (end == "top" and which == "y_over_x") or (end == "bottom" and which == "x_over_y"):
            continue
        # trace bound on the magnitude of the opposite end: eta tr(K_Y)/b or tr(K_X)/b
        block = psi_d[:, m_x:] if end == "top" else psi_d[:, :m_x]
        shift = float((block * block).sum()) / b
        w, budget = getattr(state, attr), n_iter
        if w is None or w.shape[0] != m:  # cold start: the trace-bound shift converges slowly
            w = _start_vector(m, psi_d, random_state, 0 if end == "top" else 1)
            budget = COLD_START_FACTOR * n_iter
        w = w.to(device=psi_d.device, dtype=psi_d.dtype)
        w, _, its, resid = _power_end(psi_d, m_x, sign, shift, w, budget, tol)
        setattr(state, attr, w)
        state.iterations[end] = its
        state.residuals[end] = resid
        out[end] = _rayleigh(psi, psi_d, w, m_x)
    return out["top"], out["bottom"]


def _sigma(a, kernel, sigma, scale):
    if kernel == "cosine":
        return None
    if sigma is None:
        return batch_sigma(a, scale)
    return check_positive(sigma, "sigma")


def _check_args(x, y, kernel_x, kernel_y, eta, which, method, n_iter):
    if not (torch.is_tensor(x) and torch.is_tensor(y)):
        raise ValueError("x and y must be torch tensors; wrap arrays with torch.as_tensor.")
    if x.ndim != 2 or y.ndim != 2:
        raise ValueError(
            f"x and y must be 2-D (b, d), got shapes {tuple(x.shape)}, {tuple(y.shape)}."
        )
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"x has {x.shape[0]} rows but y has {y.shape[0]}; pass embeddings of the same batch."
        )
    if x.shape[0] < 2:
        raise ValueError("a batch needs at least 2 rows.")
    check_kernel(kernel_x, "kernel_x")
    check_kernel(kernel_y, "kernel_y")
    check_positive(eta, "eta")
    check_int(n_iter, "n_iter")
    if which not in WHICH:
        raise ValueError(f"which must be one of {WHICH}, got {which!r}.")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}.")


class SpecDiffLoss:
    """``spec_diff_loss`` with its configuration and warm-start state kept between calls.

    ``loss = SpecDiffLoss(which='y_over_x', sigma_y=0.3)(x_batch, y_batch)``; the last
    state is ``.state`` (eigenvalues, iterations, residuals of the last batch).
    """

    def __init__(self, **config):
        self.config = config
        self.state: SpecDiffState | None = None

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        loss, self.state = spec_diff_loss(x, y, state=self.state, **self.config)
        return loss
