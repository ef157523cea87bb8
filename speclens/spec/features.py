"""Feature maps phi with k(a, b) ~= phi(a) . phi(b): Gaussian random Fourier features and cosine.

Both work on numpy arrays and on torch tensors (any device). Their state (including the
drawn frequencies) round-trips through plain arrays with ``get_state`` / ``from_state``, so
another process or worker reproduces the features bit for bit.
"""

from __future__ import annotations

import functools

import numpy as np

from speclens.spec.validation import check_int, check_kernel, check_matrix, check_positive


def _is_torch(a) -> bool:
    return type(a).__module__.startswith("torch")


@functools.cache
def _torch_or_none():
    try:
        import torch
    except ImportError:  # torch is optional for the math core
        return None
    return torch


#: Below this many elements an elementwise or block operation runs in numpy: importing torch
#: (2-3 s) costs more than its kernels save on small arrays (a command on a few hundred rows
#: answers seconds sooner). A function of the size alone, never of what the process has
#: imported, so a block gives the same bits in every worker.
TORCH_WORTH = 1 << 20


def torch_for(size: int):
    """torch for an operation on ``size`` elements when it pays (module or None)."""
    return _torch_or_none() if size >= TORCH_WORTH else None


def _cos_sin(torch, proj, out, D: int) -> None:
    """``out = [cos(proj), sin(proj)] / sqrt(D)`` in place (torch tensors, maybe numpy views)."""
    torch.cos(proj, out=out[:, :D])
    torch.sin(proj, out=out[:, D:])
    out.mul_(1.0 / np.sqrt(D))


class GaussianRFF:
    """Random Fourier features for ``k(a, b) = exp(-|a - b|^2 / (2 sigma^2))``.

    Frequencies ``W`` (d x rff_dim) have entries ``N(0, 1 / sigma^2)`` drawn from
    ``numpy.random.default_rng(random_state)``; ``phi(a) = [cos(aW), sin(aW)] / sqrt(rff_dim)``
    has width ``2 * rff_dim`` and ``phi(a) . phi(a) = 1`` exactly.
    """

    kernel = "gaussian"

    def __init__(self, sigma: float, rff_dim: int = 2000, random_state: int | None = 0):
        self.sigma = check_positive(sigma, "sigma")
        self.rff_dim = check_int(rff_dim, "rff_dim")
        self.random_state = random_state
        self._cache: dict = {}

    def fit(self, X) -> GaussianRFF:
        """Draw the frequencies for inputs of X's width (X may also be the width itself)."""
        d = X if isinstance(X, int | np.integer) else check_matrix(X, "X").shape[1]
        rng = np.random.default_rng(self.random_state)
        self.frequencies_ = rng.standard_normal((int(d), self.rff_dim)) / self.sigma
        self.n_features_in_ = int(d)
        self._cache = {}
        return self

    @property
    def n_features_out_(self) -> int:
        return 2 * self.rff_dim

    def _weights(self, like, dtype):
        key = (str(getattr(like, "device", "numpy")), str(dtype))
        if key not in self._cache:
            if _is_torch(like):
                import torch

                w = torch.as_tensor(self.frequencies_, dtype=dtype, device=like.device)
            else:
                w = self.frequencies_.astype(dtype, copy=False)
            self._cache[key] = w
        return self._cache[key]

    def transform(self, x, out=None, proj=None):
        """Map rows of ``x`` (n x d, numpy or torch) to features (n x 2*rff_dim) of x's dtype.

        ``out`` (optional, same kind and dtype) receives the result without a new allocation;
        ``proj`` (optional): ``x @ frequencies_`` already computed (:func:`shared_projections`).
        """
        self._check_fitted(x)
        D = self.rff_dim
        proj = x @ self._weights(x, x.dtype) if proj is None else proj
        torch = _torch_or_none() if _is_torch(x) else torch_for(proj.size)
        if _is_torch(x):
            if out is None:
                out = torch.empty((x.shape[0], 2 * D), dtype=x.dtype, device=x.device)
            _cos_sin(torch, proj, out, D)
            return out
        if out is None:
            out = np.empty((x.shape[0], 2 * D), dtype=x.dtype)
        if torch is not None:  # torch's elementwise kernels are vectorised and multi-threaded
            _cos_sin(torch, torch.from_numpy(proj), torch.from_numpy(out), D)
        else:
            np.cos(proj, out=out[:, :D])
            np.sin(proj, out=out[:, D:])
            out *= out.dtype.type(1.0 / np.sqrt(D))
        return out

    def _check_fitted(self, x) -> None:
        if not hasattr(self, "frequencies_"):
            raise ValueError("GaussianRFF is not fitted; call fit(X) (or fit(d)) before transform.")
        if x.shape[1] != self.n_features_in_:
            raise ValueError(
                f"input has {x.shape[1]} features but the frequencies were drawn for "
                f"{self.n_features_in_}; use the same embedding width as at fit time."
            )

    def get_state(self) -> dict:
        return {
            "kernel": self.kernel,
            "sigma": self.sigma,
            "rff_dim": self.rff_dim,
            "random_state": self.random_state,
            "frequencies": self.frequencies_,
        }

    @classmethod
    def from_state(cls, state: dict) -> GaussianRFF:
        fmap = cls(float(state["sigma"]), int(state["rff_dim"]), state.get("random_state"))
        fmap.frequencies_ = np.asarray(state["frequencies"], dtype=np.float64)
        fmap.n_features_in_ = fmap.frequencies_.shape[0]
        return fmap


