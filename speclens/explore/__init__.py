"""From modes to samples: each sample's nearest neighbours, the local agreement of two
embeddings (Jaccard overlap of the neighbour sets) and a 2-D map of the mode scores.

Pure arrays in, arrays out (no Prefect, Dask, Zarr or file system); torch and umap load inside
the functions that use them, so importing this package stays cheap.
"""

from __future__ import annotations

from speclens.explore.map2d import Map2D, mode_map
from speclens.explore.neighbors import (
    EXACT_MAX,
    Neighbors,
    local_agreement,
    nearest,
    recall_queries,
)

__all__ = [
    "EXACT_MAX",
    "Map2D",
    "Neighbors",
    "local_agreement",
    "mode_map",
    "nearest",
    "recall_queries",
]
