"""SPEC-align adapter: a small map trained on frozen embeddings X so that X's kernel also
captures the groups of a reference embedding Y of the same samples.

``fit_adapter(X_train, Y_train, ...)`` trains ``f`` (linear, or residual MLP; both start at
the identity) on mini-batches with

    loss = spec_diff_loss(f(x), y, which='y_over_x') + preserve_weight * preservation(f(x), x)

``which='y_over_x'`` (default) is the reference's groups that X misses (X = the side being
trained, as in ``spec_diff_loss``); 'max' also penalises groups only X has.

The preservation term keeps X's own structure. ``'neighbours'`` (default): the mean KL
divergence between each row's near-neighbour distribution in X and in ``f(X)`` (softmax of
``-d^2 / 2s^2``, ``s`` a low quantile of the batch's distances, per side, so scale-free). It
asks only that X's near neighbours stay near, which leaves the global kernel free to take on
the reference's groups. With no term, or with ``'kernel'`` (mean squared difference of the
batch kernels of ``f(x)`` and x), the adapter ties the reference's groups together by giving up
X's own; with ``'neighbours'`` the gap closes as far and X's groups stay intact. ``'identity'``
(``|f(x) - x|^2 / |x - mean|^2``) also keeps them but blocks the alignment. The default weight
0.01 closes the gap further than a larger one on the embedded sample and still keeps a planted
pair's own groups; on embeddings whose own neighbours carry little (raw pixels) the term can
cost more alignment than it saves: set ``preserve_weight=0`` there. The measurements (a
planted pair, and hog aligned to grad-hist with benchmarks/align.py) are in
docs/benchmarks.md, "Align adapter defaults".
Arrays in, arrays out, no file system: ``Adapter.state_dict()``
returns plain arrays and a JSON-able config for the caller to save, ``Adapter.from_state``
rebuilds it. Seeded and deterministic for a given device and torch thread count (float32
training is chaotic enough that 1 and 2 CPU threads end at visibly different maps; the align
flow records both).
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from speclens.spec.adapter_config import (
    AdapterConfig,
    check_adapter_options,
    default_batch_size,
)
from speclens.spec.align import SpecDiffLoss, batch_sigma, exact_kernel, pairwise_sq_dists
from speclens.spec.features import DEFAULT_SIGMA_SAMPLE, median_distance, resolve_sigma
from speclens.spec.validation import check_int, check_pair


class _Residual(torch.nn.Module):
    """``x + W2 gelu(W1 x + b1) + b2`` with ``W2 = 0`` at init: starts as the identity."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.inner = torch.nn.Linear(dim, hidden)
        self.outer = torch.nn.Linear(hidden, dim)
        torch.nn.init.zeros_(self.outer.weight)
        torch.nn.init.zeros_(self.outer.bias)

    def forward(self, x):
        return x + self.outer(torch.nn.functional.gelu(self.inner(x)))


def _build(config: AdapterConfig) -> torch.nn.Module:
    if config.kind == "linear":
        lin = torch.nn.Linear(config.dim_in, config.dim_in)
        with torch.no_grad():
            lin.weight.copy_(torch.eye(config.dim_in))
            lin.bias.zero_()
        return lin
    return _Residual(config.dim_in, config.hidden)


