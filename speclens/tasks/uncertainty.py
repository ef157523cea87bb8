"""The compare passes with their uncertainty (:mod:`speclens.spec.crossfit`), as block
functions and Dask map-reduces beside the plain ones of :mod:`speclens.tasks.mapreduce`.

* ``block_halves`` (pass 1): one Gram state per half of the block's rows; halves merge half by
  half, and their sum is the plain pass's state. A row's half and group come from a seeded
  hash of its sample id, so they do not depend on blocks or row order.
* ``block_scores`` (pass 2): the plain pass's members of the whole fit and the :class:`~speclens.spec.crossfit.ScoreState` of the
  held-out sums, computed with the run's second, independent draw of frequencies.

Workers get URLs, row ranges and the frequencies' digests, never data.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from speclens.errors import InputError
from speclens.spec import GramState
from speclens.spec.assessment import check_halves, half_weights, second_draw
from speclens.spec.crossfit import (
    HalfGram,
    ScorePass,
    assess,
    groups_of,
    mass_norms,
    merge_halves,
)
from speclens.spec.rff_error import rff_error
from speclens.storage import urls
from speclens.storage.arrays import load_npz, save_npz
from speclens.storage.embedding_store import EmbeddingStore
from speclens.tasks.mapreduce import (
    Block,
    Frequencies,
    accumulator,
    all_scores,
    as_blocks,
    finish_members,
    load_feature_maps,
    merge_each,
    merge_member_parts,
    read_ahead,
    read_pair,
    save_frequencies,
    sweep_inputs,
    task_batches,
    top_parts,
    tree,
)


def block_groups(block: Block, rows: np.ndarray, seed: int) -> np.ndarray:
    """The group of each of the block's valid rows (``rows``: global row indices)."""
    ids = EmbeddingStore.open(block.x_url).array("sample_id")[block.start : block.stop]
    return groups_of(ids[rows - block.start], seed)


def read_grouped(block: Block, seed: int) -> tuple:
    """A block's rows valid in both stores with their groups: (x, y, rows, groups)."""
    x, y, rows = read_pair(block)
    groups = block_groups(block, rows, seed) if rows.size else np.zeros(0, dtype=np.int64)
    return x, y, rows, groups


def block_halves(
    blocks: Block | tuple[Block, ...],
    frequencies: tuple[Frequencies, ...],
    dtype: str,
    seed: int,
    device: str = "cpu",
) -> tuple[tuple, ...]:
    """Pass 1 for one block (or several, folded one after another, the next read while this
    one computes), per run: (half A's Gram state, half B's); each block's rows and groups are
    read once for every run."""
    runs = [HalfGram(functools.partial(accumulator, f, dtype, device)) for f in frequencies]
    read = functools.partial(read_grouped, seed=seed)
    for _, (x, y, rows, groups) in read_ahead(as_blocks(blocks), read):
        if rows.size:
            x, y, projections = sweep_inputs(x, y, [h.halves[0] for h in runs])
            for halves, proj in zip(runs, projections, strict=True):
                halves.update(x, y, groups, proj)
    return tuple(h.states(copy=False) for h in runs)  # the accumulators end here


def halves_mapreduce(
    client,
    blocks: list[Block],
    frequencies: tuple[Frequencies, ...],
    dtype: str,
    seed: int,
    min_rows: int = 1,
    device: str = "cpu",
) -> tuple[tuple, ...]:
    """Per run, both halves' Gram states over all blocks, merged up a tree on the cluster."""
    from dask import delayed

    freq = tuple(frequencies)
    batches = task_batches(client, blocks, min_rows)
    parts = [delayed(block_halves, pure=True)(b, freq, dtype, seed, device) for b in batches]
    return client.compute(tree(parts, functools.partial(merge_each, merge_halves))).result()


@dataclass(frozen=True)
class ScoreJob:
    """What every block of pass 2 shares for one run: both draws' frequencies, how many
    members to keep, the feature dtype, the seed of the halves and the compute device."""

    frequencies: Frequencies
    frequencies2: Frequencies
    k: int
    dtype: str
    seed: int
    device: str = "cpu"


def block_scores(
    blocks: Block | tuple[Block, ...], jobs: tuple[ScoreJob, ...], weights: tuple
) -> tuple[dict, ...]:
    """Pass 2 for one block (or several, the next read while this one computes), per run;
    ``weights``: per run (whole fit, half A, half B, their mass norms), the first three m x c
    each. The rows and groups are read once for every run."""
    passes = [
        ScorePass(
            accumulator(job.frequencies, job.dtype, job.device),
            accumulator(job.frequencies2, job.dtype, job.device),
            *w,
        )
        for job, w in zip(jobs, weights, strict=True)
    ]
    k = jobs[0].k
    empty = np.zeros(0, dtype=np.int64)
    members = tuple(top_parts(np.zeros((0, p.c)), empty, k) for p in passes)
    read = functools.partial(read_grouped, seed=jobs[0].seed)
    for _, (x, y, rows, groups) in read_ahead(as_blocks(blocks), read):
        if not rows.size:
            continue
        x, y, proj = sweep_inputs(x, y, [p.scorer for p in passes])
        x, y, proj2 = sweep_inputs(x, y, [p.scorer2 for p in passes])
        new = tuple(
            top_parts(p.update(x, y, groups, (proj[i], proj2[i]))[:, : p.c], rows, k)
            for i, p in enumerate(passes)
        )
        members = merge_each(functools.partial(merge_member_parts, k), members, new)
    return tuple({"members": m, "state": p.state} for m, p in zip(members, passes, strict=True))


