"""The state of a Gram accumulation and what reads it: the m x m sum (or, with fewer rows
than features, the rows themselves), merging by addition, the Gram and a factor of it, and the
BLAS helpers that form a symmetric ``phi^T phi`` (:mod:`speclens.spec.gram` accumulates it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import blas


@dataclass
class GramState:
    """Plain-array state of a Gram accumulation: float64 ``gram_sum`` (m x m), ``count`` rows,
    the width ``m_x`` of X's features, and whether X and Y were ``identical`` (same rows bit
    for bit, same feature map) in every chunk. Or, with fewer rows than features, ``rows``:
    the rows' features (count x m, float64) in place of their sum (``gram_sum`` None);
    :meth:`summed` forms the sum from them where a caller needs it."""

    gram_sum: np.ndarray | None
    count: int
    m_x: int
    identical: bool = False
    rows: np.ndarray | None = None

    def __add__(self, other: GramState) -> GramState:
        return merge_states(self, other)

    @property
    def width(self) -> int:
        """The feature width m (X's and Y's features)."""
        return int(self.rows.shape[1] if self.gram_sum is None else self.gram_sum.shape[0])

    def summed(self) -> np.ndarray:
        """The m x m float64 sum of ``phi^T phi`` (formed from ``rows`` when the state keeps them)."""
        return rows_gram(self.rows) if self.gram_sum is None else self.gram_sum

    def masses(self, weights: np.ndarray) -> np.ndarray:
        """``w^T (sum_i phi_i^T phi_i) w`` for each column ``w`` of ``weights`` (m x c)."""
        if self.gram_sum is None:
            scores = self.rows @ weights
            return np.einsum("ij,ij->j", scores, scores)
        return np.einsum("ij,ij->j", weights, self.gram_sum @ weights)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Plain named arrays (for an ``.npz`` file); :meth:`from_arrays` reads them back."""
        held = {"gram_sum": self.gram_sum} if self.gram_sum is not None else {"rows": self.rows}
        return {
            **held,
            "count": np.int64(self.count),
            "m_x": np.int64(self.m_x),
            "identical": np.bool_(self.identical),
        }

    @classmethod
    def from_arrays(cls, arrays: dict) -> GramState:
        """The state saved by :meth:`to_arrays` (a state saved without ``identical`` reads as
        not identical)."""
        identical = bool(arrays["identical"]) if "identical" in arrays else False
        count, m_x = int(arrays["count"]), int(arrays["m_x"])
        if "gram_sum" not in arrays:
            rows = np.asarray(arrays["rows"], dtype=np.float64)
            return cls(None, count, m_x, identical, rows)
        gram_sum = np.asarray(arrays["gram_sum"], dtype=np.float64)
        return cls(gram_sum, count, m_x, identical)


def rows_gram(rows: np.ndarray) -> np.ndarray:
    """``rows^T rows`` (m x m, float64), exactly symmetric (one SYRK, mirrored)."""
    rows = np.ascontiguousarray(rows, dtype=np.float64)
    return mirror_upper(symmetric_product(rows).T)


def merge_states(*states: GramState) -> GramState:
    """Merge accumulation states by addition (associative and commutative)."""
    if not states:
        raise ValueError("merge_states needs at least one state.")
    first = states[0]
    for s in states[1:]:
        if s.width != first.width or s.m_x != first.m_x:
            raise ValueError(
                f"cannot merge Gram states of different feature layouts "
                f"({first.width} wide, m_x={first.m_x}) and ({s.width} wide, m_x={s.m_x}); "
                f"accumulate every chunk with the same feature maps."
            )
    identical = all(s.identical for s in states)
    count = sum(int(s.count) for s in states)
    if all(s.gram_sum is None for s in states) and count < first.width:  # still fewer rows
        rows = np.vstack([s.rows for s in states])
        return GramState(None, count, first.m_x, identical, rows)
    total = first.summed().copy()
    for s in states[1:]:
        total += s.summed()
    return GramState(total, count, first.m_x, identical)


def same_feature_map(a, b) -> bool:
    """Whether two fitted feature maps are the same map (kernel, width, bandwidth, frequencies)."""
    sa, sb = a.get_state(), b.get_state()
    if sa.keys() != sb.keys():
        return False
    return all(np.array_equal(np.asarray(sa[k]), np.asarray(sb[k])) for k in sa)


def gram_from_state(state: GramState, eta: float = 1.0) -> np.ndarray:
    """``G = Psi^T Psi / n`` for ``Psi = [Phi_X, sqrt(eta) Phi_Y]`` from an accumulated state."""
    if state.count < 1:
        raise ValueError(
            "the Gram accumulator has seen no rows; update it with at least one chunk."
        )
    G = state.summed() / state.count
    if eta != 1.0:
        root = np.sqrt(eta)
        G[state.m_x :, :] *= root
        G[:, state.m_x :] *= root
    return G


def rows_factor(state: GramState, eta: float = 1.0) -> np.ndarray:
    """``B`` (count x m) with ``B^T B = G`` (:func:`gram_from_state`) for a state that keeps its
    rows: the rows scaled by ``diag(1, sqrt(eta)) / sqrt(count)``."""
    weight = np.ones(state.width)
    weight[state.m_x :] = np.sqrt(eta)
    return state.rows * (weight / np.sqrt(state.count))


def symmetric_product(phi: np.ndarray, product: str = "syrk", out: np.ndarray | None = None):
    """``phi^T phi`` (m x m) of one block, Fortran-ordered with at least its lower triangle
    set (so its transpose, a C-ordered view, holds the upper one): 'syrk' computes only that
    triangle (BLAS ?syrk, half the flops); 'gemm' the whole general product (BLAS ?gemm).
    ``out``: a buffer from a previous call to reuse (same shape and dtype, else ignored)."""
    a = phi.T  # phi is C-ordered, so phi^T is Fortran-ordered: BLAS reads it in place
    prefix = "s" if phi.dtype == np.float32 else "d"
    m = phi.shape[1]
    if out is None or out.shape != (m, m) or out.dtype != phi.dtype:
        out = np.zeros((m, m), dtype=phi.dtype, order="F")
    if product == "syrk":
        syrk = getattr(blas, prefix + "syrk")
        return syrk(1.0, a, beta=0.0, c=out, trans=0, lower=1, overwrite_c=1)
    gemm = getattr(blas, prefix + "gemm")
    return gemm(1.0, a, a, beta=0.0, c=out, trans_b=1, overwrite_c=1)


def mirror_upper(upper: np.ndarray, rows: int = 64) -> np.ndarray:
    """The symmetric matrix whose upper triangle is ``upper``'s (its lower triangle is 0), by
    slabs of ``rows`` rows (about twice as fast as ``upper + upper.T``: the transposed reads
    stay in cache)."""
    full = upper.copy()
    m = upper.shape[0]
    for a in range(0, m, rows):
        b = min(a + rows, m)
        full[b:, a:b] = upper[a:b, b:].T
        full[a:b, a:b] += np.triu(upper[a:b, a:b], 1).T
    return full
