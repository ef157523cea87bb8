"""Prefect tasks of the compare flow. Each passes URLs, ids and small lists; the arrays (Gram
state, frequencies, solution, members) live under ``<root>/runs/<run_id>/``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
from prefect import task

from speclens.errors import InputError
from speclens.spec import SPEC, GramState, merge_states
from speclens.spec.exact import EXACT_MAX_SAMPLES, exact_ends
from speclens.spec.rff_check import (
    WARN_RELATIVE_ERROR,
    dual_ends,
    gram_check,
    relative_error,
    suggest_rff_dim,
)
from speclens.storage import urls
from speclens.storage.arrays import load_npz, save_npz
from speclens.storage.dataset_store import DatasetStore
from speclens.storage.embedding_store import EmbeddingStore
from speclens.tasks.mapreduce import (
    dask_client,
    gram_mapreduce,
    load_feature_maps,
    members_mapreduce,
)
from speclens.tasks.params import CompareParams
from speclens.tasks.plan import feature_width, plan_sweep, sample_rows
from speclens.tasks.retries import retry_on_io_error
from speclens.tasks.uncertainty import (
    ScoreJob,
    assess_run,
    halves_mapreduce,
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
    #: an audit's series: its given name, or the (baseline, candidate) names it derives from
    series: str | None = None
    series_names: tuple[str, str] | None = None


@task(name="prepare-compare")
def prepare_compare(
    dataset_url: str,
    x_url: str,
    y_url: str,
    run_urls: list[str],
    sweep: list[CompareParams],
    address: str | None = None,
) -> list[dict]:
    """Join check, then per run of the sweep (one run when not sweeping): bandwidths,
    feature count, frequencies (drawn once, saved), and the row blocks (the row samples of
    a large store read on the Dask cluster at ``address``)."""
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
    return plan_sweep(x_url, y_url, run_urls, sweep, address)


@task(name="accumulate-gram", retries=1, retry_condition_fn=retry_on_io_error)
def accumulate_gram(
    address: str, blocks: list, preps: list[dict], params: CompareParams, run_urls: list[str]
) -> list[str]:
    """Per run, the Gram state of every block, merged on the cluster, saved as ``gram.npz``
    (with the uncertainty: accumulated per half, the halves saved as ``gram-halves.npz``
    beside it). The runs of a sweep share one pass: each block is read once."""
    frequencies = tuple(p["frequencies"] for p in preps)
    m = max(feature_width(p, params) for p in preps)
    with dask_client(address) as client:
        if params.uncertainty:
            halves = halves_mapreduce(
                client, blocks, frequencies, params.dtype, params.seed, m, params.compare_device
            )
            for url, h in zip(run_urls, halves, strict=True):
                save_halves(urls.join(url, "gram-halves.npz"), h)
            states = [merge_states(*h) for h in halves]
        else:
            states = gram_mapreduce(
                client, blocks, frequencies, params.dtype, m, params.compare_device
            )
    return [
        save_npz(urls.join(url, "gram.npz"), **state.to_arrays())
        for url, state in zip(run_urls, states, strict=True)
    ]


def spec_for(params: CompareParams, prep: dict) -> SPEC:
    return SPEC(
        kernel_x=params.kernel_x_used,
        kernel_y=params.kernel_y_used,
        sigma_x=prep["sigma_x"],
        sigma_y=prep["sigma_y"],
        rff_dim=prep["rff_dim"],
        eta=params.eta,
        n_modes=params.n_modes,
        solver=params.solver,
        random_state=params.seed,
        dtype=params.dtype,
    )


@task(name="solve-spectrum")
def solve_spectrum(gram_url: str, params: CompareParams, prep: dict, run_url: str) -> dict:
    """The eigensolve, each half's (with the uncertainty) and the random-feature check:
    halves of the frequencies solved from sub-blocks of the same Gram."""
    state = GramState.from_arrays(load_npz(gram_url))
    spec = spec_for(params, prep).solve(state)
    fx, fy = load_feature_maps(prep["frequencies"])
    check = gram_check(
        state,
        fx,
        fy,
        params.eta,
        spec.eigenvalues_,
        params.n_modes,
        params.seed,
        factor=spec.factor_,
    )
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
        rff_bias=check.bias,
        rff_spread=check.spread,
        **halves,
    )
    rel = relative_error(check, params.n_modes)
    return {
        "eigenvalues": spec.eigenvalues_.tolist(),
        "spec_diff": spec.spec_diff_,
        "rank": spec.rank_,
        "solver": spec.solver_,
        "factorization": spec.factorization_,
        "abs_mass": float(np.abs(spec.spectrum_).sum()) if spec.spectrum_.size else None,
        "rff_rel_error": rel,
        "rff_bias": check.bias.tolist(),
        "rff_dim_suggested": (
            suggest_rff_dim(prep["rff_dim"], rel) if rel > WARN_RELATIVE_ERROR else None
        ),
    }


@task(name="check-exact")
def check_exact(x_url: str, y_url: str, prep: dict, params: CompareParams, run_url: str) -> dict:
    """``exact_check``: the exact eigenvalues of the explicit n x n kernel on the run's rows (a
    seeded subsample of ``EXACT_MAX_SAMPLES`` above that), beside the run's random-feature
    eigenvalues on the same rows; saved as ``exact.npz``."""
    sx, sy = EmbeddingStore.open(x_url), EmbeddingStore.open(y_url)
    rows = sample_rows(sx.valid() & sy.valid(), EXACT_MAX_SAMPLES, params.seed + 2)
    x, y = sx.take(rows).astype(np.float64), sy.take(rows).astype(np.float64)
    k = params.n_modes
    kernels = dict(kernel_x=params.kernel_x_used, kernel_y=params.kernel_y_used)
    exact = exact_ends(
        x, y, k, **kernels, sigma_x=prep["sigma_x"], sigma_y=prep["sigma_y"], eta=params.eta
    )
    fx, fy = load_feature_maps(prep["frequencies"])
    phi = np.hstack([fx.transform(x), fy.transform(y)])
    rff = dual_ends(phi, fx.n_features_out_, params.eta, k, params.seed)
    save_npz(urls.join(run_url, "exact.npz"), exact=exact, rff=rff, n=np.int64(len(rows)))
    return {"n": len(rows), "exact": exact.tolist(), "rff": rff.tolist()}


@task(name="score-members", retries=1, retry_condition_fn=retry_on_io_error)
def score_members(
    address: str, blocks: list, preps: list[dict], run_urls: list[str], params: CompareParams
) -> list[str]:
    """The second pass, one read of the rows for every run: each mode's top ``params.members``
    rows with the sign convention (and, with the uncertainty, the held-out sums and the
    overlaps of the whole and half fits, assessed into ``uncertainty.npz``)."""
    solutions = [load_npz(urls.join(u, "solution.npz")) for u in run_urls]
    with dask_client(address) as client:
        if params.uncertainty:
            keys = ("weights", "weights_a", "weights_b", "norms")
            weights = tuple(tuple(s[k] for k in keys) for s in solutions)
            jobs = tuple(
                ScoreJob(
                    p["frequencies"],
                    p["frequencies2"],
                    params.members,
                    params.dtype,
                    params.seed,
                    params.compare_device,
                )
                for p in preps
            )
            results = scores_mapreduce(client, blocks, jobs, weights)
            members, every = [], []
            for url, r, solution, p in zip(run_urls, results, solutions, preps, strict=True):
                members.append(r["members"])
                every.append(r["all"])
                arrays = assess_run(r, solution, int(solution["m_x"]), p["frequencies2"], params)
                save_npz(urls.join(url, "uncertainty.npz"), **arrays)
        else:
            results = members_mapreduce(
                client,
                blocks,
                tuple(p["frequencies"] for p in preps),
                tuple(s["weights"] for s in solutions),
                params.members,
                params.dtype,
                params.compare_device,
            )
            members, every = [r[0] for r in results], [r[1] for r in results]
    for url, (rows, scores) in zip(run_urls, every, strict=True):
        save_npz(urls.join(url, "scores.npz"), rows=rows, scores=scores)
    return [
        save_npz(urls.join(url, "members.npz"), signs=signs, rows=rows, scores=scores)
        for url, (signs, rows, scores) in zip(run_urls, members, strict=True)
    ]


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
