"""Both ends of a symmetric matrix's eigenpairs, and its whole spectrum, from one float32
tridiagonal reduction, the wanted pairs refined to float64 accuracy.

The whole spectrum (each mode's share of the absolute mass) already costs a float32 reduction
``T ~ Q Tt Q^T`` (LAPACK ``ssytrd``, about 85% of a float32 ``eigvalsh``). The same reduction
gives the ends almost for free: the eigenvalues of the tridiagonal ``Tt`` (``ssterf``, O(m^2)),
the end eigenvectors of ``Tt`` by bisection and inverse iteration (``sstebz`` + ``sstein``,
O(m p)), brought back by the Householder reflectors (``dormqr``, O(m^2 p)). Those vectors are
accurate to float32 only (``eps32 ||T|| / gap``); the refinement works in float64 against T
itself:

* Rayleigh-Ritz on the subspace (float64 products with T), ``p = k + GUARD`` pairs kept at
  each end so that a cluster straddling the k-th pair stays inside the subspace;
* each kept pair's correction by Olsen's form of the Jacobi-Davidson equation,
  ``t = -K r + eps K x`` with ``eps = x^T K r / x^T K x`` (so ``t`` is orthogonal to x), where
  ``K = Q (Tt - theta I)^-1 Q^T`` is the float32 factorisation used as a preconditioner: T and
  ``Q Tt Q^T`` differ by ``eps32 ||T||``, so each step shrinks the error by about
  ``eps32 ||T|| / gap`` (measured at m = 4,000: residuals from 3e-7 to 1e-13 of ||T|| in one
  step);
* Rayleigh-Ritz again on ``[X, t]`` until every wanted pair's residual ``||T x - theta x||`` is
  within ``max(tol |theta|, RESIDUAL_FLOOR sqrt(m) eps ||T||)``: the rounding of a float64
  product with T, so the eigenvalues are as accurate as a float64 ``eigh``'s and the vectors
  within residual / gap.

When it does not get there in ``REFINE_STEPS`` (or LAPACK reports a failure) the result has no
pairs and the caller falls back to Lanczos with the spectrum already in hand.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import lapack

#: Extra eigenpairs kept at each end of the refinement subspace beyond the k wanted.
GUARD = 10
#: Refinement steps (Rayleigh-Ritz with corrections) before giving up on the pairs.
REFINE_STEPS = 4
#: Residual floor in units of ``sqrt(m) eps ||T||`` (the rounding of one float64 product).
RESIDUAL_FLOOR = 64.0
_EPS = np.finfo(np.float64).eps


@dataclass
class MixedEnds:
    """``spectrum``: every eigenvalue, descending (float32 accuracy); ``values`` (top k
    descending, then bottom k ascending) and ``vectors`` (m x 2k): the refined pairs, or None
    when the refinement did not converge; ``steps``: refinement steps taken."""

    spectrum: np.ndarray
    values: np.ndarray | None
    vectors: np.ndarray | None
    steps: int


class _Reduction:
    """``T ~ Q Tt Q^T`` in float32: the tridiagonal ``(d, e)`` and Q's reflectors, applied in
    float64 (Q = diag(1, Q') with Q' the reflectors below the subdiagonal, as ``dormtr``)."""

    def __init__(self, T: np.ndarray):
        m = T.shape[0]
        a = np.asfortranarray(T, dtype=np.float32)
        c, d, e, tau, info = lapack.ssytrd(a, lower=1, overwrite_a=1, lwork=64 * m)
        if info != 0:
            raise np.linalg.LinAlgError(f"ssytrd failed (info={info}).")
        self.m, self.d, self.e = m, d, e
        self.reflectors = np.asfortranarray(c[1:, :-1], dtype=np.float64)
        self.tau = tau.astype(np.float64)
        self.d64, self.e64 = d.astype(np.float64), e.astype(np.float64)

    def apply(self, Z: np.ndarray, transpose: bool = False) -> np.ndarray:
        """``Q Z`` (or ``Q^T Z``) for Z of m rows, in float64."""
        Z = np.asarray(Z, dtype=np.float64)
        out = np.empty_like(Z)
        out[0] = Z[0]
        if self.m > 1:
            args = ("L", "T" if transpose else "N", self.reflectors, self.tau)
            rest = np.asfortranarray(Z[1:])
            _, work, _ = lapack.dormqr(*args, rest, lwork=-1)
            out[1:], _, info = lapack.dormqr(*args, rest, lwork=int(work[0]))
            if info != 0:
                raise np.linalg.LinAlgError(f"dormqr failed (info={info}).")
        return out

    def spectrum(self) -> np.ndarray:
        values, info = lapack.ssterf(self.d, self.e)
        if info != 0:
            raise np.linalg.LinAlgError(f"ssterf failed (info={info}).")
        return np.sort(values.astype(np.float64))[::-1]

    def end_vectors(self, p: int) -> np.ndarray:
        """The p largest and p smallest eigenvectors of Tt (m x 2p, float32 accuracy)."""
        m, d, e = self.m, self.d, self.e
        ends = [
            lapack.sstebz(d, e, 3, 0.0, 0.0, lo, hi, 0.0, "B")
            for lo, hi in ((m - p + 1, m), (1, p))
        ]
        if any(out[-1] != 0 for out in ends):
            raise np.linalg.LinAlgError("sstebz failed.")
        w = np.concatenate([out[1][:p] for out in ends])
        block = np.concatenate([out[2][:p] for out in ends])
        order = np.lexsort((w, block))  # sstein wants them by block, ascending within one
        iblock = np.zeros(m, dtype=np.int32)
        iblock[: 2 * p] = block[order]
        z, info = lapack.sstein(d, e, w[order], iblock, ends[0][3])
        if info != 0:
            raise np.linalg.LinAlgError(f"sstein failed (info={info}).")
        return self.apply(z[:, : 2 * p])

    def solve_shifted(self, B: np.ndarray, shift: float) -> np.ndarray:
        """``(Tt - shift I)^-1 B`` (tridiagonal LU with partial pivoting); a shift that makes
        it exactly singular is nudged by one unit of roundoff of the diagonal's scale."""
        scale = max(float(np.abs(self.d64).max()), float(np.abs(self.e64).max(initial=0.0)))
        for nudge in (0.0, 4 * _EPS * scale, 64 * _EPS * scale):
            e = self.e64.copy()
            *_, x, info = lapack.dgtsv(e, self.d64 - (shift + nudge), e.copy(), B)
            if info == 0:
                return x
        raise np.linalg.LinAlgError("the shifted tridiagonal system stayed singular.")


def mixed_ends(T: np.ndarray, k: int, tol: float = 0.0) -> MixedEnds:
    """The k largest and k smallest eigenpairs of the symmetric float64 ``T`` (m x m, 2k < m)
    and its whole spectrum, from a float32 reduction refined in float64 (module docstring)."""
    m = T.shape[0]
    if not 0 < 2 * k < m:
        raise ValueError(f"mixed_ends needs 0 < 2k < m, got k={k} for m={m}.")
    red = _Reduction(T)
    spectrum = red.spectrum()
    p = min(k + GUARD, m // 2)
    norm = float(np.abs(spectrum[[0, -1]]).max())
    floor = RESIDUAL_FLOOR * np.sqrt(m) * _EPS * norm
    try:
        V = red.end_vectors(p)
    except np.linalg.LinAlgError:
        return MixedEnds(spectrum, None, None, 0)
    for step in range(1, REFINE_STEPS + 1):
        theta, X, R = _rayleigh_ritz(T, V)
        order = np.argsort(theta)
        kept = np.concatenate([order[::-1][:p], order[:p]])
        wanted = np.concatenate([order[::-1][:k], order[:k]])
        residual = np.linalg.norm(R[:, wanted], axis=0)
        if norm == 0.0 or np.all(residual <= np.maximum(tol * np.abs(theta[wanted]), floor)):
            return MixedEnds(spectrum, theta[wanted], X[:, wanted], step)
        if step == REFINE_STEPS:
            break
        X, R, theta = X[:, kept], R[:, kept], theta[kept]
        V = np.hstack([X, _corrections(red, X, R, theta)])
    return MixedEnds(spectrum, None, None, REFINE_STEPS)


def _rayleigh_ritz(T: np.ndarray, V: np.ndarray):
    """(Ritz values, Ritz vectors, residuals ``T X - X diag(theta)``) of T on span(V)."""
    V, _ = np.linalg.qr(V)
    W = T @ V
    H = V.T @ W
    theta, Y = np.linalg.eigh((H + H.T) / 2.0)
    X = V @ Y
    return theta, X, W @ Y - X * theta


def _corrections(red: _Reduction, X: np.ndarray, R: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Olsen's correction per pair with ``K = Q (Tt - theta I)^-1 Q^T``, unit columns."""
    q = X.shape[1]
    rotated = red.apply(np.hstack([R, X]), transpose=True)
    solved = np.empty_like(rotated)
    for j in range(q):
        pair = red.solve_shifted(rotated[:, [j, q + j]], float(theta[j]))
        solved[:, j], solved[:, q + j] = pair[:, 0], pair[:, 1]
    back = red.apply(solved)
    Kr, Kx = back[:, :q], back[:, q:]
    denom = np.sum(X * Kx, axis=0)
    eps = np.divide(np.sum(X * Kr, axis=0), denom, out=np.zeros(q), where=denom != 0)
    t = eps * Kx - Kr
    t -= X @ (X.T @ t)  # orthogonal to the current pairs (Olsen's t is, up to rounding)
    size = np.linalg.norm(t, axis=0)
    return t / np.where(size > 0, size, 1.0)
