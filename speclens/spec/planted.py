"""Planted-cluster problems with known answers, for tests, benchmarks and the engine demo.

``planted_pair`` draws two embeddings of the same n samples: a group of samples that is
tight in X but spread in Y (SPEC must report it as the top, ``x_over_y`` mode), a group
tight in Y but spread in X (the bottom, ``y_over_x`` mode), and background samples spread in
both.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class PlantedPair:
    X: np.ndarray
    Y: np.ndarray
    group_x: np.ndarray  #: rows tight in X only
    group_y: np.ndarray  #: rows tight in Y only


def planted_pair(
    n: int = 1000,
    dx: int = 16,
    dy: int = 24,
    group_size: int = 100,
    spread: float = 1.0,
    tightness: float = 0.05,
    random_state: int | None = 0,
) -> PlantedPair:
    """X and Y with one group tight in X only and one tight in Y only (disjoint, random rows)."""
    if 2 * group_size > n:
        raise ValueError(f"group_size={group_size} needs n >= {2 * group_size}, got n={n}.")
    rng = np.random.default_rng(random_state)
    X = rng.standard_normal((n, dx)) * spread
    Y = rng.standard_normal((n, dy)) * spread
    rows = rng.permutation(n)
    gx, gy = np.sort(rows[:group_size]), np.sort(rows[group_size : 2 * group_size])
    X[gx] = rng.standard_normal(dx) * spread + rng.standard_normal((group_size, dx)) * tightness
    Y[gy] = rng.standard_normal(dy) * spread + rng.standard_normal((group_size, dy)) * tightness
    return PlantedPair(X, Y, gx, gy)


def peak_bandwidth(p: PlantedPair) -> float:
    """The Gaussian bandwidth at which X's planted group differs most from Y's view of it.

    The group's block of ``K_X - K_Y`` is about ``exp(-a^2 / 2 s^2) - exp(-b^2 / 2 s^2)``
    with ``a`` the median distance within the group in X and ``b`` in Y; it is largest at
    ``s^2 = (b^2 - a^2) / (2 ln(b^2 / a^2))``. A sweep of bandwidths should peak there.
    """
    from scipy.spatial.distance import pdist

    a = float(np.median(pdist(p.X[p.group_x])))
    b = float(np.median(pdist(p.Y[p.group_x])))
    return float(np.sqrt((b * b - a * a) / (2.0 * np.log(b * b / (a * a)))))
