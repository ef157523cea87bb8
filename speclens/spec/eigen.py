"""Eigensolve of the difference kernel through its small symmetric reduction.

With ``G = Psi^T Psi / n = B^T B`` and ``S = diag(I_mx, -I_my)``, the nonzero eigenvalues of
``Lambda = Psi S Psi^T / n`` are those of the symmetric ``T = B S B^T``. For an eigenvector
``u`` of T, ``w = S B^T u`` satisfies ``S G w = lam w`` and ``v = Psi w / (sqrt(n) |lam|)`` is
the unit eigenvector of Lambda (see docs/design.md, "The mathematics").

``B`` comes from a Cholesky factor of G (backward stable, O(m^3 / 3)); when G is singular
(fewer samples than features, or collinear features) from a rank-revealing pivoted Cholesky.
With the Cholesky factor, T is formed by blocks of B (a third of the flops of one triangular
product) and mirrored, so it is exactly symmetric. The top-k and bottom-k eigenpairs of T come
from a full ``eigh`` (small r), from one float32 tridiagonal reduction that also gives the whole
spectrum, each mode's share of the absolute mass, with the wanted pairs refined in float64
(``spec/mixed.py``), or from Lanczos with full reorthogonalisation (seeded start vector; ARPACK
when it has not converged in ``LANCZOS_STEPS`` steps) when no spectrum is wanted.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.sparse.linalg
from scipy.linalg.blas import dsyrk, dtrmm, dtrmv
from scipy.linalg.lapack import dlauum, dpotrf, dpstrf

from speclens.spec.gram_state import GramState, gram_from_state, rows_factor
from speclens.spec.mixed import mixed_ends

SOLVERS = ("auto", "eigh", "lanczos", "mixed")
#: 'auto' uses the full eigh up to this reduced size; above it the float32 reduction refined in
#: float64 ('mixed') when the whole spectrum is wanted, else Lanczos.
AUTO_EIGH_MAX = 1200
#: The whole spectrum (for each mode's share of the absolute mass) is computed up to this rank
#: (above ``AUTO_EIGH_MAX`` in float32: eigenvalues to about 1e-6 of the largest).
SPECTRUM_MAX = 8192
#: Lanczos steps (basis vectors kept) before the solve falls back to ARPACK's restarted run.
LANCZOS_STEPS = 1000
_EPS = np.finfo(np.float64).eps


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
    #: the pivoted factor B (r x m, ``B^T B = G``) of a rank-deficient Gram (None for a full
    #: rank one): the random-feature check reads its sub-blocks' factors off it
    factor: np.ndarray | None = None

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
    B, how = _factor(G, n_samples)
    return (np.triu(B) if how == "cholesky" else B), how


def _factor(G: np.ndarray, n_samples: int | None) -> tuple[np.ndarray, str]:
    """``factor_gram`` without cleaning: a Cholesky ``B`` is LAPACK's upper factor in Fortran
    order whose strict lower triangle still holds G's entries (only the triangular BLAS
    routines, which read the upper triangle, touch it)."""
    m = G.shape[0]
    if n_samples is None or n_samples >= m:
        # G.T is the same symmetric matrix in Fortran order: one copy, no transposition
        U, info = dpotrf(G.T, lower=0, clean=0)
        d = np.diagonal(U)
        if info == 0 and np.all(np.isfinite(d)) and np.all(d > 0):
            return U, "cholesky"
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
    factor: np.ndarray | None = None,
) -> Modes:
    """Top-``n_modes`` and bottom-``n_modes`` eigenpairs of the difference kernel from its Gram
    (``spectrum=False``: skip the whole spectrum, e.g. for the halves of a cross-fit; ``tol``:
    the Lanczos run's relative residual, 0 for machine precision). ``factor``: a ``B`` with
    ``B^T B = G`` already at hand (the scaled feature rows of a state that keeps them; G is
    then not read and may be None)."""
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}.")
    B, how = (factor, "feature-rows") if factor is not None else _factor(G, n_samples)
    triangular = how == "cholesky"
    r = B.shape[0]
    _check_rank(n_modes, r, n_samples)
    s = side_signs(B.shape[1], m_x)
    # without the whole spectrum, 'auto' takes Lanczos at any size: both ends are all it needs
    small = spectrum and r <= AUTO_EIGH_MAX
    use_eigh = solver == "eigh" or (solver == "auto" and small) or 2 * n_modes + 1 >= r
    whole = np.empty(0)
    if use_eigh or solver == "mixed" or (spectrum and r <= SPECTRUM_MAX):
        T = _reduced(B, s, m_x, triangular)
        matvec = T.dot
    else:  # T = B S B^T as an operator: two products of B per step instead of forming T
        T, matvec = None, _product(B, s, triangular)
    mixed = None
    if not use_eigh and (solver == "mixed" or (solver == "auto" and spectrum)) and T is not None:
        mixed = mixed_ends(T, n_modes, tol)  # float32 spectrum, pairs refined in float64
        whole = mixed.spectrum
    if use_eigh:
        evals, U = scipy.linalg.eigh(T, check_finite=False)
        whole = evals[::-1]
        top, bottom = np.arange(r - 1, r - 1 - n_modes, -1), np.arange(n_modes)
        eigenvalues = np.concatenate([evals[top], evals[bottom]])
        U = np.concatenate([U[:, top], U[:, bottom]], axis=1)
        used = "eigh"
    elif mixed is not None and mixed.values is not None:
        eigenvalues, U, used = mixed.values, mixed.vectors, "mixed"
    else:  # Lanczos, also when the mixed refinement did not converge
        eigenvalues, U = _lanczos_ends(matvec, r, n_modes, random_state, tol)
        used = "lanczos"
        if T is not None and mixed is None:  # mass shares: above AUTO_EIGH_MAX in float32
            whole = whole_spectrum(T, r > AUTO_EIGH_MAX)
    if triangular:  # B^T U by the triangular product on LAPACK's factor
        directions = s[:, None] * dtrmm(1.0, B, U, side=0, lower=0, trans_a=1)
    else:
        directions = s[:, None] * (B.T @ U)
    low_rank = B if not triangular else None
    return Modes(
        eigenvalues, directions, r, how, used, whole if spectrum else np.empty(0), low_rank
    )


def _check_rank(n_modes: int, r: int, n_samples: int | None) -> None:
    limit = r if n_samples is None else min(r, n_samples)
    if 2 * n_modes > limit:
        raise ValueError(
            f"n_modes={n_modes} asks for {2 * n_modes} eigenpairs but the difference kernel has rank "
            f"at most {limit} (n_samples={n_samples}, feature rank {r}); use n_modes <= {limit // 2}."
        )


def state_modes(
    state: GramState,
    eta: float,
    n_modes: int,
    solver: str = "auto",
    random_state: int | None = 0,
    spectrum: bool = True,
    tol: float = 0.0,
) -> Modes:
    """:func:`solve_modes` of an accumulated state: all zero when X and Y were identical (and
    eta is 1), from the scaled rows when the state keeps them (no m x m Gram formed nor
    factored), else from its Gram."""
    if state.identical and eta == 1.0:  # K_X - K_Y is exactly zero
        return Modes.zero(state.width, n_modes)
    if state.gram_sum is None:
        B = rows_factor(state, eta)
        return solve_modes(
            None, state.m_x, n_modes, solver, random_state, state.count, spectrum, tol, factor=B
        )
    G = gram_from_state(state, eta)
    return solve_modes(G, state.m_x, n_modes, solver, random_state, state.count, spectrum, tol)


def side_signs(m: int, m_x: int, y: float = -1.0) -> np.ndarray:
    """The diagonal of ``S`` over the feature columns ``[phi_X, phi_Y]``: 1 on X's ``m_x``
    columns, ``y`` on Y's (-1 for the difference kernel; -eta on Y's unscaled features)."""
    s = np.ones(m)
    s[m_x:] = y
    return s


def whole_spectrum(T: np.ndarray, single: bool = True) -> np.ndarray:
    """Every eigenvalue of the symmetric ``T``, descending, in float64 (``single``: computed in
    float32, to about 1e-6 of the largest; by torch's LAPACK when this process has torch
    loaded, else by scipy's divide and conquer). torch is not imported for this alone: at
    m = 4,000 its import (about 2.5 s) costs more than its eigvalsh saves over scipy's (1.3
    against 1.7 s)."""
    if not single:
        return scipy.linalg.eigvalsh(T, check_finite=False)[::-1]
    from speclens.spec.features import _torch_or_none

    T32 = T.astype(np.float32)
    torch = _torch_or_none() if "torch" in sys.modules else None
    if torch is None:
        values = scipy.linalg.eigvalsh(T32, check_finite=False, overwrite_a=True, driver="evd")
    else:  # T32.T: the same symmetric matrix, in the row-major order torch expects
        values = torch.linalg.eigvalsh(torch.from_numpy(T32.T)).numpy()
    return values[::-1].astype(np.float64)


def _reduced(B: np.ndarray, s: np.ndarray, m_x: int, triangular: bool) -> np.ndarray:
    """``T = B S B^T``, exactly symmetric (Fortran order). With B LAPACK's upper Cholesky
    factor ``[[U11, U12], [0, U22]]`` (split at ``m_x``), by blocks: ``T11 = U11 U11^T - U12
    U12^T`` (LAUUM, SYRK), ``T12 = -U12 U22^T`` (TRMM), ``T22 = -U22 U22^T`` (LAUUM): m^3/3
    flops for m_x = m/2 instead of the m^3 of one triangular product. Upper triangles, then
    mirrored."""
    if not triangular:
        T = (B * s) @ B.T
        return (T + T.T) / 2.0
    p = m_x
    m = B.shape[0]
    T = np.empty((m, m), order="F")
    T[:p, :p] = dlauum(B[:p, :p], lower=0)[0]
    if p < m:
        U12, U22 = B[:p, p:], B[p:, p:]
        T[:p, :p] = dsyrk(-1.0, U12, beta=1.0, c=T[:p, :p], lower=0)
        T[:p, p:] = dtrmm(-1.0, U22, U12, side=1, lower=0, trans_a=1)
        T[p:, p:] = dlauum(U22, lower=0)[0]
        np.negative(T[p:, p:], out=T[p:, p:])
    _mirror_upper(T)
    return T


def _mirror_upper(T: np.ndarray, block: int = 128) -> None:
    """Copy the upper triangle of a square Fortran-ordered T onto its lower one, by panels."""
    m = T.shape[0]
    for j in range(0, m, block):
        e = min(j + block, m)
        D = T[j:e, j:e]
        D[...] = np.triu(D) + np.triu(D, 1).T
        T[e:, j:e] = T[j:e, e:].T


def _product(B: np.ndarray, s: np.ndarray, triangular: bool):
    """``v -> B S B^T v``; with B the upper-triangular Cholesky factor, by BLAS triangular
    products, which read half of B (the products are memory-bound: about 2x faster)."""
    if not triangular:
        return lambda v: B @ (s * (B.T @ v))
    return lambda v: dtrmv(B, s * dtrmv(B, v, lower=0, trans=1), lower=0, trans=0)


def _lanczos_ends(matvec, r: int, k: int, random_state, tol: float = 0.0):
    """The k largest and k smallest eigenpairs (largest first, then smallest first) of the
    symmetric r x r operator ``matvec`` by Lanczos with full reorthogonalisation: no restarts,
    so 15-30% fewer products than ARPACK's restarted run for the same residuals. Stops when
    every wanted Ritz pair's residual ``|beta_j y_j|`` is at most ``tol`` (0: machine epsilon)
    times its eigenvalue's magnitude; falls back to ARPACK after ``LANCZOS_STEPS`` steps."""
    rng = np.random.default_rng(random_state)
    v0 = rng.standard_normal(r)
    steps = min(r, LANCZOS_STEPS)
    tol = max(tol, _EPS)
    Q = np.empty((steps, r))  # the basis, one row per vector
    alpha, beta = np.zeros(steps), np.zeros(steps)
    Q[0] = v0 / np.linalg.norm(v0)
    for j in range(steps):
        w = matvec(Q[j])
        if j:
            w -= beta[j - 1] * Q[j - 1]
        alpha[j] = Q[j] @ w
        complete = j + 1 == r  # the basis spans everything: the Ritz pairs are exact
        if not complete:
            w -= alpha[j] * Q[j]
            w, beta[j] = _orthogonalise(w, Q[: j + 1], rng)
        due = j + 1 == steps or (j + 1) % 4 == 0
        if complete or (j + 1 >= 2 * k and beta[j] > 0 and due):
            values, Y = scipy.linalg.eigh_tridiagonal(alpha[: j + 1], beta[:j])
            pick = np.concatenate([np.arange(j, j - k, -1), np.arange(k)])
            floor = np.abs(values[[0, -1]]).max() * _EPS ** (2 / 3)
            bound = tol * np.maximum(np.abs(values[pick]), floor)
            if complete or np.all(np.abs(beta[j] * Y[j, pick]) <= bound):
                return values[pick], Q[: j + 1].T @ Y[:, pick]
        if j + 1 < steps:
            Q[j + 1] = w
    return _arpack_ends(matvec, r, k, v0, tol)


