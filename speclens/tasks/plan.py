"""Planning a compare before any pass over the data: per run of a sweep its bandwidths (the
median heuristic on a seeded row sample), its feature count (``rff_dim='auto'``: chosen on a
seeded row sample by the random-feature check), its frequencies (drawn once, saved under the
run), the row blocks, and which runs share a Gram pass (their m x m states must fit)."""

from __future__ import annotations

import functools

import numpy as np

from speclens.errors import InputError
from speclens.spec import make_feature_map, resolve_sigma
from speclens.spec.features import DEFAULT_SIGMA_SAMPLE
from speclens.spec.rff_check import choose_rff_dim
from speclens.storage import urls
from speclens.storage.embedding_store import EmbeddingStore
from speclens.tasks.mapreduce import blocks_for, sample_pairs, save_frequencies
from speclens.tasks.params import CompareParams
from speclens.tasks.uncertainty import plan_draw2


def plan_sweep(
    x_url: str,
    y_url: str,
    run_urls: list[str],
    sweep: list[CompareParams],
    address: str | None = None,
) -> list[dict]:
    """Per run: bandwidths (heuristic on a seeded sample of rows valid in both), the feature
    count (``auto``: chosen on a row sample), frequencies drawn once and saved under its
    run URL, and the row blocks (whole shards) of the map-reduce, the same for every run.
    The row samples of a large store are read on the Dask cluster at ``address``."""
    params = sweep[0]
    sx, sy = EmbeddingStore.open(x_url), EmbeddingStore.open(y_url)
    valid = sx.valid() & sy.valid()
    n = int(valid.sum())
    if n < 2 * params.n_modes + 1:
        raise InputError(
            f"only {n} samples have both embeddings; compare needs more than "
            f"2 * n_modes = {2 * params.n_modes} (lower --n-modes or embed more)."
        )
    blocks = blocks_for(x_url, y_url, sx.n_samples, sx.shard_size * params.block_shards)
    kx, ky = params.kernel_x_used, params.kernel_y_used
    (base_x, base_y), auto_rows = read_samples(blocks, valid, sweep, address)
    sample_ids = sx.sample_ids()[valid] if params.uncertainty else None
    preps = []
    for run_url, p in zip(run_urls, sweep, strict=True):
        sigma_x = _scaled(base_x, p.sigma_x, p.sigma_scale)
        sigma_y = _scaled(base_y, p.sigma_y, p.sigma_scale)
        auto = None
        if p.rff_dim == "auto":
            auto = choose_features(*auto_rows, (sigma_x, sigma_y), p)
        rff_dim = auto.rff_dim if auto else p.rff_dim
        fx = make_feature_map(kx, sigma_x, rff_dim, p.seed).fit(sx.dim)
        fy = make_feature_map(ky, sigma_y, rff_dim, p.seed).fit(sy.dim)
        frequencies = save_frequencies(urls.join(run_url, "frequencies.npz"), fx, fy)
        frequencies2 = plan_draw2(run_url, sample_ids, fx, fy, p) if p.uncertainty else None
        preps.append(
            {
                "n": n,
                "sigma_x": sigma_x,
                "sigma_y": sigma_y,
                "rff_dim": rff_dim,
                "rff_auto": None if auto is None else [list(t) for t in auto.trail],
                "rff_auto_reached": None if auto is None else auto.reached,
                "frequencies": frequencies,
                "frequencies2": frequencies2,
                "blocks": blocks,
                "dx": sx.dim,
                "dy": sy.dim,
            }
        )
    return preps


