"""The part of an eigenvalue's uncertainty due to the random Fourier features alone, from the
accumulated Gram (no pass over the data).

The frequencies of a Gaussian side are split at random into two disjoint halves; each half's
columns of the Gram (a frequency's cos and sin columns, rescaled to a feature map of half the
width) give the eigenvalues that feature map would have produced. Their error variance grows
as 1/D with D frequencies, so two independent half estimates differ by
``4 * var(at D)`` on average: ``rff_error = sqrt(mean((lam_1 - lam_2)^2) / 4)`` over a few
random splits. The X and Y sides use the same split of frequency indices, as they share their
seed (common random numbers). A side with the exact cosine features contributes no error.
"""

from __future__ import annotations

import numpy as np

from speclens.spec.eigen import solve_modes
from speclens.spec.gram import GramState, gram_from_state

#: random splits of the frequencies (each costs two eigensolves of half the width)
SPLITS = 4


def _columns(fmap, offset: int, chosen: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(Gram columns, their rescaling) of one side for the chosen frequency indices."""
    width = fmap.n_features_out_
    if fmap.kernel != "gaussian":
        return np.arange(offset, offset + width), np.ones(width)
    D = fmap.rff_dim
    cols = np.concatenate([chosen, D + chosen]) + offset
    return cols, np.full(cols.size, np.sqrt(D / chosen.size))


def _ends(state: GramState, fx, fy, chosen, eta, n_modes, seed) -> np.ndarray:
    cx, sx = _columns(fx, 0, chosen)
    cy, sy = _columns(fy, state.m_x, chosen)
    cols, scale = np.concatenate([cx, cy]), np.concatenate([sx, sy])
    sub = state.gram_sum[np.ix_(cols, cols)] * np.outer(scale, scale)
    part = GramState(sub, state.count, cx.size)
    modes = solve_modes(
        gram_from_state(part, eta), cx.size, n_modes, "auto", seed, state.count, spectrum=False
    )
    return modes.eigenvalues


def rff_error(
    state: GramState,
    feature_x,
    feature_y,
    eta: float,
    n_modes: int,
    seed: int = 0,
    splits: int = SPLITS,
) -> np.ndarray:
    """Standard deviation of each reported eigenvalue (top block then bottom block) over draws
    of the random frequencies, estimated from half splits of the accumulated ones."""
    gaussian = [f for f in (feature_x, feature_y) if f.kernel == "gaussian"]
    if not gaussian or state.identical:
        return np.zeros(2 * n_modes)
    D = gaussian[0].rff_dim
    rng = np.random.default_rng([int(seed), 17])
    squares = []
    for _ in range(splits):
        order = rng.permutation(D)
        halves = (np.sort(order[: D // 2]), np.sort(order[D // 2 : 2 * (D // 2)]))
        a, b = (_ends(state, feature_x, feature_y, h, eta, n_modes, seed) for h in halves)
        squares.append((a - b) ** 2)
    return np.sqrt(np.mean(squares, axis=0) / 4.0)
