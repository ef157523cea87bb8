"""Input checks for the math core: each failure is one ValueError naming the argument and the fix."""

from __future__ import annotations

import numpy as np

KERNELS = ("gaussian", "cosine")
#: which end of the spectrum an SPEC-align loss lowers, and how it is computed
WHICH = ("x_over_y", "y_over_x", "max")
METHODS = ("power", "exact")
DTYPES = {"float32": np.float32, "float64": np.float64}


def check_matrix(a, name: str) -> np.ndarray:
    """Return ``a`` as a 2-D floating array, refusing empty, 1-D and non-finite input."""
    arr = np.asarray(a)
    if arr.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D array (n_samples, n_features), got shape {arr.shape}; "
            f"reshape it, e.g. {name}.reshape(-1, 1) for a single feature."
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(
            f"{name} is empty (shape {arr.shape}); pass at least one sample and one feature."
        )
    if not np.issubdtype(arr.dtype, np.floating):
        if not np.issubdtype(arr.dtype, np.number):
            raise ValueError(
                f"{name} must hold numbers, got dtype {arr.dtype}; convert it to float."
            )
        arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        bad = np.flatnonzero(~np.isfinite(arr).all(axis=1))
        raise ValueError(
            f"{name} has {bad.size} row(s) with NaN or Inf (first at row {bad[0]}); "
            f"drop or impute those rows before comparing."
        )
    return arr


def check_pair(x, y, x_name: str = "X", y_name: str = "Y") -> tuple[np.ndarray, np.ndarray]:
    """Check two embeddings of the same samples: 2-D, finite, equal row counts."""
    x = check_matrix(x, x_name)
    y = check_matrix(y, y_name)
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"{x_name} has {x.shape[0]} rows but {y_name} has {y.shape[0]}; both must embed the "
            f"same samples in the same order (join them on sample_id first)."
        )
    return x, y


def check_positive(value, name: str, *, allow_none: bool = False) -> float | None:
    if value is None and allow_none:
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive number, got {value!r}.") from None
    if not np.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}; pass a value > 0.")
    return v


def check_int(value, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}; pass a larger value.")
    return int(value)


def check_kernel(kernel: str, name: str) -> str:
    if kernel not in KERNELS:
        raise ValueError(f"{name} must be one of {KERNELS}, got {kernel!r}.")
    return kernel


def check_dtype(dtype) -> type:
    key = np.dtype(dtype).name if not isinstance(dtype, str) else dtype
    if key not in DTYPES:
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}.")
    return DTYPES[key]