def _orthogonalise(w: np.ndarray, Q: np.ndarray, rng) -> tuple[np.ndarray, float]:
    """(w made orthogonal to the rows of Q, normalised; the norm it had): classical
    Gram-Schmidt, repeated when it cancelled more than 1 - 1/sqrt(2) of w's norm (Daniel,
    Gragg, Kaufman and Stewart; twice is enough); when w cancels even then it lies in their
    span (the Krylov space is invariant), and a fresh random direction continues the basis with
    a norm of 0, which splits the tridiagonal matrix."""
    norm = np.linalg.norm(w)
    for _ in range(2):
        w = w - _project(Q, w)
        after = np.linalg.norm(w)
        if after > norm / np.sqrt(2.0):
            return w / after, after
        norm = after
    w = rng.standard_normal(Q.shape[1])
    for _ in range(2):
        w -= _project(Q, w)
    return w / np.linalg.norm(w), 0.0


def _project(Q: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``Q^T Q w`` by einsum, not BLAS: these matrix-vector products are small (a few MB), and a
    threaded BLAS call of that size waits for its threads (measured 8 ms against 0.3 ms on two
    cores another process was using), each of the hundreds of steps."""
    return np.einsum("i,ij->j", np.einsum("ij,j->i", Q, w), Q)


def _arpack_ends(matvec, r: int, k: int, v0: np.ndarray, tol: float):
    """Both ends by ARPACK's implicitly restarted Lanczos ('BE': one run for both ends)."""
    op = scipy.sparse.linalg.LinearOperator((r, r), matvec=matvec, dtype=np.float64)
    ncv = min(r, max(4 * k + 1, 32))
    tol = 0.0 if tol <= _EPS else tol
    values, vectors = scipy.sparse.linalg.eigsh(op, k=2 * k, which="BE", v0=v0, ncv=ncv, tol=tol)
    order = np.argsort(values)
    pick = np.concatenate([order[::-1][:k], order[:k]])
    return values[pick], vectors[:, pick]


def symmetric_ends(K: np.ndarray, n_modes: int, seed: int = 0) -> np.ndarray:
    """The ``n_modes`` largest (descending) and smallest (ascending) eigenvalues of a symmetric
    matrix: the order of a run's modes."""
    n = K.shape[0]
    if 4 * n_modes + 1 >= n or n <= 600:
        values = np.linalg.eigvalsh(K)
        return np.concatenate([values[::-1][:n_modes], values[:n_modes]])
    values, _ = _lanczos_ends(K.dot, n, n_modes, seed, 1e-10)
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
