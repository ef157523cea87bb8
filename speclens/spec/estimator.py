"""The SPEC estimator: streaming fit of the difference of two embeddings' kernels.

scikit-learn style: the constructor stores parameters, ``fit`` / ``partial_fit`` +
``finalize`` compute, fitted state lives in trailing-underscore attributes.
"""

from __future__ import annotations

import numpy as np

from speclens.spec.eigen import SOLVERS, score_weights, solve_modes
from speclens.spec.features import DEFAULT_SIGMA_SCALE, make_feature_map, resolve_sigma
from speclens.spec.gram import GramAccumulator, gram_from_state
from speclens.spec.scores import fix_signs, top_members
from speclens.spec.validation import (
    check_dtype,
    check_int,
    check_kernel,
    check_matrix,
    check_pair,
    check_positive,
)


def resolve_device(device: str) -> tuple[str, str]:
    """Map a device name to (backend, device): 'cpu' -> numpy; 'cuda[:i]' -> torch; 'auto'."""
    if device == "auto":
        try:
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
        except ImportError:
            device = "cpu"
    if device == "cpu":
        return "numpy", "cpu"
    if isinstance(device, str) and device.startswith("cuda"):
        return "torch", device
    raise ValueError(f"device must be 'cpu', 'cuda', 'cuda:N' or 'auto', got {device!r}.")


