"""What defines an SPEC-align adapter besides its weights (:class:`AdapterConfig`), and the
check of its options: plain Python, so a command can refuse a bad option before torch is
imported (the training itself is :mod:`speclens.spec.adapter`)."""

from __future__ import annotations

from dataclasses import dataclass

from speclens.spec.features import DEFAULT_SIGMA_SCALE
from speclens.spec.validation import WHICH, check_int, check_kernel, check_positive

KINDS = ("linear", "mlp")
PRESERVE = ("kernel", "neighbours", "identity", "none")


@dataclass
class AdapterConfig:
    """Everything that defines a trained adapter besides its weights (JSON-serialisable)."""

    kind: str = "linear"
    dim_in: int = 0
    hidden: int = 64
    kernel_x: str = "gaussian"
    kernel_y: str = "gaussian"
    sigma_x: float | None = None  #: X's own kernel in the preservation term (fixed)
    sigma_y: float | None = None  #: reference bandwidth (fixed; heuristic on Y_train if None)
    eta: float = 1.0
    which: str = "y_over_x"
    method: str = "exact"
    rff_dim: int = 512
    preserve: str = "neighbours"
    preserve_weight: float = 0.01
    epochs: int = 30
    batch_size: int | None = None  #: None: min(256, max(16, n_train // 4)) (>= 4 steps/epoch)
    lr: float = 1e-2
    weight_decay: float = 0.0
    random_state: int = 0
    sigma_scale: float = DEFAULT_SIGMA_SCALE
    neighbour_quantile: float = 0.02  #: distance quantile that sets the 'neighbours' bandwidth


def _check_config(c: AdapterConfig) -> None:
    if c.kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {c.kind!r}.")
    if c.preserve not in PRESERVE:
        raise ValueError(f"preserve must be one of {PRESERVE}, got {c.preserve!r}.")
    if c.which not in WHICH:
        raise ValueError(f"which must be one of {WHICH}, got {c.which!r}.")
    check_kernel(c.kernel_x, "kernel_x")
    check_kernel(c.kernel_y, "kernel_y")
    for name in ("epochs", "hidden", "rff_dim") + (() if c.batch_size is None else ("batch_size",)):
        check_int(getattr(c, name), name)
    if c.batch_size is not None and c.batch_size < 2:
        raise ValueError("batch_size must be >= 2 (a kernel needs pairs).")
    check_positive(c.lr, "lr")
    check_positive(c.eta, "eta")
    if not 0.0 < c.neighbour_quantile < 1.0:
        raise ValueError(f"neighbour_quantile must be in (0, 1), got {c.neighbour_quantile}.")
    if c.preserve_weight < 0:
        raise ValueError(f"preserve_weight must be >= 0, got {c.preserve_weight}.")


def check_adapter_options(options: dict) -> None:
    """Raise ValueError (one sentence naming the option) for options :func:`fit_adapter`
    would refuse, without any data."""
    options = dict(options)
    kind = options.pop("kind", "linear")
    unknown = set(options) - set(AdapterConfig.__dataclass_fields__)
    if unknown:
        raise ValueError(f"unknown adapter option(s) {sorted(unknown)}; see AdapterConfig.")
    _check_config(AdapterConfig(kind=kind, **options))


def default_batch_size(n_train: int) -> int:
    """Rows per step when none is given: at least 4 steps an epoch, at most 256 rows."""
    return min(256, max(16, n_train // 4))
