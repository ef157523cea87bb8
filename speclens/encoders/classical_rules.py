"""The weight-free encoders' constants and the arithmetic both of their code paths (torch in
:mod:`speclens.encoders.classical`, numpy in :mod:`speclens.encoders.classical_numpy`) share,
written once so that both do the same float32 operations in the same order."""

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


def best_channel_gradients(img, where):
    """3x3 Sobel per channel of float32 ``img`` ``(B, 3, H, W)`` (H, W >= 3) on the valid
    region, keeping at each pixel the channel of largest magnitude (as HOG does): ``(gx, gy,
    squared magnitude)``, each ``(B, H - 2, W - 2)``. Numpy or torch arrays, with that library's
    ``where``."""
    # separable slices: smooth [1, 2, 1] across, difference along
    across_rows = img[:, :, :-2, :] + 2.0 * img[:, :, 1:-1, :] + img[:, :, 2:, :]
    across_cols = img[:, :, :, :-2] + 2.0 * img[:, :, :, 1:-1] + img[:, :, :, 2:]
    gx = across_rows[:, :, :, 2:] - across_rows[:, :, :, :-2]
    gy = across_cols[:, :, 2:, :] - across_cols[:, :, :-2, :]
    mag2 = gx * gx + gy * gy
    # per pixel, the channel with the largest magnitude (elementwise, no reduction)
    best_gx, best_gy, best_m2 = gx[:, 0], gy[:, 0], mag2[:, 0]
    for ch in (1, 2):
        take = mag2[:, ch] > best_m2
        best_gx = where(take, gx[:, ch], best_gx)
        best_gy = where(take, gy[:, ch], best_gy)
        best_m2 = where(take, mag2[:, ch], best_m2)
    return best_gx, best_gy, best_m2