class Cosine:
    """Exact features for the cosine kernel ``k(a, b) = a.b / (|a| |b|)``: ``phi(a) = a / |a|``."""

    kernel = "cosine"

    def fit(self, X) -> Cosine:
        d = X if isinstance(X, int | np.integer) else check_matrix(X, "X").shape[1]
        self.n_features_in_ = int(d)
        return self

    @property
    def n_features_out_(self) -> int:
        return self.n_features_in_

    def transform(self, x, out=None, proj=None):
        """Rows of ``x`` over their norms (``proj`` is the Gaussian maps' argument: unused)."""
        if _is_torch(x):
            import torch

            norms = torch.linalg.vector_norm(x, dim=1, keepdim=True)
            if bool((norms == 0).any()):
                raise ValueError(_zero_rows_message(int((norms == 0).sum())))
            return torch.div(x, norms, out=out)
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        if (norms == 0).any():
            raise ValueError(_zero_rows_message(int((norms == 0).sum())))
        return np.divide(x, norms, out=out)

    def get_state(self) -> dict:
        return {"kernel": self.kernel, "n_features_in": self.n_features_in_}

    @classmethod
    def from_state(cls, state: dict) -> Cosine:
        return cls().fit(int(state["n_features_in"]))


def shared_projections(x: np.ndarray, maps) -> list:
    """``x @ W`` for each feature map of ``maps`` (numpy), sharing one product among Gaussian
    maps drawn from the same seed for the same widths (a bandwidth sweep's: ``W = W0 / sigma``,
    so each is the first one's rescaled by its bandwidth ratio); None for a map whose
    ``transform`` computes its own (cosine, or frequencies of another draw)."""
    base: dict = {}
    out = []
    for f in maps:
        if f.kernel != "gaussian" or f.random_state is None:
            out.append(None)
            continue
        key = (f.random_state, f.rff_dim, f.n_features_in_)
        first = base.get(key)
        if first is None:
            proj = x @ f._weights(x, x.dtype)
            base[key] = (f, proj)
            out.append(proj)
            continue
        f0, proj0 = first
        same = np.allclose(f.frequencies_[:, :4] * f.sigma, f0.frequencies_[:, :4] * f0.sigma)
        out.append(proj0 * x.dtype.type(f0.sigma / f.sigma) if same else None)
    return out


def _zero_rows_message(count: int) -> str:
    return (
        f"{count} row(s) have zero norm, where the cosine kernel is undefined; drop them "
        f"or use kernel='gaussian'."
    )


#: Default bandwidth: this fraction of the median pairwise distance (see SPEC's docstring).
DEFAULT_SIGMA_SCALE = 0.5
#: Rows drawn (seeded) for the median pairwise distance of the bandwidth heuristic.
DEFAULT_SIGMA_SAMPLE = 1000


def median_distance(
    X, sample_size: int = DEFAULT_SIGMA_SAMPLE, random_state: int | None = 0
) -> float:
    """Median pairwise Euclidean distance on a seeded subsample of at most ``sample_size`` rows.

    This is the default bandwidth heuristic: ``sigma = scale * median_distance(X)``.
    """
    X = check_matrix(X, "X")
    n = X.shape[0]
    if n < 2:
        raise ValueError(
            "the median-distance heuristic needs at least 2 samples; pass sigma explicitly."
        )
    rng = np.random.default_rng(random_state)
    idx = np.sort(rng.choice(n, size=min(n, sample_size), replace=False))
    a = X[idx].astype(np.float64)
    sq = np.einsum("ij,ij->i", a, a)
    d2 = sq[:, None] + sq[None, :] - 2.0 * (a @ a.T)
    iu = np.triu_indices(a.shape[0], k=1)
    med = float(np.sqrt(np.median(np.maximum(d2[iu], 0.0))))
    if med <= 0:
        raise ValueError(
            "the sampled rows are all identical, so the median distance is 0; pass sigma explicitly."
        )
    return med


def resolve_sigma(
    A,
    kernel: str,
    sigma: float | None,
    name: str,
    scale: float = DEFAULT_SIGMA_SCALE,
    sample_size: int = DEFAULT_SIGMA_SAMPLE,
    random_state: int | None = 0,
) -> float | None:
    """The bandwidth to use: None for cosine, ``sigma`` when given, else ``scale * median``."""
    if kernel == "cosine":
        return None
    if sigma is not None:
        return check_positive(sigma, name)
    try:
        return scale * median_distance(A, sample_size, random_state)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None


def make_feature_map(
    kernel: str, sigma: float | None, rff_dim: int, random_state, name: str = "kernel"
):
    """Build an unfitted feature map for a kernel name."""
    check_kernel(kernel, name)
    if kernel == "cosine":
        return Cosine()
    return GaussianRFF(sigma, rff_dim, random_state)


def feature_map_from_state(state: dict):
    kernel = state["kernel"]
    if kernel == "cosine":
        return Cosine.from_state(state)
    if kernel == "gaussian":
        return GaussianRFF.from_state(state)
    raise ValueError(
        f"unknown feature-map kernel {kernel!r} in saved state; expected 'gaussian' or 'cosine'."
    )