def read_samples(blocks: list, valid: np.ndarray, sweep: list[CompareParams], address):
    """The bandwidth sample and ``rff_dim='auto'``'s, read in one go: one median per side
    (scale 1: each run's bandwidth is its scale times it) and auto's rows (float64)."""
    params = sweep[0]
    rows = sample_rows(valid, DEFAULT_SIGMA_SAMPLE, params.seed)
    wants_auto = any(p.rff_dim == "auto" for p in sweep)
    extra = sample_rows(valid, AUTO_SAMPLE, params.seed + 1) if wants_auto else rows[:0]
    both = np.union1d(rows, extra)
    bx, by = sample_pairs(blocks, both, address)
    at = functools.partial(np.searchsorted, both)
    opts = (1.0, DEFAULT_SIGMA_SAMPLE, params.seed)
    kernels = (params.kernel_x_used, params.kernel_y_used)
    given = (params.sigma_x, params.sigma_y)
    medians = tuple(
        resolve_sigma(a[at(rows)], k, g, name, *opts)
        for a, k, g, name in zip((bx, by), kernels, given, ("sigma_x", "sigma_y"), strict=True)
    )
    return medians, tuple(a[at(extra)].astype(np.float64) for a in (bx, by))


def _scaled(base: float | None, given: float | None, scale: float) -> float | None:
    """A run's bandwidth: None (cosine), the one given, or its scale times the median."""
    return base if base is None or given is not None else scale * base


def sample_rows(valid: np.ndarray, size: int, seed: int) -> np.ndarray:
    """A seeded sample of at most ``size`` of the rows valid in both stores, in row order."""
    rng = np.random.default_rng(seed)
    return np.sort(
        rng.choice(np.flatnonzero(valid), size=min(int(valid.sum()), size), replace=False)
    )


#: Rows of the seeded sample that ``rff_dim='auto'`` measures the random-feature error on.
AUTO_SAMPLE = 2000
#: The first feature count ``rff_dim='auto'`` tries (then doubled).
AUTO_START = 500


def choose_features(x: np.ndarray, y: np.ndarray, sigmas: tuple, params: CompareParams):
    """``rff_dim='auto'``: the feature count whose estimated error of the leading eigenvalues
    on the row sample ``x``, ``y`` is under ``params.rff_target`` (doubling up to
    ``rff_dim_max``)."""
    kernels = (params.kernel_x_used, params.kernel_y_used)

    def features(D):
        maps = [
            make_feature_map(k, s, D, params.seed).fit(a.shape[1])
            for k, s, a in zip(kernels, sigmas, (x, y), strict=True)
        ]
        return np.hstack([maps[0].transform(x), maps[1].transform(y)]), *maps

    start = min(AUTO_START, params.rff_dim_max)
    return choose_rff_dim(
        features,
        params.eta,
        params.n_modes,
        start,
        params.rff_dim_max,
        params.rff_target,
        params.seed,
    )


def feature_width(prep: dict, params: CompareParams) -> int:
    """m: the width of a run's features ``[phi_X, phi_Y]``."""
    kernels = (params.kernel_x_used, params.kernel_y_used)
    dims = (prep["dx"], prep["dy"])
    return sum(
        2 * prep["rff_dim"] if k == "gaussian" else d for k, d in zip(kernels, dims, strict=True)
    )


#: The m x m float64 states one Gram pass may accumulate for a sweep's runs together (halves
#: count twice); a sweep beyond it takes several passes, each over a group of its runs. A
#: worker holds a task's states and, merging, up to five times that: at m = 4,000 a 4-run
#: sweep with the uncertainty (1 GiB) is one pass, at m = 8,000 one run per pass.
PASS_STATE_BYTES = 1 << 30


def pass_groups(preps: list[dict], params: CompareParams) -> list[list[int]]:
    """The runs of a sweep in consecutive groups, each one Gram pass within PASS_STATE_BYTES."""
    groups, size = [[]], 0
    for i, prep in enumerate(preps):
        state = feature_width(prep, params) ** 2 * 8 * (2 if params.uncertainty else 1)
        if groups[-1] and size + state > PASS_STATE_BYTES:
            groups.append([])
            size = 0
        groups[-1].append(i)
        size += state
    return groups
