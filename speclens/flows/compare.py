"""The compare flow: two or more embeddings of one dataset -> modes, warehouse rows, report.

For every pair of encoders (x, y), and for each bandwidth scale of a sweep (one run per scale,
``<pair id>--sigma<scale>``, sharing every pass over the data), reads like its table of
contents:

1. ``prepare-compare``: join on sample_id (refuse mismatches); per run the bandwidths
   (recorded), the feature count (``rff_dim='auto'``: chosen on a row sample), the random
   frequencies drawn once and saved (with ``uncertainty``, a second independent draw too, and
   refuse halves too small for the modes).
2. ``accumulate-gram``: Dask map-reduce of every run's Gram state over the embedding chunks,
   each block read once (with ``uncertainty``, one state per half of the samples; their sum
   is the whole Gram); a sweep whose states do not fit one pass takes one per group of runs.
3. ``solve-spectrum``: per run the engine's eigensolve on the client, the random-feature check
   from halves of its frequencies (and each half's fit, the random-feature error from splits
   of the frequencies, with ``uncertainty``); ``check-exact`` with ``exact_check``.
4. ``score-members``: a second distributed pass for every run's per-sample scores and top
   members (with ``uncertainty``, also the held-out sums, the carriers of each half's modes
   and the sums behind the plug-in standard errors: ``uncertainty.npz``).
5. ``publish-run``: ``runs``, ``modes``, ``members``, ``pair_scores`` partitions of each run
   (intervals, held-out values, p-values, stability, random-feature and exact checks).
6. ``write-report``: ``reports/<run_id>/index.html`` and a Prefect markdown artifact; a sweep
   also ``reports/<pair id>/index.html``.

The Dask cluster is the one at ``address``, or a LocalCluster started for the run.
Call :func:`compare` from Python; ``speclens compare ...`` on the command line.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import replace
from datetime import UTC, datetime

from prefect import flow, get_run_logger

from speclens.flows.runtime import (
    LIGHT_ROWS,
    Stopwatch,
    dask_cluster,
    describe_local,
    flow_result,
    prefect_api,
    use_processes,
)
from speclens.report.sweep import sweep_run_id
from speclens.storage.embedding_store import EmbeddingStore
from speclens.storage.layout import Layout
from speclens.tasks.checks import check_compare, resolve_embedding
from speclens.tasks.compare import (
    Pair,
    accumulate_gram,
    check_exact,
    prepare_compare,
    score_members,
    solve_spectrum,
)
from speclens.tasks.params import CompareParams
from speclens.tasks.plan import pass_groups
from speclens.tasks.publish import publish_groups, publish_run, write_run_report
from speclens.tasks.samples import sample_stage
from speclens.tasks.sweep import write_sweep_report


def make_run_id(dataset: str, encoders: list[str], params: CompareParams) -> str:
    """A new run id: the UTC time and a digest of what is compared and how."""
    what = json.dumps([dataset, encoders, params.model_dump()], sort_keys=True, default=str)
    digest = hashlib.sha256(what.encode()).hexdigest()[:6]
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + digest


def sweep_pairs(pair: Pair, params: CompareParams) -> list[tuple[Pair, CompareParams]]:
    """The runs of ``pair``: itself, or for a bandwidth sweep one run per scale with an id
    derived from the pair's (``<id>--sigma<scale>``) and the pair's id as ``parent_run_id``."""
    if not params.sweeping:
        return [(pair, params)]
    return [
        (
            replace(
                pair, run_id=sweep_run_id(pair.run_id, p.sigma_scale), parent_run_id=pair.run_id
            ),
            p,
        )
        for p in params.sweep()
    ]


def compare_pair(pair: Pair, params: CompareParams, address: str) -> dict:
    """Prepare, Gram map-reduce, solve, score, publish and report one pair (one bandwidth)."""
    if params.sweeping:
        raise ValueError("compare_pair runs one bandwidth; call compare_sweep for a sweep.")
    return compare_sweep(pair, params, address)[0]


def compare_sweep(pair: Pair, params: CompareParams, address: str) -> list[dict]:
    """Every run of ``pair`` (one per bandwidth scale) with shared passes over the data: one
    read of each block of rows for all the Gram states (per group of runs whose states fit
    one pass), one for all the scores. A sweep ends with its page,
    ``reports/<pair id>/index.html``; returns the runs' records."""
    clock = Stopwatch()
    runs = sweep_pairs(pair, params)
    run_urls = [Layout(pair.root).run(p.run_id) for p, _ in runs]
    sweep = [p for _, p in runs]
    with clock("prepare"):
        preps = prepare_compare(pair.dataset, pair.x_url, pair.y_url, run_urls, sweep, address)
    blocks = preps[0]["blocks"]
    log_plans([p for p, _ in runs], preps)
    with clock("gram"):
        gram_urls = []
        for group in pass_groups(preps, params):
            part = [preps[i] for i in group], params, [run_urls[i] for i in group]
            gram_urls += accumulate_gram(address, blocks, *part)
    solved, exact = [], []
    with clock("solve"):
        for gram_url, p, prep, url in zip(gram_urls, sweep, preps, run_urls, strict=True):
            solved.append(solve_spectrum(gram_url, p, prep, url))
    if params.exact_check:
        with clock("exact"):
            for p, prep, url in zip(sweep, preps, run_urls, strict=True):
                exact.append(check_exact(pair.x_url, pair.y_url, prep, p, url))
    with clock("scores"):
        members_urls = score_members(address, blocks, preps, run_urls, params)
    with clock("samples"):
        sample_stage(pair.x_url, pair.y_url, run_urls, params)
    results = []
    for i, ((p, p_params), prep) in enumerate(zip(runs, preps, strict=True)):
        with clock("publish"):
            run = publish_run(p, p_params, prep, solved[i], members_urls[i], clock.seconds)
        results.append(report_run(p, run, solved[i], exact[i] if exact else None))
    if params.sweeping:
        sweep_report = write_sweep_report(pair.root, pair.run_id, pair.warehouse)
        for r in results:
            r.update(sweep_report=sweep_report, sweep_id=pair.run_id)
    return results


