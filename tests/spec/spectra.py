"""Hard symmetric matrices for the eigensolvers' tests (Lanczos and the mixed-precision ends),
and the ends of a spectrum in a run's mode order."""

from __future__ import annotations

import numpy as np


def ends(values: np.ndarray, k: int) -> np.ndarray:
    """The k largest (descending), then the k smallest (ascending)."""
    values = np.sort(values)
    return np.concatenate([values[::-1][:k], values[:k]])


def gram(m: int, n: int, seed: int = 0, corr: float = 0.0) -> np.ndarray:
    """A Gram ``Psi^T Psi / n`` of n rows of m features (``corr``: the features share a common
    factor, so G is far from diagonal)."""
    rng = np.random.default_rng(seed)
    psi = rng.standard_normal((n, m)) + corr * rng.standard_normal((n, 1))
    return psi.T @ psi / n


def clustered(r: int = 400, seed: int = 7) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(A, its eigenvalues, its eigenvectors Q): both ends clustered within 1e-4 and less
    (four at the top, four at the bottom), the rest uniform in [-0.5, 0.5]."""
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((r, r)))
    lam = np.concatenate([[1.0, 0.9991, 0.999, 0.9989], rng.uniform(-0.5, 0.5, r - 8)])
    lam = np.concatenate([lam, [-1.0, -0.9995, -0.9994, -0.99935]])
    return (Q * lam) @ Q.T, lam, Q


def low_rank_multiple(Q: np.ndarray) -> np.ndarray:
    """Rank 16 on Q's first 16 columns: eigenvalues 1..8, and -0.5 eight times."""
    return (Q[:, :8] * np.arange(1.0, 9.0)) @ Q[:, :8].T - (Q[:, 8:16] * 0.5) @ Q[:, 8:16].T
