"""Prefect tasks of the compare flow. Each passes URLs, ids and small lists; the arrays (Gram
state, frequencies, solution, members) live under ``<root>/runs/<run_id>/``.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from dataclasses import dataclass

import numpy as np
from prefect import task

from speclens.errors import InputError
from speclens.spec import SPEC, GramState, make_feature_map, merge_states, resolve_sigma
from speclens.spec.features import DEFAULT_SIGMA_SAMPLE
from speclens.storage import urls
from speclens.storage.arrays import load_npz, save_npz
from speclens.storage.dataset_store import DatasetStore
from speclens.storage.embedding_store import EmbeddingStore
from speclens.tasks.mapreduce import (
    Frequencies,
    blocks_for,
    gram_mapreduce,
    members_mapreduce,
    save_frequencies,
)
from speclens.tasks.params import CompareParams
from speclens.tasks.retries import retry_on_io_error
from speclens.tasks.uncertainty import (
    ScoreJob,
    assess_run,
    halves_mapreduce,
    plan_draw2,
    save_halves,
    scores_mapreduce,
    solve_halves,
)


@dataclass(frozen=True)
class Pair:
    """One comparison: embedding X (encoder id, store URL) against Y on a dataset, published
    as ``run_id`` (of ``group_id``, derived from ``parent_run_id`` when set)."""

    dataset: str
    encoder_x: str
    encoder_y: str
    x_url: str
    y_url: str
    root: str
    run_id: str
    group_id: str
    warehouse: str | None = None
    parent_run_id: str | None = None


@contextlib.contextmanager
def dask_client(address: str):
    from distributed import Client

    client = Client(address, set_as_default=False, timeout="30s")
    try:
        yield client
    finally:
        client.close()


@task(name="prepare-compare")
def prepare_compare(
    dataset_url: str, x_url: str, y_url: str, run_url: str, params: CompareParams
) -> dict:
    """Join check, bandwidths, frequencies (drawn once, saved), and the row blocks."""
    dataset = DatasetStore.open(dataset_url)
    sx, sy = EmbeddingStore.open(x_url), EmbeddingStore.open(y_url)
    for store, url in ((sx, x_url), (sy, y_url)):
        if not store.complete:
            raise InputError(
                f"{url} is incomplete ({len(store.pending())} shard(s) pending); "
                f"rerun its `speclens embed` command, then compare."
            )
    ids = dataset.sample_ids()
    for store, url in ((sx, x_url), (sy, y_url)):
        if not store.embeds(dataset, ids):
            raise InputError(
                f"{url} embeds other samples than {dataset_url} (its sample_ids or input hash "
                f"differ); embed both encoders from the same dataset store."
            )
    return plan_pair(x_url, y_url, run_url, params)


def plan_pair(x_url: str, y_url: str, run_url: str, params: CompareParams) -> dict:
    """Bandwidths (heuristic on a seeded sample of rows valid in both), frequencies drawn once
    and saved under ``run_url``, and the row blocks (whole shards) of the map-reduce."""
    sx, sy = EmbeddingStore.open(x_url), EmbeddingStore.open(y_url)
    valid = sx.valid() & sy.valid()
    n = int(valid.sum())
    if n < 2 * params.n_modes + 1:
        raise InputError(
            f"only {n} samples have both embeddings; compare needs more than "
            f"2 * n_modes = {2 * params.n_modes} (lower --n-modes or embed more)."
        )
    rng = np.random.default_rng(params.seed)
    sample = np.sort(
        rng.choice(np.flatnonzero(valid), size=min(n, DEFAULT_SIGMA_SAMPLE), replace=False)
    )
    opts = (params.sigma_scale, DEFAULT_SIGMA_SAMPLE, params.seed)
    kx, ky = params.kernel_x_used, params.kernel_y_used
    sigma_x = resolve_sigma(sx.take(sample), kx, params.sigma_x, "sigma_x", *opts)
    sigma_y = resolve_sigma(sy.take(sample), ky, params.sigma_y, "sigma_y", *opts)
    fx = make_feature_map(kx, sigma_x, params.rff_dim, params.seed).fit(sx.dim)
    fy = make_feature_map(ky, sigma_y, params.rff_dim, params.seed).fit(sy.dim)
    frequencies = save_frequencies(urls.join(run_url, "frequencies.npz"), fx, fy)
    frequencies2 = (
        plan_draw2(run_url, sx.sample_ids()[valid], fx, fy, params) if params.uncertainty else None
    )
    blocks = blocks_for(x_url, y_url, sx.n_samples, sx.shard_size * params.block_shards)
    return {
        "n": n,
        "sigma_x": sigma_x,
        "sigma_y": sigma_y,
        "frequencies": frequencies,
        "frequencies2": frequencies2,
        "blocks": blocks,
        "dx": sx.dim,
        "dy": sy.dim,
    }


@task(name="accumulate-gram", retries=1, retry_condition_fn=retry_on_io_error)
def accumulate_gram(
    address: str, blocks: list, frequencies: Frequencies, params: CompareParams, run_url: str
) -> str:
    """The Gram state of every block, merged on the cluster, saved as ``gram.npz`` (with the
    uncertainty: accumulated per half, the halves saved as ``gram-halves.npz`` beside it)."""
    with dask_client(address) as client:
        if params.uncertainty:
            halves = halves_mapreduce(client, blocks, frequencies, params.dtype, params.seed)
            save_halves(urls.join(run_url, "gram-halves.npz"), halves)
            state = merge_states(*halves)
        else:
            state = gram_mapreduce(client, blocks, frequencies, params.dtype)
    return save_npz(urls.join(run_url, "gram.npz"), **state.to_arrays())


def spec_for(params: CompareParams, prep: dict) -> SPEC:
    return SPEC(
        kernel_x=params.kernel_x_used,
        kernel_y=params.kernel_y_used,
        sigma_x=prep["sigma_x"],
        sigma_y=prep["sigma_y"],
        rff_dim=params.rff_dim,
        eta=params.eta,
        n_modes=params.n_modes,
        solver=params.solver,
        random_state=params.seed,
        dtype=params.dtype,
    )


@task(name="solve-spectrum")
def solve_spectrum(gram_url: str, params: CompareParams, prep: dict, run_url: str) -> dict:
    state = GramState.from_arrays(load_npz(gram_url))
    spec = spec_for(params, prep).solve(state)
    halves = {}
    if params.uncertainty:
        halves_url = urls.join(run_url, "gram-halves.npz")
        halves = solve_halves(halves_url, spec, prep["frequencies"], params)
    save_npz(
        urls.join(run_url, "solution.npz"),
        eigenvalues=spec.eigenvalues_,
        weights=spec.weights_,
        spectrum=spec.spectrum_,
        m_x=np.int64(state.m_x),
        **halves,
    )
    return {
        "eigenvalues": spec.eigenvalues_.tolist(),
        "spec_diff": spec.spec_diff_,
        "rank": spec.rank_,
        "solver": spec.solver_,
        "factorization": spec.factorization_,
        "abs_mass": float(np.abs(spec.spectrum_).sum()) if spec.spectrum_.size else None,
    }


@task(name="score-members", retries=1, retry_condition_fn=retry_on_io_error)
def score_members(
    address: str, blocks: list, prep: dict, run_url: str, params: CompareParams
) -> str:
    """The second pass: each mode's top ``params.members`` rows with the sign convention (and,
    with the uncertainty, the held-out sums and the overlaps of the whole and half fits,
    assessed into ``uncertainty.npz``)."""
    solution = load_npz(urls.join(run_url, "solution.npz"))
    with dask_client(address) as client:
        if params.uncertainty:
            weights = tuple(solution[k] for k in ("weights", "weights_a", "weights_b", "norms"))
            job = ScoreJob(
                prep["frequencies"], prep["frequencies2"], params.members, params.dtype, params.seed
            )
            result = scores_mapreduce(client, blocks, job, weights)
            signs, rows, scores = result["members"]
            arrays = assess_run(
                result, solution, int(solution["m_x"]), prep["frequencies2"], params
            )
            save_npz(urls.join(run_url, "uncertainty.npz"), **arrays)
        else:
            signs, rows, scores = members_mapreduce(
                client,
                blocks,
                prep["frequencies"],
                solution["weights"],
                params.members,
                params.dtype,
            )
    return save_npz(urls.join(run_url, "members.npz"), signs=signs, rows=rows, scores=scores)


def describe_members(dataset: DatasetStore, rows: np.ndarray) -> dict:
    """Labels, captions and (for generated data) factor purities of a mode's members."""
    names = dataset.label_names
    labels = dataset.array("label").get_orthogonal_selection(rows)
    label_names = [names[i] if 0 <= i < len(names) else "" for i in labels]
    counts = Counter(n for n in label_names if n)
    top = counts.most_common(3)
    summary = ", ".join(f"{name} {c / len(rows):.0%}" for name, c in top)
    factors = []
    for fname, codes in dataset.factor_names().items():
        if codes is None:
            continue
        values = dataset.array(f"factors/{fname}").get_orthogonal_selection(rows)
        value, c = Counter(values.tolist()).most_common(1)[0]
        factors.append((c / len(rows), f"{fname}={codes[int(value)]} {c / len(rows):.0%}"))
    if factors:
        summary = "; ".join(t for _, t in sorted(factors, key=lambda f: -f[0])[:2]) + (
            f" | {summary}" if summary else ""
        )
    if not summary:
        captions = dataset.array("caption").get_orthogonal_selection(rows).tolist()
        words = Counter(w for c in captions for w in set(c.lower().split()) if len(w) > 3)
        summary = "words: " + ", ".join(w for w, _ in words.most_common(5))
    return {
        "labels": label_names,
        "summary": summary,
        "label": top[0][0] if top else None,
        "label_share": top[0][1] / len(rows) if top else None,
        "captions": dataset.array("caption").get_orthogonal_selection(rows).tolist(),
        "sample_ids": dataset.array("sample_id").get_orthogonal_selection(rows).tolist(),
    }
