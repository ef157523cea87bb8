"""The mathematics of SPEC: feature maps, Gram accumulator, eigensolver, scores, exact reference.

Imports numpy, scipy and (optionally) torch only: no Prefect, Dask, Zarr or file system.
"""

from speclens.spec.eigen import Modes, factor_gram, score_weights, solve_modes
from speclens.spec.estimator import SPEC, resolve_device
from speclens.spec.exact import EXACT_MAX_SAMPLES, exact_modes, kernel_matrix
from speclens.spec.features import (
    Cosine,
    GaussianRFF,
    feature_map_from_state,
    make_feature_map,
    median_distance,
    resolve_sigma,
)
from speclens.spec.gram import GramAccumulator, GramState, gram_from_state, merge_states
from speclens.spec.planted import PlantedPair, planted_pair
from speclens.spec.scores import (
    extremes,
    fix_signs,
    merge_extremes,
    signs_from_extremes,
    top_members,
)

__all__ = [
    "SPEC",
    "EXACT_MAX_SAMPLES",
    "Cosine",
    "GaussianRFF",
    "GramAccumulator",
    "GramState",
    "Modes",
    "PlantedPair",
    "exact_modes",
    "extremes",
    "factor_gram",
    "feature_map_from_state",
    "fix_signs",
    "gram_from_state",
    "kernel_matrix",
    "make_feature_map",
    "median_distance",
    "merge_extremes",
    "merge_states",
    "planted_pair",
    "resolve_device",
    "resolve_sigma",
    "score_weights",
    "signs_from_extremes",
    "solve_modes",
    "top_members",
]