def log_plans(pairs: list[Pair], preps: list[dict]) -> None:
    """Each run's plan in the flow's log (with rff_dim auto: the counts tried)."""
    logger = get_run_logger()
    for p, prep in zip(pairs, preps, strict=True):
        logger.info(
            "%s: %s vs %s, n=%d, sigma_x=%s, sigma_y=%s, rff_dim=%d, %d blocks",
            *(p.run_id, p.encoder_x, p.encoder_y, prep["n"], prep["sigma_x"], prep["sigma_y"]),
            *(prep["rff_dim"], len(prep["blocks"])),
        )
        if prep["rff_auto"]:
            tried = ", ".join(f"{d}: {e:.1%}" for d, e in prep["rff_auto"])
            reached = "target reached" if prep["rff_auto_reached"] else "cap reached"
            logger.info(
                "%s: rff_dim auto, estimated error per count tried on a row sample: %s (%s)",
                p.run_id,
                tried,
                reached if prep["rff_auto_reached"] else reached + ": raise --rff-dim-max",
            )


def report_run(pair: Pair, run: dict, solved: dict, exact: dict | None) -> dict:
    """Write a published run's report and log its answer; its record for the caller."""
    report = write_run_report(pair.dataset, pair.root, pair.run_id, pair.warehouse)
    sd, rel = solved["spec_diff"], solved["rff_rel_error"]
    get_run_logger().info(
        "%s: SPEC-diff x_over_y=%.5f y_over_x=%.5f; random-feature error %.1f%%; report %s",
        *(pair.run_id, sd["x_over_y"], sd["y_over_x"], 100 * rel, report),
    )
    return {
        **run,
        "report": report,
        "eigenvalues": solved["eigenvalues"],
        "exact": exact,
        "warehouse": Layout(pair.root).warehouse(pair.warehouse),
    }


@flow(name="compare")
def compare_flow(
    dataset: str,
    encoders: list[str],
    root: str,
    run_id: str,
    params: CompareParams,
    address: str | None = None,
    warehouse: str | None = None,
    pairs: list[tuple[int, int]] | None = None,
    names: list[str] | None = None,
    series: str | None = None,
    processes: bool | None = None,
):
    """Every pair of ``encoders`` (or the ``pairs`` of indices given: an audit's baseline
    against each candidate); with ``names`` (one per encoder) each run joins the audit series
    derived from them, or the ``series`` named (one pair). Without ``address``: a local
    cluster of worker ``processes``, or threads of this process (default: threads up to
    ``LIGHT_ROWS`` rows)."""
    stores = [resolve_embedding(dataset, e) for e in encoders]
    chosen = (
        [tuple(p) for p in pairs]
        if pairs
        else list(itertools.combinations(range(len(encoders)), 2))
    )
    results = []
    rows = min(EmbeddingStore.open(u).n_samples for u in stores)
    processes = use_processes(rows, LIGHT_ROWS, processes)
    if not address:
        get_run_logger().info("execution: %s", describe_local(processes, rows))
    with dask_cluster(address, processes=processes, scheduler=False) as addr:
        for i, j in chosen:
            pair_id = run_id if len(chosen) == 1 else f"{run_id}--{i}-{j}"
            pair = Pair(
                dataset,
                encoders[i],
                encoders[j],
                stores[i],
                stores[j],
                root,
                pair_id,
                run_id,
                warehouse,
                series=series,
                series_names=(names[i], names[j]) if names else None,
            )
            results += compare_sweep(pair, params, addr)
    if len(encoders) > 2 and not pairs:
        results += publish_groups(root, run_id, encoders, results, params)
    return results


def compare(
    dataset: str,
    encoders: list[str],
    *,
    root: str = "speclens-out",
    run_id: str | None = None,
    address: str | None = None,
    warehouse: str | None = None,
    params: CompareParams | None = None,
    pairs: list[tuple[int, int]] | None = None,
    names: list[str] | None = None,
    series: str | None = None,
    processes: bool | None = None,
    **options,
) -> list[dict]:
    """Compare every pair of ``encoders`` (ids or embedding store URLs) on ``dataset``.

    ``params`` (default: :class:`CompareParams`' defaults), with any ``options`` (its field
    names, e.g. ``rff_dim=2000``) laid over it. Tables go to ``warehouse`` when given, else
    to ``<root>/warehouse``. Returns one record per pair (and one for the group when K > 2).
    ``pairs``, ``names``, ``series``: as :func:`compare_flow` takes them (an audit's roles).
    Raises a :class:`~speclens.errors.SpeclensError` (one sentence) for bad input, before
    any server or cluster starts when the input alone shows it.
    """
    params = (params or CompareParams()).with_options(**options)
    check_compare(dataset, list(encoders), repeats=pairs is not None)
    run_id = run_id or make_run_id(dataset, list(encoders), params)
    with prefect_api():
        state = compare_flow(
            dataset=str(dataset),
            encoders=list(encoders),
            root=str(root),
            run_id=run_id,
            params=params,
            address=address,
            warehouse=warehouse,
            pairs=pairs,
            names=names,
            series=series,
            processes=processes,
            return_state=True,
        )
    return flow_result(state)
