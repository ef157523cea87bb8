"""Eigensolve of the difference kernel through its small symmetric reduction.

With ``G = Psi^T Psi / n = B^T B`` and ``S = diag(I_mx, -I_my)``, the nonzero eigenvalues of
``Lambda = Psi S Psi^T / n`` are those of the symmetric ``T = B S B^T``. For an eigenvector
``u`` of T, ``w = S B^T u`` satisfies ``S G w = lam w`` and ``v = Psi w / (sqrt(n) |lam|)`` is
the unit eigenvector of Lambda (see docs/design.md, "The mathematics").

``B`` comes from a Cholesky factor of G (backward stable, O(m^3 / 3)); when G is singular
(fewer samples than features, or collinear features) from a rank-revealing pivoted Cholesky. The top-k and bottom-k eigenpairs of T come from
Lanczos (scipy ``eigsh``, seeded start vector) or a full ``eigh``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.sparse.linalg
from scipy.linalg.blas import dtrmm, dtrmv
from scipy.linalg.lapack import dpstrf

SOLVERS = ("auto", "eigh", "lanczos")
#: 'auto' uses the full eigh up to this reduced size and Lanczos above it.
AUTO_EIGH_MAX = 1200
#: The whole spectrum (for each mode's share of the absolute mass) is computed up to this rank
#: (above ``AUTO_EIGH_MAX`` in float32: eigenvalues to about 1e-6 of the largest).
SPECTRUM_MAX = 8192


@dataclass
class Modes:
    """Solved modes: ``eigenvalues`` (top block descending, bottom block ascending) and
    ``directions`` (m x 2k), the vectors ``w`` in the coordinates of ``Psi``."""

    eigenvalues: np.ndarray
    directions: np.ndarray
    rank: int
    factorization: str
    solver: str
    spectrum: np.ndarray  #: every nonzero-rank eigenvalue, descending (empty above SPECTRUM_MAX)

    @classmethod
    def zero(cls, m: int, n_modes: int) -> Modes:
        """The modes of a difference kernel that is exactly zero (identical inputs): every
        eigenvalue 0, no direction, an empty nonzero spectrum."""
        return cls(
            np.zeros(2 * n_modes), np.zeros((m, 2 * n_modes)), 0, "none", "none", np.zeros(0)
        )


def factor_gram(G: np.ndarray, n_samples: int | None = None) -> tuple[np.ndarray, str]:
    """Return ``B`` (r x m) with ``B^T B = G`` and the method used.

    A plain Cholesky factor when G is numerically positive definite; otherwise (fewer samples
    than features, collinear or identical features) LAPACK's rank-revealing pivoted Cholesky,
    which stops once the remaining diagonal drops below ``m * eps * max(diag G)`` and so costs
    O(m^2 r) for rank r.
    """
    m = G.shape[0]
    if n_samples is None or n_samples >= m:
        try:
            L = scipy.linalg.cholesky(G, lower=True, check_finite=False)
            if np.all(np.isfinite(L)) and np.all(np.diag(L) > 0):
                return L.T, "cholesky"
        except np.linalg.LinAlgError:
            pass
    c, piv, rank, info = dpstrf(G, lower=1, tol=-1.0)
    if info < 0:
        raise ValueError(f"pivoted Cholesky rejected the Gram matrix (LAPACK info={info}).")
    B = np.zeros((rank, m))
    B[:, piv - 1] = np.tril(c[:, :rank]).T
    return B, "pivoted-cholesky"


def solve_modes(
    G: np.ndarray,
    m_x: int,
    n_modes: int,
    solver: str = "auto",
    random_state: int | None = 0,
    n_samples: int | None = None,
    spectrum: bool = True,
    tol: float = 0.0,
) -> Modes:
    """Top-``n_modes`` and bottom-``n_modes`` eigenpairs of the difference kernel from its Gram
    (``spectrum=False``: skip the whole spectrum, e.g. for the halves of a cross-fit; ``tol``:
    the Lanczos run's relative residual, 0 for machine precision)."""
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}.")
    B, how = factor_gram(G, n_samples)
    r = B.shape[0]
    limit = r if n_samples is None else min(r, n_samples)
    if 2 * n_modes > limit:
        raise ValueError(
            f"n_modes={n_modes} asks for {2 * n_modes} eigenpairs but the difference kernel has rank "
            f"at most {limit} (n_samples={n_samples}, feature rank {r}); use n_modes <= {limit // 2}."
        )
    s = side_signs(G.shape[0], m_x)
    # without the whole spectrum, 'auto' takes Lanczos at any size: both ends are all it needs
    small = spectrum and r <= AUTO_EIGH_MAX
    use_eigh = solver == "eigh" or (solver == "auto" and small) or 2 * n_modes + 1 >= r
    whole = np.empty(0)
    if use_eigh or (spectrum and r <= SPECTRUM_MAX):
        T = _reduced(B, s, how == "cholesky")
    else:  # T = B S B^T as an operator: two products of B per step instead of forming T
        T = scipy.sparse.linalg.LinearOperator(
            (r, r), matvec=_product(B, s, how == "cholesky"), dtype=np.float64
        )
    if use_eigh:
        evals, U = scipy.linalg.eigh(T, check_finite=False)
        whole = evals[::-1]
        top, bottom = np.arange(r - 1, r - 1 - n_modes, -1), np.arange(n_modes)
        eigenvalues = np.concatenate([evals[top], evals[bottom]])
        U = np.concatenate([U[:, top], U[:, bottom]], axis=1)
        used = "eigh"
    else:
        eigenvalues, U = _lanczos_ends(T, n_modes, random_state, tol)
        used = "lanczos"
        if isinstance(T, np.ndarray):  # mass shares: above AUTO_EIGH_MAX in float32 (2x faster)
            big = T.astype(np.float32) if r > AUTO_EIGH_MAX else T
            whole = scipy.linalg.eigvalsh(big, check_finite=False)[::-1].astype(np.float64)
    directions = s[:, None] * (B.T @ U)
    return Modes(eigenvalues, directions, r, how, used, whole if spectrum else np.empty(0))