@dataclass
class Adapter:
    """A trained map from X's space to the aligned space; ``log`` holds one dict per epoch."""

    config: AdapterConfig
    module: torch.nn.Module
    log: list[dict] = field(default_factory=list)
    #: output factor that gives the aligned training rows X_train's median pairwise distance
    scale: float = 1.0

    def transform(self, X, chunk_rows: int = 65536) -> np.ndarray:
        """The aligned embedding of ``X`` (n, dim_in), float32 numpy, ``chunk_rows`` at a time
        (so a large embedding never passes through the device at once)."""
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.config.dim_in:
            raise ValueError(
                f"X must have shape (n, {self.config.dim_in}) like the training embedding, "
                f"got {X.shape}."
            )
        p = next(self.module.parameters())
        out = np.empty(X.shape, dtype=np.float32)
        with torch.no_grad():
            for a in range(0, X.shape[0], check_int(chunk_rows, "chunk_rows")):
                part = torch.as_tensor(X[a : a + chunk_rows], dtype=p.dtype, device=p.device)
                out[a : a + chunk_rows] = (self.module(part) * self.scale).cpu().numpy()
        return out

    def state_dict(self) -> dict:
        """``{'config': dict, 'weights': {name: ndarray}, 'log': list}`` (plain types)."""
        weights = {k: v.detach().cpu().numpy() for k, v in self.module.state_dict().items()}
        return {
            "config": asdict(self.config),
            "weights": weights,
            "scale": self.scale,
            "log": copy.deepcopy(self.log),
        }

    @classmethod
    def from_state(cls, state: dict, device: str = "cpu") -> Adapter:
        config = AdapterConfig(**state["config"])
        module = _build(config).to(torch.float32)
        module.load_state_dict(
            {k: torch.as_tensor(np.asarray(v)) for k, v in state["weights"].items()}
        )
        return cls(
            config,
            module.to(device).eval(),
            list(state.get("log", [])),
            float(state.get("scale", 1.0)),
        )


def _preservation(kind, fx, x, config, sigma_x):
    if kind == "none":
        return fx.new_zeros(())
    if kind == "neighbours":
        return _neighbour_kl(x, fx, config.neighbour_quantile)
    if kind == "identity":
        spread = ((x - x.mean(dim=0)) ** 2).sum(dim=1).mean()
        return ((fx - x) ** 2).sum(dim=1).mean() / spread
    sig_f = None if config.kernel_x == "cosine" else batch_sigma(fx, config.sigma_scale)
    k_f = exact_kernel(fx, config.kernel_x, sig_f)
    k_x = exact_kernel(x, config.kernel_x, sigma_x)
    return ((k_f - k_x) ** 2).mean()


def _neighbour_probs(a, quantile):
    """Row-wise softmax of ``-d^2 / (2 s^2)`` over the other rows, ``s`` the ``quantile`` of the
    batch's pairwise distances (so only near neighbours get weight; scale-free)."""
    d2 = pairwise_sq_dists(a)
    iu = torch.triu_indices(a.shape[0], a.shape[0], offset=1, device=a.device)
    s2 = torch.quantile(d2[iu[0], iu[1]], quantile).clamp_min(1e-30)
    eye = torch.eye(a.shape[0], dtype=torch.bool, device=a.device)
    return torch.log_softmax((-d2 / (2.0 * s2)).masked_fill(eye, float("-inf")), dim=1), eye


def _neighbour_kl(x, fx, quantile):
    """Mean over rows of KL(P_X(. | i) || P_f(. | i)): X's near neighbours stay near."""
    log_p, eye = _neighbour_probs(x, quantile)
    log_q, _ = _neighbour_probs(fx, quantile)
    p = log_p.exp()
    return (p * (log_p - log_q)).masked_fill(eye, 0.0).sum(dim=1).mean()


