"""The weight-free encoders' constants and the one integer rule both of their code paths
(torch in :mod:`speclens.encoders.classical`, numpy in :mod:`speclens.encoders.classical_numpy`)
share."""

HUE_BINS = 12
ORIENTATION_BINS = 18
TOP_FRACTION = 0.10
PIXEL_GRID = 16
CELL_GRID = 4
EPS = 1e-12


def cell_of(idx, rows: int, cols: int):
    """The grid cell (row-major over ``CELL_GRID x CELL_GRID``) of each flat pixel index of a
    ``rows x cols`` gradient image (numpy or torch integers)."""
    return (idx // cols) * CELL_GRID // rows * CELL_GRID + (idx % cols) * CELL_GRID // cols