def side_signs(m: int, m_x: int, y: float = -1.0) -> np.ndarray:
    """The diagonal of ``S`` over the feature columns ``[phi_X, phi_Y]``: 1 on X's ``m_x``
    columns, ``y`` on Y's (-1 for the difference kernel; -eta on Y's unscaled features)."""
    s = np.ones(m)
    s[m_x:] = y
    return s


def _reduced(B: np.ndarray, s: np.ndarray, triangular: bool) -> np.ndarray:
    """``T = B S B^T`` (symmetrised); with B the upper-triangular Cholesky factor, by a BLAS
    triangular product on LAPACK's lower factor (half the flops of the general product)."""
    if triangular:
        L = np.asfortranarray(B.T)  # a view: B is LAPACK's lower factor transposed
        T = dtrmm(1.0, L, np.multiply(B, s, order="F"), side=1, lower=1, overwrite_b=1)
    else:
        T = (B * s) @ B.T
    return (T + T.T) / 2.0


def _product(B: np.ndarray, s: np.ndarray, triangular: bool):
    """``v -> B S B^T v``; with B the upper-triangular Cholesky factor, by BLAS triangular
    products, which read half of B (the products are memory-bound: about 2x faster)."""
    if not triangular:
        return lambda v: B @ (s * (B.T @ v))
    L = np.asfortranarray(B.T)  # B is LAPACK's lower factor transposed: a view, no copy
    return lambda v: dtrmv(L, s * dtrmv(L, v, lower=1, trans=0), lower=1, trans=1)


def _lanczos_ends(T, k: int, random_state, tol: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """The k largest and k smallest eigenpairs (largest first, then smallest first) in one
    Lanczos run for both ends (ARPACK's 'BE': about half the products of two runs); ``tol``:
    ARPACK's relative residual (0: machine precision)."""
    rng = np.random.default_rng(random_state)
    v0 = rng.standard_normal(T.shape[0])
    ncv = min(T.shape[0], max(4 * k + 1, 32))
    values, vectors = scipy.sparse.linalg.eigsh(T, k=2 * k, which="BE", v0=v0, ncv=ncv, tol=tol)
    order = np.argsort(values)
    top, bottom = order[::-1][:k], order[:k]
    pick = np.concatenate([top, bottom])
    return values[pick], vectors[:, pick]


def symmetric_ends(K: np.ndarray, n_modes: int, seed: int = 0) -> np.ndarray:
    """The ``n_modes`` largest (descending) and smallest (ascending) eigenvalues of a symmetric
    matrix: the order of a run's modes."""
    n = K.shape[0]
    if 4 * n_modes + 1 >= n or n <= 600:
        values = np.linalg.eigvalsh(K)
        return np.concatenate([values[::-1][:n_modes], values[:n_modes]])
    values, _ = _lanczos_ends(K, n_modes, seed, 1e-10)
    return values


def score_weights(
    directions: np.ndarray, eigenvalues: np.ndarray, m_x: int, eta: float, n_samples: int
) -> np.ndarray:
    """Weights ``M`` (m x 2k) with ``scores = phi @ M`` for unscaled ``phi = [phi_X, phi_Y]``.

    ``v_i = psi_i . w / (sqrt(n) |lam|)`` and ``psi = phi * diag(1, sqrt(eta))``; the constants
    are folded into M so the scoring pass is one GEMM per chunk.
    """
    d = np.ones(directions.shape[0])
    d[m_x:] = np.sqrt(eta)
    mag = np.abs(eigenvalues)
    safe = np.where(mag > 0, mag, np.inf)  # a zero eigenvalue has no defined direction: score 0
    return d[:, None] * directions / (np.sqrt(n_samples) * safe[None, :])
