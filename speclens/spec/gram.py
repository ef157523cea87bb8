"""Streaming Gram accumulator: the map-reduce step of SPEC, linear in n, O(m^2) memory.

For feature maps phi_X (width m_x) and phi_Y (width m_y), the state is
``(sum over rows of phi^T phi, row count)`` with ``phi = [phi_X(x), phi_Y(y)]``, summed in
float64. Two states merge by addition, so chunks can be folded in any order and on any
worker. The weight ``eta`` is applied when the Gram is read (``gram(eta)``), so one pass
serves every eta: ``G = D (sum / n) D`` with ``D = diag(I_mx, sqrt(eta) I_my)``, which equals
``Psi^T Psi / n`` for ``Psi = [Phi_X, sqrt(eta) Phi_Y]``.

Each chunk costs one feature evaluation and one symmetric rank-k update per block of
``block_rows`` rows (BLAS SYRK on the CPU: only the upper triangle of ``P^T P``, half the
floating-point work of the general product, summed into the upper triangle of the float64
state and mirrored once when the state is read); no per-sample loop and never more than one
block of features in memory. ``product='gemm'`` computes the full general product instead
(the reference the SYRK path is tested against).

While it has seen fewer rows than features, the state can keep the rows' features themselves
instead (``keep_rows``; the compare flow's passes do): the Gram is then rank-deficient, and the
rows scaled by ``1/sqrt(n)`` are an exact factor of it, smaller than it (n x m against m x m),
so the solve skips the m x m factorization (``eigen.state_modes``). The rows are folded into the
sum once the count reaches the feature width.

Identical inputs are detected, not left to rounding: the state records ``identical`` (every
chunk had ``x == y`` bit for bit and the two feature maps are the same map), and the solver
then reports the exactly zero difference kernel. Without this the float32 block products of
two equal feature blocks can differ in their last bits between BLAS kernels (CPUs pick
different ones), leaving eigenvalues of rounding size instead of zero.
"""

from __future__ import annotations

import numpy as np

from speclens.spec.gram_state import (  # noqa: F401  (re-exported: the state lives there)
    GramState,
    gram_from_state,
    merge_states,
    mirror_upper,
    same_feature_map,
    symmetric_product,
)
from speclens.spec.validation import check_dtype, check_int, check_pair


