"""The mathematics of SPEC: feature maps, Gram accumulator, eigensolver, scores, exact reference.

Imports numpy, scipy and (optionally) torch only: no Prefect, Dask, Zarr or file system.
The names below load their module on first use, so ``import speclens.spec.features`` (or a
command that only needs a constant) does not pay for scipy.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "eigen": ("Modes", "factor_gram", "score_weights", "solve_modes"),
    "estimator": ("SPEC", "resolve_device"),
    "exact": ("EXACT_MAX_SAMPLES", "exact_modes", "kernel_matrix"),
    "features": (
        "Cosine",
        "GaussianRFF",
        "feature_map_from_state",
        "make_feature_map",
        "median_distance",
        "resolve_sigma",
    ),
    "gram": ("GramAccumulator", "GramState", "gram_from_state", "merge_states"),
    "planted": ("PlantedPair", "planted_pair"),
    "scores": ("extremes", "fix_signs", "merge_extremes", "signs_from_extremes", "top_members"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str):
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'speclens.spec' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"speclens.spec.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