def fit_adapter(
    X_train, Y_train, kind: str = "linear", device: str = "cpu", on_epoch=None, **options
) -> Adapter:
    """Train an adapter on paired rows of X (to be aligned) and Y (the reference).

    ``options`` are :class:`AdapterConfig` fields: ``kernel_x`` / ``kernel_y``, ``sigma_y``
    (fixed; None = ``sigma_scale`` x median distance of Y_train, as ``SPEC``), ``sigma_x``
    (X's own kernel in the preservation term; None = same heuristic on X_train), ``eta``,
    ``which`` ('max', 'y_over_x' or 'x_over_y'), ``method`` ('exact' or 'power'),
    ``preserve`` ('neighbours', 'kernel', 'identity' or 'none'), ``preserve_weight``,
    ``neighbour_quantile``, ``epochs``,
    ``batch_size``, ``lr``, ``weight_decay``, ``hidden`` (MLP), ``random_state``.
    ``device``: 'cpu', 'cuda[:N]' or 'auto' (CUDA when present). ``on_epoch(entry)`` is called
    with each epoch's log entry (progress reporting).
    The adapted side's bandwidth is the batch heuristic, so rescaling cannot game the loss.
    """
    X, Y = check_pair(X_train, Y_train, "X_train", "Y_train")
    config, sigma_x = _configure(X, Y, kind, options)
    dev = _device(device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.random_state)
        module = _build(config).to(dev)
    xt = torch.as_tensor(X, dtype=torch.float32, device=dev)
    yt = torch.as_tensor(Y, dtype=torch.float32, device=dev)
    step = _Step(module, config, sigma_x)
    gen = torch.Generator().manual_seed(config.random_state)
    n, bs = X.shape[0], min(config.batch_size, X.shape[0])
    log = []
    for epoch in range(config.epochs):
        order = torch.randperm(n, generator=gen).to(dev)
        # full batches only: equal-size kernels
        sums = [
            step(xt[order[a : a + bs]], yt[order[a : a + bs]]) for a in range(0, n - bs + 1, bs)
        ]
        mean = np.mean(sums, axis=0) if sums else np.zeros(3)
        log.append({"epoch": epoch + 1, "loss": mean[0], "spec_diff": mean[1], "preserve": mean[2]})
        if on_epoch is not None:
            on_epoch(log[-1])
    module.eval()
    adapter = Adapter(config, module, log)
    # the loss is scale-free on the adapted side; pin the scale to X's so that distances (and
    # a bandwidth chosen for X) stay commensurate
    aligned = adapter.transform(X)
    adapter.scale = median_distance(X, DEFAULT_SIGMA_SAMPLE, config.random_state) / median_distance(
        aligned, DEFAULT_SIGMA_SAMPLE, config.random_state
    )
    return adapter


def _configure(X, Y, kind: str, options: dict) -> tuple[AdapterConfig, float | None]:
    """The full configuration (batch size and both bandwidths resolved) and X's bandwidth."""
    check_adapter_options({"kind": kind, **options})
    config = AdapterConfig(kind=kind, dim_in=X.shape[1], **options)
    if config.batch_size is None:
        config.batch_size = default_batch_size(X.shape[0])
    opts = (config.sigma_scale, DEFAULT_SIGMA_SAMPLE, config.random_state)
    config.sigma_x = resolve_sigma(X, config.kernel_x, config.sigma_x, "sigma_x", *opts)
    config.sigma_y = resolve_sigma(Y, config.kernel_y, config.sigma_y, "sigma_y", *opts)
    return config, config.sigma_x


def _device(device: str):
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class _Step:
    """One optimiser step on a batch: SPEC-diff loss plus the weighted preservation term;
    returns (loss, SPEC-diff, preservation) as floats."""

    def __init__(self, module, config: AdapterConfig, sigma_x):
        self.module, self.config, self.sigma_x = module, config, sigma_x
        self.loss_fn = SpecDiffLoss(
            kernel_x=config.kernel_x,
            kernel_y=config.kernel_y,
            sigma_x=None,
            sigma_y=config.sigma_y,
            eta=config.eta,
            which=config.which,
            method=config.method,
            rff_dim=config.rff_dim,
            random_state=config.random_state,
            sigma_scale=config.sigma_scale,
        )
        self.opt = torch.optim.Adam(
            module.parameters(), lr=config.lr, weight_decay=config.weight_decay
        )

    def __call__(self, x, y) -> list[float]:
        c = self.config
        fx = self.module(x)
        spec = self.loss_fn(fx, y)
        keep = _preservation(c.preserve, fx, x, c, self.sigma_x)
        loss = spec + c.preserve_weight * keep
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return [float(loss.detach()), float(spec.detach()), float(keep.detach())]