class GramAccumulator:
    """Accumulate ``phi^T phi`` over chunks of paired embeddings (x_chunk, y_chunk).

    Parameters
    ----------
    feature_x, feature_y : fitted feature maps (``GaussianRFF`` or ``Cosine``).
    dtype : 'float32' or 'float64', precision of the features and of each block's product;
        the running sum is always float64.
    backend : 'numpy' (CPU) or 'torch' (any torch device, e.g. 'cuda').
    device : torch device for the torch backend.
    block_rows : rows per block; bounds memory at ``block_rows * (m_x + m_y)`` features.
    product : 'syrk' (numpy backend: BLAS symmetric rank-k update, half the flops) or 'gemm'
        (the general product; the torch backend always uses it: torch has no SYRK).
    keep_rows : (numpy backend) keep the rows' features, in float64, while fewer rows than
        features have been seen, and hand them over as the state's ``rows``; folded into the
        sum once the count reaches the feature width.
    """

    def __init__(
        self,
        feature_x,
        feature_y,
        dtype="float32",
        backend="numpy",
        device="cpu",
        block_rows=8192,
        product="syrk",
        keep_rows=False,
    ):
        for name, fmap in (("feature_x", feature_x), ("feature_y", feature_y)):
            if not hasattr(fmap, "n_features_in_"):
                raise ValueError(f"{name} is not fitted; call {name}.fit(X) before accumulating.")
        if backend not in ("numpy", "torch"):
            raise ValueError(f"backend must be 'numpy' or 'torch', got {backend!r}.")
        if product not in PRODUCTS:
            raise ValueError(f"product must be one of {PRODUCTS}, got {product!r}.")
        self.feature_x = feature_x
        self.feature_y = feature_y
        self.dtype = check_dtype(dtype)
        self.backend = backend
        self.device = device
        self.block_rows = check_int(block_rows, "block_rows")
        self.product = product
        self.keep_rows = bool(keep_rows) and backend == "numpy"
        self.m_x = feature_x.n_features_out_
        self.m_y = feature_y.n_features_out_
        self._same_maps = same_feature_map(feature_x, feature_y)
        self.reset()

    @property
    def m(self) -> int:
        return self.m_x + self.m_y

    def reset(self) -> GramAccumulator:
        self.count_ = 0
        self.identical_ = self._same_maps
        self._sum = None  # numpy: the upper triangle of the sum (the lower one stays 0)
        self._buf = None
        self._out = None  # numpy: the block product's buffer, reused
        self._rows = []  # keep_rows: the rows' features (float64) while fewer than m
        return self

    # ---- accumulation -------------------------------------------------------------------
    def features(self, x, y, out=None, proj=(None, None)):
        """``phi = [phi_X(x), phi_Y(y)]`` for one block (numpy or torch, per the backend);
        ``proj``: each side's ``x @ W`` when already computed (None: computed here)."""
        n = x.shape[0]
        if out is None:
            out = self._empty((n, self.m))
        self.feature_x.transform(x, out=out[:, : self.m_x], proj=proj[0])
        self.feature_y.transform(y, out=out[:, self.m_x :], proj=proj[1])
        return out

    def update(self, x_chunk, y_chunk, proj=(None, None)) -> GramAccumulator:
        """Fold one chunk of paired rows into the running sum (``proj``: each side's
        ``x @ W`` for the whole chunk, in the accumulator's dtype, when already computed)."""
        x_chunk, y_chunk = check_pair(x_chunk, y_chunk, "x_chunk", "y_chunk")
        self._check_widths(x_chunk, y_chunk)
        self.identical_ = self.identical_ and np.array_equal(x_chunk, y_chunk)
        n = x_chunk.shape[0]
        keep = self.keep_rows and self._sum is None and self.count_ + n < self.m
        if self._rows and not keep:  # the count reaches the width: the rows join the sum
            # (SYRK's triangle, transposed: the upper triangle the running sum holds)
            self._sum = np.ascontiguousarray(symmetric_product(np.vstack(self._rows)).T)
            self._rows = []
        for start in range(0, n, self.block_rows):
            stop = min(start + self.block_rows, n)
            x = self._as_backend(x_chunk[start:stop])
            y = self._as_backend(y_chunk[start:stop])
            p = take_rows(proj, slice(start, stop))
            phi = self.features(x, y, out=self._block_buffer(stop - start), proj=p)
            if keep:
                self._rows.append(phi.astype(np.float64))
            else:
                self._add_block(phi)
        self.count_ += n
        return self

    def scores(self, x, y, weights: np.ndarray, proj=(None, None)) -> np.ndarray:
        """float64 ``phi @ weights`` (n x c) for one block of paired rows (numpy in, numpy
        out, either backend; ``proj`` as in :meth:`update`, numpy backend only)."""
        if self.backend == "torch":
            import torch

            phi = self.features(self._as_backend(x), self._as_backend(y))
            w = torch.as_tensor(weights, dtype=torch.float64, device=phi.device)
            return (phi.to(torch.float64) @ w).cpu().numpy()
        return float64_product(self.features(x, y, proj=proj), weights)

    def _add_block(self, phi) -> None:
        if self.backend == "torch":
            import torch

            block = phi.T @ phi  # torch has no SYRK: the general product, in self.dtype
            if self._sum is None:  # the first block starts the sum (no zeros to add to)
                self._sum = block.to(torch.float64)
            else:
                self._sum += block
            return
        if self._sum is None:
            self._sum = np.zeros((self.m, self.m))
        self._out = symmetric_product(phi, self.product, self._out)
        add_upper(self._sum, self._out.T)

    def _block_buffer(self, rows: int):
        if self._buf is None or self._buf.shape[0] < rows:
            self._buf = self._empty((min(self.block_rows, max(rows, 1)), self.m))
        return self._buf[:rows]

    def _empty(self, shape):
        if self.backend == "torch":
            import torch

            return torch.empty(shape, dtype=_torch_dtype(self.dtype), device=self.device)
        return np.empty(shape, dtype=self.dtype)

    def _as_backend(self, a):
        if self.backend == "torch":
            import torch

            return torch.as_tensor(np.ascontiguousarray(a), device=self.device).to(
                _torch_dtype(self.dtype)
            )
        return np.ascontiguousarray(a, dtype=self.dtype)

    def _check_widths(self, x, y) -> None:
        for name, a, fmap in (("x_chunk", x, self.feature_x), ("y_chunk", y, self.feature_y)):
            if a.shape[1] != fmap.n_features_in_:
                raise ValueError(
                    f"{name} has {a.shape[1]} features but its feature map was fitted for "
                    f"{fmap.n_features_in_}; pass chunks of the same embedding."
                )

    # ---- state --------------------------------------------------------------------------
    def state(self, copy: bool = True) -> GramState:
        """The accumulated state as plain numpy arrays (float64 sum, row count); ``copy=False``
        (torch backend on the CPU) hands over the running sum itself (128 MB at m = 4,000),
        for an accumulator that is then dropped."""
        if self._rows:
            rows = np.vstack(self._rows)
            return GramState(None, int(self.count_), self.m_x, bool(self.identical_), rows)
        if self._sum is None:
            total = np.zeros((self.m, self.m), dtype=np.float64)
        elif self.backend == "torch":
            total = self._sum.cpu().numpy()
            total = total.copy() if copy and self._sum.device.type == "cpu" else total
        else:  # a new array either way: the running sum holds only the upper triangle
            total = mirror_upper(self._sum)
        return GramState(total, int(self.count_), self.m_x, bool(self.identical_))

    def load_state(self, state: GramState) -> GramAccumulator:
        if state.width != self.m or state.m_x != self.m_x:
            raise ValueError(
                f"state {state.width} wide (m_x={state.m_x}) does not fit this "
                f"accumulator's layout ({self.m}, m_x={self.m_x}); use the same feature maps."
            )
        self.reset()
        self.count_ = int(state.count)
        self.identical_ = self._same_maps and state.identical
        total = np.asarray(state.summed(), dtype=np.float64).copy()
        if self.backend == "torch":
            import torch

            total = torch.as_tensor(total, device=self.device)
        else:
            total = np.triu(total)
        self._sum = total
        return self

    def merge(self, other: GramAccumulator) -> GramAccumulator:
        """A new accumulator holding the sum of both states (neither input changes)."""
        merged = GramAccumulator(
            self.feature_x,
            self.feature_y,
            self.dtype.__name__,
            self.backend,
            self.device,
            self.block_rows,
            self.product,
        )
        return merged.load_state(merge_states(self.state(), other.state()))

    def to_arrays(self) -> dict:
        return self.state().to_arrays()

    @staticmethod
    def state_from_arrays(arrays: dict) -> GramState:
        return GramState.from_arrays(arrays)

    def gram(self, eta: float = 1.0) -> np.ndarray:
        return gram_from_state(self.state(), eta)