def merge_scores(k: int, *parts: dict) -> dict:
    """Combine step of pass 2: members as the plain pass merges them, the sums by addition."""
    return {
        "members": merge_member_parts(k, *(p["members"] for p in parts)),
        "state": functools.reduce(lambda a, b: a + b, (p["state"] for p in parts)),
    }


def scores_mapreduce(
    client, blocks: list[Block], jobs: tuple[ScoreJob, ...], weights: tuple
) -> list[dict]:
    """Pass 2 over all blocks, per run: ``{"members": (signs, rows, scores) of the whole fit,
    "state": ScoreState, "all": every row's scores}`` (:func:`all_scores`); ``weights``: per run (whole fit, half A, half B, mass norms)."""
    from dask import delayed

    w = client.scatter(tuple(tuple(x) for x in weights), broadcast=True)
    parts = [
        delayed(block_scores, pure=True)(b, tuple(jobs), w) for b in task_batches(client, blocks)
    ]
    combine = functools.partial(merge_each, functools.partial(merge_scores, jobs[0].k))
    merged = client.compute(tree(parts, combine)).result()
    out = []
    for m in merged:
        members = finish_members(m["members"])
        out.append(
            {"members": members, "state": m["state"], "all": all_scores(m["members"], members[0])}
        )
    return out


def plan_draw2(run_url: str, sample_ids: np.ndarray, fx, fy, params) -> Frequencies:
    """Refuse halves too small for the modes asked (one sentence); save the second,
    independent draw of frequencies the held-out values are evaluated with."""
    try:
        check_halves(groups_of(sample_ids, params.seed), params.n_modes)
    except ValueError as exc:
        raise InputError(f"{exc} (or pass --no-uncertainty)") from None
    url = urls.join(run_url, "frequencies2.npz")
    return save_frequencies(url, second_draw(fx, params.seed), second_draw(fy, params.seed))


def save_halves(url: str, halves: tuple) -> str:
    arrays = {
        f"{h}_{k}": v for h, s in zip("ab", halves, strict=True) for k, v in s.to_arrays().items()
    }
    return save_npz(url, **arrays)


def load_halves(url: str) -> tuple:
    a = load_npz(url)
    return tuple(
        GramState.from_arrays({k[2:]: v for k, v in a.items() if k.startswith(h + "_")})
        for h in "ab"
    )


def solve_halves(halves_url: str, spec, frequencies: Frequencies, params) -> dict:
    """Each half's directions, the mass norms of all three fits' scores and the plug-in's
    random-feature error (``spec``: the solved whole fit)."""
    fx, fy = load_feature_maps(frequencies)
    weights = [
        half_weights(h, params.eta, params.n_modes, params.solver, params.seed)
        for h in load_halves(halves_url)
    ]
    state = spec.gram_state_
    norms = mass_norms(state, np.hstack([spec.weights_, *weights]))
    rff = rff_error(spec.directions_, state.m_x, fx, fy)
    return {"weights_a": weights[0], "weights_b": weights[1], "norms": norms, "rff_error": rff}


def assess_run(
    result: dict, solution: dict, state_m_x: int, frequencies2: Frequencies, params
) -> dict:
    """The per-mode uncertainty of a run as plain arrays (for ``uncertainty.npz``)."""
    u = assess(
        solution["eigenvalues"],
        result["state"],
        state_m_x,
        params.eta,
        params.n_modes,
        params.confidence,
        solution["rff_error"],
        load_feature_maps(frequencies2),
    )
    low, high = u.interval(solution["eigenvalues"], u.eigenvalue_se)
    held_low, held_high = u.interval(u.heldout, u.heldout_se)
    return {
        "confidence": np.float64(u.confidence),
        "eigenvalue_se": u.eigenvalue_se,
        "eigenvalue_low": low,
        "eigenvalue_high": high,
        "heldout": u.heldout,
        "heldout_se": u.heldout_se,
        "heldout_low": held_low,
        "heldout_high": held_high,
        "heldout_rff": u.heldout_rff,
        "rff_error": u.rff_error,
        "p_value": u.p_value,
        "p_adjusted": u.p_adjusted,
        "stability": u.stability,
        "near_tie": u.near_tie,
    }
