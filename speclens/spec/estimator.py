"""The SPEC estimator: streaming fit of the difference of two embeddings' kernels.

scikit-learn style: the constructor stores parameters, ``fit`` / ``partial_fit`` +
``finalize`` compute, fitted state lives in trailing-underscore attributes.
"""

from __future__ import annotations

import numpy as np

from speclens.spec.eigen import SOLVERS, score_weights, state_modes
from speclens.spec.features import (
    DEFAULT_SIGMA_SAMPLE,
    DEFAULT_SIGMA_SCALE,
    make_feature_map,
    resolve_sigma,
)
from speclens.spec.gram import GramAccumulator
from speclens.spec.scores import extremes, merge_extremes, signs_from_extremes, top_members
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
        exp(-1/2) ~ 0.6, which blurs tight groups into their surroundings (measured in
        docs/benchmarks.md, "Bandwidth").
    rff_dim : random frequencies per Gaussian kernel (feature width 2 * rff_dim).
    eta : weight of Y's kernel.
    n_modes : eigenpairs reported at each end of the spectrum.
    solver : 'auto', 'eigh', 'lanczos' or 'mixed' for the reduced eigenproblem.
    random_state : seed of the frequencies (shared by X and Y: common random numbers, so
        identical embeddings use the same map and nearly identical ones nearly cancel), the
        bandwidth subsample and the Lanczos start vector.
    device : 'cpu' (numpy), 'cuda' / 'cuda:N' (torch) or 'auto'.
    dtype : precision of the features and per-block products; sums are float64.
    chunk_rows : rows per block in ``fit`` / ``transform`` (bounds memory).
    uncertainty : also estimate every mode's uncertainty (``uncertainty_``): ``fit`` then
        accumulates the Gram per half of the samples and makes a second pass
        (:mod:`speclens.spec.crossfit`, :mod:`speclens.spec.inference`).
    confidence : level of the intervals (0.9: 90%).

    Fitted attributes
    -----------------
    eigenvalues_ : (2 * n_modes,) the n_modes largest (descending) then the n_modes smallest
        (ascending, i.e. decreasing magnitude for negative values).
    spec_diff_ : {'x_over_y': largest eigenvalue, 'y_over_x': minus the smallest, 'max': larger}.
    spectrum_ : every eigenvalue of the reduced problem (the nonzero spectrum of Lambda),
        descending; empty above rank ``SPECTRUM_MAX``. ``abs(eigenvalues_) / abs(spectrum_).sum()``
        is each mode's share of the spectrum's absolute mass. Identical inputs (same rows bit
        for bit, same feature map) are detected while accumulating: every eigenvalue is then
        exactly 0 and the spectrum empty.
    signs_ : +1 or -1 per mode, fixed over the fitted rows (each mode's largest-magnitude
        entry positive), so ``transform`` of any subset of rows equals those rows of the whole.
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
        sigma_sample=DEFAULT_SIGMA_SAMPLE,
        chunk_rows=8192,
        uncertainty=False,
        confidence=0.9,
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
        self.uncertainty = uncertainty
        self.confidence = confidence

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
        if not 0.0 < float(self.confidence) < 1.0:
            raise ValueError(
                f"confidence must be between 0 and 1 (e.g. 0.9 for 90% intervals), got "
                f"{self.confidence!r}."
            )
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
        self.accumulator_ = self._new_accumulator()

    def _new_accumulator(self) -> GramAccumulator:
        backend, device = resolve_device(self.device)
        return GramAccumulator(
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
        """Solve the eigenproblem from the Gram accumulated by ``partial_fit``. The mode signs
        need the fitted rows once more: pass every chunk to ``partial_fit_signs`` (or all rows
        to ``fit_signs``) before ``transform``."""
        if not hasattr(self, "accumulator_"):
            raise ValueError("SPEC has seen no data; call fit(X, Y) or partial_fit(x, y) first.")
        acc = self.accumulator_
        return self.solve(acc.state(), acc.feature_x, acc.feature_y)

    def solve(self, state, feature_x=None, feature_y=None, signs=None) -> SPEC:
        """Solve from an accumulated ``GramState`` (e.g. merged from distributed workers).

        ``feature_x`` / ``feature_y``: the fitted feature maps the state was accumulated
        with. Without them the estimator reports eigenvalues, spectrum and SPEC-diff, and its
        scoring methods say what is missing. ``signs``: +1 or -1 per mode, the
        largest-magnitude rule applied over every fitted row (e.g. by a distributed scoring
        pass); otherwise fix them with ``fit_signs`` / ``partial_fit_signs``.
        """
        self._validate_params()
        self._set_feature_maps(state, feature_x, feature_y)
        modes = state_modes(state, self.eta, self.n_modes, self.solver, self.random_state)
        self.gram_state_ = state
        self.n_samples_ = int(state.count)
        self.rank_ = modes.rank
        self.factorization_ = modes.factorization
        self.factor_ = modes.factor
        self.solver_ = modes.solver
        self.eigenvalues_ = modes.eigenvalues
        self.spectrum_ = modes.spectrum
        self.directions_ = modes.directions
        self.weights_ = score_weights(
            modes.directions, modes.eigenvalues, state.m_x, self.eta, state.count
        )
        top, bottom = float(modes.eigenvalues[0]), float(modes.eigenvalues[self.n_modes])
        self.spec_diff_ = {"x_over_y": top, "y_over_x": -bottom, "max": max(top, -bottom)}
        self.extremes_ = None
        self.signs_ = None if signs is None else _check_signs(signs, 2 * self.n_modes)
        return self

    def _set_feature_maps(self, state, feature_x, feature_y) -> None:
        """Keep the feature maps that score samples: the ones given, or the fitted ones when
        they fit the state's layout; otherwise none (scoring then says why it cannot)."""
        if (feature_x is None) != (feature_y is None):
            raise ValueError("pass both feature_x and feature_y to solve, or neither.")
        if feature_x is None:
            feature_x = getattr(self, "feature_x_", None)
            feature_y = getattr(self, "feature_y_", None)
            if feature_x is not None and not _fits(state, feature_x, feature_y):
                feature_x = feature_y = None
        elif not _fits(state, feature_x, feature_y):
            raise ValueError(
                f"the feature maps give {feature_x.n_features_out_} + "
                f"{feature_y.n_features_out_} features but the Gram state is "
                f"{state.width} wide with m_x={state.m_x}; pass the maps the "
                f"state was accumulated with."
            )
        self.feature_x_, self.feature_y_ = feature_x, feature_y
        self.sigma_x_ = getattr(feature_x, "sigma", None)
        self.sigma_y_ = getattr(feature_y, "sigma", None)
        acc = getattr(self, "accumulator_", None)
        if feature_x is None:
            self.__dict__.pop("accumulator_", None)
        elif acc is None or acc.feature_x is not feature_x or acc.feature_y is not feature_y:
            backend, device = resolve_device(self.device)
            self.accumulator_ = GramAccumulator(
                feature_x, feature_y, self.dtype, backend, device, self.chunk_rows
            )

    def fit(self, X, Y, keys=None) -> SPEC:
        """Fit on all rows of X and Y, streamed in blocks of ``chunk_rows``; the mode signs
        are fixed over the same rows. With ``uncertainty=True`` the Gram is accumulated per
        half of the samples (``keys``, default the row indices, decide the halves) and a second
        pass sets ``uncertainty_`` (:mod:`speclens.spec.crossfit`)."""
        if self.uncertainty:
            from speclens.spec.assessment import fit_assessed

            X, Y = check_pair(X, Y)
            self._validate_params()
            self.__dict__.pop("accumulator_", None)
            self.uncertainty_ = fit_assessed(self, X, Y, keys)
            return self
        X, Y = self._fit_gram(X, Y)
        return self.fit_signs(X, Y)

    def _fit_gram(self, X, Y):
        X, Y = check_pair(X, Y)
        for attr in ("accumulator_", "eigenvalues_"):
            self.__dict__.pop(attr, None)
        self._start(X, Y)
        self.accumulator_.update(X, Y)
        self.finalize()
        return X, Y

    # ---- scores -------------------------------------------------------------------------
    def raw_scores(self, X, Y) -> np.ndarray:
        """Scores before the sign convention: ``phi(x, y) @ weights_`` for every row."""
        self._check_scorable()
        X, Y = check_pair(X, Y)
        acc = self.accumulator_
        out = np.empty((X.shape[0], self.weights_.shape[1]), dtype=np.float64)
        for start in range(0, X.shape[0], acc.block_rows):
            stop = min(start + acc.block_rows, X.shape[0])
            phi = acc.features(acc._as_backend(X[start:stop]), acc._as_backend(Y[start:stop]))
            out[start:stop] = _to_numpy(phi).astype(np.float64) @ self.weights_
        return out

    def partial_fit_signs(self, x_chunk, y_chunk) -> SPEC:
        """Fold one chunk of the fitted rows into the sign convention (each mode's
        largest-magnitude entry over all rows seen is positive); ``signs_`` is final once
        every fitted row has been passed."""
        self._take_extremes(self.raw_scores(x_chunk, y_chunk))
        return self

    def fit_signs(self, X, Y) -> SPEC:
        """Fix the mode signs over the fitted rows ``X``, ``Y`` (``fit`` does this)."""
        self.extremes_ = None
        return self.partial_fit_signs(X, Y)

    def _take_extremes(self, raw: np.ndarray) -> None:
        ext = extremes(raw)
        if getattr(self, "extremes_", None) is not None:
            ext = merge_extremes(self.extremes_, ext)
        self.extremes_ = ext
        self.signs_ = signs_from_extremes(ext)

    def transform(self, X, Y) -> np.ndarray:
        """(n, 2 * n_modes) scores in the order of ``eigenvalues_``: entries of the unit
        eigenvectors of the difference kernel for the fitted samples, with the signs fixed
        at fit time, so the scores of any subset of rows are those rows of the whole."""
        self._check_scorable()
        if getattr(self, "signs_", None) is None:
            raise ValueError(
                "the mode signs are not fixed yet; call fit_signs(X, Y) with the fitted rows "
                "(or partial_fit_signs on each chunk) before transform (fit does this)."
            )
        return self.raw_scores(X, Y) * self.signs_

    def fit_transform(self, X, Y) -> np.ndarray:
        """``fit(X, Y).transform(X, Y)`` with one scoring pass instead of two."""
        X, Y = self._fit_gram(X, Y)
        raw = self.raw_scores(X, Y)
        self.extremes_ = None
        self._take_extremes(raw)
        return raw * self.signs_

    def members(self, scores: np.ndarray, k: int) -> np.ndarray:
        """Top-``k`` row indices per mode, (2 * n_modes, k), highest score first."""
        scores = check_matrix(scores, "scores")
        return top_members(scores, k)

    def _check_scorable(self) -> None:
        if not hasattr(self, "weights_"):
            raise ValueError("SPEC is not fitted; call fit(X, Y) or partial_fit + finalize first.")
        if getattr(self, "feature_x_", None) is None:
            raise ValueError(
                "SPEC was solved from a Gram state without its feature maps, so it cannot "
                "score samples; pass them: solve(state, feature_x, feature_y)."
            )


def _fits(state, feature_x, feature_y) -> bool:
    m_x, m_y = feature_x.n_features_out_, feature_y.n_features_out_
    return state.m_x == m_x and state.width == m_x + m_y


def _check_signs(signs, n: int) -> np.ndarray:
    signs = np.asarray(signs, dtype=np.float64)
    if signs.shape != (n,) or not np.all(np.abs(signs) == 1.0):
        raise ValueError(f"signs must hold +1 or -1 for each of the {n} modes, got {signs!r}.")
    return signs


def _to_numpy(a) -> np.ndarray:
    if isinstance(a, np.ndarray):
        return a
    return a.detach().cpu().numpy()