#: How a block's ``P^T P`` is computed on the CPU (see :class:`GramAccumulator`).
PRODUCTS = ("syrk", "gemm")
#: Rows of the float64 sum updated per step of :func:`add_upper` (bounds its temporaries).
_ADD_ROWS = 512


def add_upper(total: np.ndarray, upper: np.ndarray) -> None:
    """``total += upper`` on the upper triangle only (both m x m; ``total`` float64 and
    C-ordered), in row slabs: half the memory traffic of a full add."""
    m = total.shape[0]
    for a in range(0, m, _ADD_ROWS):
        b = min(a + _ADD_ROWS, m)
        total[a:b, a:] += upper[a:b, a:]
        total[a:b, a:b] = np.triu(total[a:b, a:b])  # the slab's diagonal block: drop its lower


def float64_product(phi: np.ndarray, weights: np.ndarray, rows: int = _ADD_ROWS) -> np.ndarray:
    """``phi @ weights`` in float64 for float32 ``phi`` (n x m) and narrow ``weights`` (m x c):
    converted a slab of rows at a time (the slab stays in cache; converting the whole block
    first writes and rereads twice its size); equal to ``phi.astype(float64) @ w`` to rounding."""
    weights = np.asarray(weights, dtype=np.float64)
    if phi.dtype == np.float64:
        return phi @ weights
    out = np.empty((phi.shape[0], weights.shape[1]))
    for a in range(0, phi.shape[0], rows):
        np.matmul(phi[a : a + rows].astype(np.float64), weights, out=out[a : a + rows])
    return out


def take_rows(proj: tuple, rows) -> tuple:
    """Both sides' precomputed ``x @ W`` (None where not given) restricted to ``rows``."""
    return tuple(None if p is None else p[rows] for p in proj)


def _torch_dtype(dtype):
    import torch

    return {np.float32: torch.float32, np.float64: torch.float64}[dtype]
