"""Exact small-n reference: build the n x n difference kernel explicitly and call eigh.

Used by tests to check the scalable path, and by users to validate a configuration on a
sample. Refuses n above ``EXACT_MAX_SAMPLES`` (an n x n float64 matrix and its O(n^3) eigh).
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

from speclens.spec.eigen import symmetric_ends
from speclens.spec.features import DEFAULT_SIGMA_SCALE, resolve_sigma
from speclens.spec.scores import fix_signs
from speclens.spec.validation import check_kernel, check_pair, check_positive

#: The largest n that ``exact_modes`` accepts (a 5,000 x 5,000 float64 kernel is 200 MB).
EXACT_MAX_SAMPLES = 5000


def kernel_matrix(A: np.ndarray, kernel: str, sigma: float | None = None) -> np.ndarray:
    """``k(a_i, a_j)`` for all pairs of rows, in float64."""
    A = np.asarray(A, dtype=np.float64)
    if kernel == "cosine":
        norms = np.linalg.norm(A, axis=1, keepdims=True)
        if (norms == 0).any():
            raise ValueError("a row has zero norm, where the cosine kernel is undefined; drop it.")
        U = A / norms
        return U @ U.T
    sq = np.einsum("ij,ij->i", A, A)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * (A @ A.T), 0.0)
    return np.exp(-d2 / (2.0 * sigma**2))


def exact_modes(
    X,
    Y,
    kernel_x: str = "gaussian",
    kernel_y: str = "gaussian",
    sigma_x: float | None = None,
    sigma_y: float | None = None,
    eta: float = 1.0,
    max_samples: int = EXACT_MAX_SAMPLES,
    sigma_scale: float = DEFAULT_SIGMA_SCALE,
) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (descending) and unit eigenvectors (columns) of ``K_X/n - eta K_Y/n``.

    Gaussian bandwidths default to the same heuristic as ``SPEC``: ``sigma_scale`` times the
    median pairwise distance of up to 1,000 rows drawn with seed 0.
    Each eigenvector's sign makes its largest-magnitude entry positive.
    """
    X, Y = _checked(
        X,
        Y,
        max_samples,
        "exact_modes",
        "subsample the rows or use SPEC, which streams in O(m^2) memory",
    )
    lam = difference_kernel(X, Y, kernel_x, kernel_y, sigma_x, sigma_y, eta, sigma_scale)
    evals, evecs = scipy.linalg.eigh(lam)
    order = np.argsort(-evals, kind="stable")
    return evals[order], fix_signs(evecs[:, order])


def _checked(X, Y, max_samples: int, name: str, fix: str) -> tuple[np.ndarray, np.ndarray]:
    """The pair, checked, or a ValueError when an n x n kernel of it would be too large."""
    X, Y = check_pair(X, Y)
    if X.shape[0] > max_samples:
        raise ValueError(
            f"{name} builds an n x n kernel and refuses n={X.shape[0]} > {max_samples}; {fix}."
        )
    return X, Y


def difference_kernel(X, Y, kernel_x, kernel_y, sigma_x, sigma_y, eta, sigma_scale):
    """The symmetric n x n ``K_X/n - eta K_Y/n`` (bandwidths: given, or the heuristic)."""
    check_kernel(kernel_x, "kernel_x")
    check_kernel(kernel_y, "kernel_y")
    eta = check_positive(eta, "eta")
    sx = resolve_sigma(X, kernel_x, sigma_x, "sigma_x", sigma_scale)
    sy = resolve_sigma(Y, kernel_y, sigma_y, "sigma_y", sigma_scale)
    lam = (kernel_matrix(X, kernel_x, sx) - eta * kernel_matrix(Y, kernel_y, sy)) / X.shape[0]
    return (lam + lam.T) / 2.0


def exact_ends(
    X,
    Y,
    n_modes: int,
    kernel_x: str = "gaussian",
    kernel_y: str = "gaussian",
    sigma_x: float | None = None,
    sigma_y: float | None = None,
    eta: float = 1.0,
    max_samples: int = EXACT_MAX_SAMPLES,
    seed: int = 0,
) -> np.ndarray:
    """The exact eigenvalues at both ends in a run's mode order: the ``n_modes`` largest
    (descending), then the ``n_modes`` smallest (ascending), by Lanczos on the explicit kernel
    (``exact_modes`` computes every eigenpair; this is the check beside a run)."""
    X, Y = _checked(X, Y, max_samples, "exact_ends", "check a seeded subsample of the rows")
    lam = difference_kernel(X, Y, kernel_x, kernel_y, sigma_x, sigma_y, eta, DEFAULT_SIGMA_SCALE)
    return symmetric_ends(lam, n_modes, seed)
