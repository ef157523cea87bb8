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


def frequency_splits(feature_x, feature_y, seed: int = 0, splits: int = SPLITS) -> list:
    """For ``splits`` random halvings of the frequencies: two ``(columns, scale, m_x)`` of the
    feature layout ``[phi_X, phi_Y]``, each a feature map of half the frequencies (rescaled to
    its own width); an empty list when no side has random features."""
    gaussian = [f for f in (feature_x, feature_y) if f.kernel == "gaussian"]
    if not gaussian:
        return []
    D, m_x = gaussian[0].rff_dim, feature_x.n_features_out_
    rng = np.random.default_rng([int(seed), 17])
    out = []
    for _ in range(splits):
        order = rng.permutation(D)
        pair = []
        for chosen in (np.sort(order[: D // 2]), np.sort(order[D // 2 : 2 * (D // 2)])):
            cx, sx = _columns(feature_x, 0, chosen)
            cy, sy = _columns(feature_y, m_x, chosen)
            pair.append((np.concatenate([cx, cy]), np.concatenate([sx, sy]), cx.size))
        out.append(pair)
    return out


def _ends(state: GramState, part, eta, n_modes, seed) -> np.ndarray:
    cols, scale, m_x = part
    sub = state.gram_sum[np.ix_(cols, cols)] * np.outer(scale, scale)
    half = GramState(sub, state.count, m_x)
    modes = solve_modes(
        gram_from_state(half, eta), m_x, n_modes, "auto", seed, state.count, spectrum=False
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
    halvings = frequency_splits(feature_x, feature_y, seed, splits)
    if not halvings or state.identical:
        return np.zeros(2 * n_modes)
    squares = [
        (_ends(state, a, eta, n_modes, seed) - _ends(state, b, eta, n_modes, seed)) ** 2
        for a, b in halvings
    ]
    return np.sqrt(np.mean(squares, axis=0) / 4.0)