class SPEC:
    """Spectral Pairwise Embedding Comparison (Jalali, Dibaei Nia, Farnia; ICML 2025).

    Finds groups of samples that embedding X clusters together and embedding Y does not
    (positive eigenvalues of ``Lambda = K_X/n - eta K_Y/n``) and the reverse (negative ones).

    Parameters
    ----------
    kernel_x, kernel_y : 'gaussian' (random Fourier features) or 'cosine' (exact).
    sigma_x, sigma_y : Gaussian bandwidths. ``None`` uses the median-distance heuristic:
        ``sigma_scale`` (default 0.5) times the median pairwise distance of up to
        ``sigma_sample`` rows drawn with ``random_state`` (from the first chunk under
        ``partial_fit``). Recorded as ``sigma_x_`` / ``sigma_y_``. Half the median, not the
        full median: at the full median a background pair still has kernel value
        exp(-1/2) ~ 0.6, which blurs tight groups into their surroundings (planted groups are
        recovered with ~0.6 precision at 1.0 and 1.0 at 0.5; DESIGN.md reports the same for
        the embedded default's colour modes).
    rff_dim : random frequencies per Gaussian kernel (feature width 2 * rff_dim).
    eta : weight of Y's kernel.
    n_modes : eigenpairs reported at each end of the spectrum.
    solver : 'auto', 'eigh' or 'lanczos' for the reduced eigenproblem.
    random_state : seed of the frequencies (shared by X and Y: common random numbers, so
        identical embeddings give an exactly zero difference), the bandwidth subsample and
        the Lanczos start vector.
    device : 'cpu' (numpy), 'cuda' / 'cuda:N' (torch) or 'auto'.
    dtype : precision of the features and per-block products; sums are float64.
    chunk_rows : rows per block in ``fit`` / ``transform`` (bounds memory).

    Fitted attributes
    -----------------
    eigenvalues_ : (2 * n_modes,) the n_modes largest (descending) then the n_modes smallest
        (ascending, i.e. decreasing magnitude for negative values).
    spec_diff_ : {'x_over_y': largest eigenvalue, 'y_over_x': minus the smallest, 'max': larger}.
    spectrum_ : every eigenvalue of the reduced problem (the nonzero spectrum of Lambda),
        descending; empty above rank ``SPECTRUM_MAX``. ``abs(eigenvalues_) / abs(spectrum_).sum()``
        is each mode's share of the spectrum's absolute mass.
    sigma_x_, sigma_y_, feature_x_, feature_y_, gram_state_, n_samples_, rank_, weights_.
    """

    def __init__(
        self,
        kernel_x="gaussian",
        kernel_y="gaussian",
        sigma_x=None,
        sigma_y=None,
        rff_dim=2000,
        eta=1.0,
        n_modes=10,
        solver="auto",
        random_state=0,
        device="cpu",
        dtype="float32",
        sigma_scale=DEFAULT_SIGMA_SCALE,
        sigma_sample=1000,
        chunk_rows=8192,
    ):
        self.kernel_x = kernel_x
        self.kernel_y = kernel_y
        self.sigma_x = sigma_x
        self.sigma_y = sigma_y
        self.rff_dim = rff_dim
        self.eta = eta
        self.n_modes = n_modes
        self.solver = solver
        self.random_state = random_state
        self.device = device
        self.dtype = dtype
        self.sigma_scale = sigma_scale
        self.sigma_sample = sigma_sample
        self.chunk_rows = chunk_rows

    # ---- parameters ---------------------------------------------------------------------
    def _validate_params(self) -> None:
        check_kernel(self.kernel_x, "kernel_x")
        check_kernel(self.kernel_y, "kernel_y")
        check_positive(self.sigma_x, "sigma_x", allow_none=True)
        check_positive(self.sigma_y, "sigma_y", allow_none=True)
        check_int(self.rff_dim, "rff_dim")
        check_positive(self.eta, "eta")
        check_int(self.n_modes, "n_modes")
        check_int(self.chunk_rows, "chunk_rows")
        check_int(self.sigma_sample, "sigma_sample", minimum=2)
        check_positive(self.sigma_scale, "sigma_scale")
        check_dtype(self.dtype)
        if self.solver not in SOLVERS:
            raise ValueError(f"solver must be one of {SOLVERS}, got {self.solver!r}.")
        resolve_device(self.device)

    # ---- fitting ------------------------------------------------------------------------
    def _start(self, x, y) -> None:
        self._validate_params()
        opts = (self.sigma_scale, self.sigma_sample, self.random_state)
        self.sigma_x_ = resolve_sigma(x, self.kernel_x, self.sigma_x, "sigma_x", *opts)
        self.sigma_y_ = resolve_sigma(y, self.kernel_y, self.sigma_y, "sigma_y", *opts)
        self.feature_x_ = make_feature_map(
            self.kernel_x, self.sigma_x_, self.rff_dim, self.random_state
        ).fit(x)
        self.feature_y_ = make_feature_map(
            self.kernel_y, self.sigma_y_, self.rff_dim, self.random_state
        ).fit(y)
        backend, device = resolve_device(self.device)
        self.accumulator_ = GramAccumulator(
            self.feature_x_, self.feature_y_, self.dtype, backend, device, self.chunk_rows
        )

    def partial_fit(self, x_chunk, y_chunk) -> SPEC:
        """Accumulate one chunk of paired rows; call ``finalize()`` after the last one."""
        x_chunk, y_chunk = check_pair(x_chunk, y_chunk, "x_chunk", "y_chunk")
        if not hasattr(self, "accumulator_"):
            self._start(x_chunk, y_chunk)
        self.accumulator_.update(x_chunk, y_chunk)
        return self

    def finalize(self) -> SPEC:
        """Solve the eigenproblem from the accumulated Gram."""
        if not hasattr(self, "accumulator_"):
            raise ValueError("SPEC has seen no data; call fit(X, Y) or partial_fit(x, y) first.")
        return self.solve(self.accumulator_.state())

    def solve(self, state, feature_x=None, feature_y=None) -> SPEC:
        """Solve from an accumulated ``GramState`` (e.g. merged from distributed workers).

        Pass the feature maps the state was accumulated with to ``transform`` afterwards.
        """
        if feature_x is not None and feature_y is not None:
            self.feature_x_, self.feature_y_ = feature_x, feature_y
            backend, device = resolve_device(self.device)
            self.accumulator_ = GramAccumulator(
                feature_x, feature_y, self.dtype, backend, device, self.chunk_rows
            )
        self._validate_params()
        G = gram_from_state(state, self.eta)
        modes = solve_modes(G, state.m_x, self.n_modes, self.solver, self.random_state, state.count)
        self.gram_state_ = state
        self.n_samples_ = int(state.count)
        self.rank_ = modes.rank
        self.factorization_ = modes.factorization
        self.solver_ = modes.solver
        self.eigenvalues_ = modes.eigenvalues
        self.spectrum_ = modes.spectrum
        self.directions_ = modes.directions
        self.weights_ = score_weights(
            modes.directions, modes.eigenvalues, state.m_x, self.eta, state.count
        )
        top, bottom = float(modes.eigenvalues[0]), float(modes.eigenvalues[self.n_modes])
        self.spec_diff_ = {"x_over_y": top, "y_over_x": -bottom, "max": max(top, -bottom)}
        return self

    def fit(self, X, Y) -> SPEC:
        """Fit on all rows of X and Y, streamed in blocks of ``chunk_rows``."""
        X, Y = check_pair(X, Y)
        for attr in ("accumulator_", "eigenvalues_"):
            self.__dict__.pop(attr, None)
        self._start(X, Y)
        self.accumulator_.update(X, Y)
        return self.finalize()

    # ---- scores -------------------------------------------------------------------------
    def raw_scores(self, X, Y) -> np.ndarray:
        """Scores before the sign convention: ``phi(x, y) @ weights_`` for every row."""
        self._check_fitted()
        X, Y = check_pair(X, Y)
        acc = self.accumulator_
        out = np.empty((X.shape[0], self.weights_.shape[1]), dtype=np.float64)
        for start in range(0, X.shape[0], acc.block_rows):
            stop = min(start + acc.block_rows, X.shape[0])
            phi = acc.features(acc._as_backend(X[start:stop]), acc._as_backend(Y[start:stop]))
            out[start:stop] = _to_numpy(phi).astype(np.float64) @ self.weights_
        return out

    def transform(self, X, Y) -> np.ndarray:
        """(n, 2 * n_modes) scores in the order of ``eigenvalues_``: entries of the unit
        eigenvectors of the difference kernel for the fitted samples, each mode's sign fixed
        so its largest-magnitude entry (over the rows given) is positive."""
        return fix_signs(self.raw_scores(X, Y))

    def fit_transform(self, X, Y) -> np.ndarray:
        return self.fit(X, Y).transform(X, Y)

    def members(self, scores: np.ndarray, k: int) -> np.ndarray:
        """Top-``k`` row indices per mode, (2 * n_modes, k), highest score first."""
        scores = check_matrix(scores, "scores")
        return top_members(scores, k)

    def _check_fitted(self) -> None:
        if not hasattr(self, "weights_"):
            raise ValueError("SPEC is not fitted; call fit(X, Y) or partial_fit + finalize first.")


def _to_numpy(a) -> np.ndarray:
    if isinstance(a, np.ndarray):
        return a
    return a.detach().cpu().numpy()
