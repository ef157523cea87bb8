"""The compare flow: two or more embeddings of one dataset -> modes, warehouse rows, report.

For every pair of encoders (x, y), reads like its table of contents:

1. ``prepare-compare``: join on sample_id (refuse mismatches), choose bandwidths (recorded),
   draw the random frequencies once and save them.
2. ``accumulate-gram``: Dask map-reduce of Gram states over the embedding chunks.
3. ``solve-spectrum``: the engine's eigensolve on the client.
4. ``score-members``: a second distributed pass for per-sample scores and top members.
5. ``publish-run``: ``runs``, ``modes``, ``members``, ``pair_scores`` partitions of this run.
6. ``write-report``: ``reports/<run_id>/index.html`` and a Prefect markdown artifact.

The Dask cluster is the one at ``address``, or a LocalCluster started for the run.
Call :func:`compare` from Python; ``speclens compare ...`` on the command line.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import time
from datetime import UTC, datetime

from prefect import flow, get_run_logger
from prefect.states import Failed

from speclens.errors import InputError
from speclens.flows.runtime import prefect_api
from speclens.storage import urls
from speclens.tasks.compare import (
    accumulate_gram,
    prepare_compare,
    resolve_embedding,
    score_members,
    solve_spectrum,
)
from speclens.tasks.publish import publish_group, publish_run, warehouse_url, write_run_report

DEFAULTS = {
    "kernel_x": "gaussian",
    "kernel_y": "gaussian",
    "sigma_x": None,
    "sigma_y": None,
    "sigma_scale": 0.5,
    "rff_dim": 1000,
    "eta": 1.0,
    "n_modes": 5,
    "solver": "auto",
    "seed": 0,
    "dtype": "float32",
    "members_k": 50,
    "block_shards": 1,
}


def make_run_id(dataset: str, encoders: list[str], params: dict) -> str:
    digest = hashlib.sha256(
        json.dumps([dataset, encoders, params], sort_keys=True, default=str).encode()
    ).hexdigest()[:6]
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + digest


@contextlib.contextmanager
def dask_cluster(address: str | None, n_workers: int | None = None):
    """Yield a scheduler address: the given one, or a LocalCluster's for the run."""
    if address:
        yield address
        return
    import os

    from distributed import LocalCluster

    workers = n_workers or max(1, min(2, os.cpu_count() or 1))
    with LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=":0",
    ) as cluster:
        yield cluster.scheduler_address


def compare_pair(
    dataset: str,
    x_enc: str,
    y_enc: str,
    x_url: str,
    y_url: str,
    root: str,
    run_id: str,
    group_id: str,
    params: dict,
    address: str,
    logger,
    warehouse: str | None = None,
    parent_run_id: str | None = None,
) -> dict:
    run_url = urls.join(root, "runs", run_id)
    timings, t0 = {}, time.perf_counter()
    prep = prepare_compare(dataset, x_url, y_url, run_url, params)
    timings["prepare"] = time.perf_counter() - t0
    logger.info(
        "%s: %s vs %s, n=%d, sigma_x=%s, sigma_y=%s, %d blocks",
        run_id,
        x_enc,
        y_enc,
        prep["n"],
        prep["sigma_x"],
        prep["sigma_y"],
        len(prep["blocks"]),
    )
    t0 = time.perf_counter()
    gram = accumulate_gram(address, prep["blocks"], prep["freq_url"], params["dtype"], run_url)
    timings["gram"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    solved = solve_spectrum(gram["gram_url"], params, prep, run_url)
    timings["solve"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    members_url = score_members(
        address, prep["blocks"], prep["freq_url"], run_url, params["members_k"], params["dtype"]
    )
    timings["scores"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    run = publish_run(
        dataset,
        x_enc,
        y_enc,
        run_id,
        group_id,
        root,
        params,
        prep,
        solved,
        members_url,
        timings,
        parent_run_id,
        warehouse=warehouse,
    )
    timings["publish"] = time.perf_counter() - t0
    report = write_run_report(dataset, root, run_id, warehouse)
    logger.info(
        "%s: SPEC-diff x_over_y=%.5f y_over_x=%.5f; report %s",
        run_id,
        solved["spec_diff"]["x_over_y"],
        solved["spec_diff"]["y_over_x"],
        report,
    )
    return {
        **run,
        "report": report,
        "eigenvalues": solved["eigenvalues"],
        "warehouse": warehouse_url(root, warehouse),
    }


@flow(name="compare")
def compare_flow(
    dataset: str,
    encoders: list[str],
    root: str,
    run_id: str,
    params: dict,
    address: str | None = None,
    warehouse: str | None = None,
):
    logger = get_run_logger()
    try:
        stores = [resolve_embedding(dataset, e) for e in encoders]
    except InputError as exc:
        logger.error(str(exc))
        return Failed(message=str(exc), data=exc)
    pairs = list(itertools.combinations(range(len(encoders)), 2))
    results = []
    with dask_cluster(address) as addr:
        for i, j in pairs:
            pair_id = run_id if len(pairs) == 1 else f"{run_id}--{i}-{j}"
            try:
                results.append(
                    compare_pair(
                        dataset,
                        encoders[i],
                        encoders[j],
                        stores[i],
                        stores[j],
                        root,
                        pair_id,
                        run_id,
                        params,
                        addr,
                        logger,
                        warehouse,
                    )
                )
            except InputError as exc:
                logger.error(str(exc))
                return Failed(message=str(exc), data=exc)
    if len(encoders) > 2:
        results.append(publish_group(root, run_id, encoders, results))
    return results


def compare(
    dataset: str,
    encoders: list[str],
    *,
    root: str = "speclens-out",
    run_id: str | None = None,
    address: str | None = None,
    warehouse: str | None = None,
    **params,
) -> list[dict]:
    """Compare every pair of ``encoders`` (ids or embedding store URLs) on ``dataset``.

    Tables go to ``warehouse`` when given, else to ``<root>/warehouse``.
    ``params`` override :data:`DEFAULTS` (kernels, sigmas, rff_dim, eta, n_modes, seed,
    dtype, members_k). Returns one record per pair (and one for the group when K > 2).
    Raises :class:`InputError` for bad input (one sentence).
    """
    unknown = set(params) - set(DEFAULTS)
    if unknown:
        raise InputError(
            f"unknown compare parameter(s) {sorted(unknown)}; known: {sorted(DEFAULTS)}."
        )
    if len(encoders) < 2:
        raise InputError(
            f"compare needs at least two encoders, got {len(encoders)}; pass "
            f"--encoder twice or more."
        )
    if len(set(encoders)) != len(encoders):
        raise InputError("an encoder is named twice; compare distinct encoders.")
    full = {**DEFAULTS, **params}
    run_id = run_id or make_run_id(dataset, encoders, full)
    with prefect_api():
        state = compare_flow(
            dataset=str(dataset),
            encoders=list(encoders),
            root=str(root),
            run_id=run_id,
            params=full,
            address=address,
            warehouse=warehouse,
            return_state=True,
        )
    if state.is_failed():
        exc = state.data if isinstance(state.data, BaseException) else None
        if isinstance(exc, InputError):
            raise exc
        state.result()
        raise RuntimeError(state.message or "compare failed")
    return state.result()
