"""The align flow: SPEC-align one embedding to a reference, measured before and after.

1. ``train-adapter``: a seeded train / held-out split of the samples both embed; the adapter
   (linear or residual MLP, :mod:`speclens.spec.adapter`) is trained on the train rows.
2. ``write-aligned``: the adapted embedding of every sample as a new encoder entry
   ``<encoder>+aligned@<run_id>`` beside the others, and held-out views for the comparisons.
3. compare on the held-out samples, before (reference vs encoder) and after (reference vs
   aligned encoder); both runs go to the warehouse, the after run's ``parent_run_id`` naming
   the before run. The reference is X, so ``x_over_y`` is what the reference captures and the
   aligned embedding still misses: the quantity alignment should lower.
4. ``label-probes``: k-NN and linear-probe label accuracy before and after (alignment must not
   wreck the embedding), and an align report linking both runs' reports.
"""

from __future__ import annotations

import json

from prefect import flow, get_run_logger

from speclens.flows.compare import DEFAULTS, compare_pair, dask_cluster, make_run_id
from speclens.flows.runtime import flow_result, prefect_api
from speclens.storage import urls
from speclens.storage.errors import InputError
from speclens.tasks.align import label_probes, train_adapter, write_aligned
from speclens.tasks.compare import resolve_embedding


@flow(name="align")
def align_flow(dataset: str, encoder: str, reference: str, root: str = "speclens-out",
               run_id: str | None = None, mode: str = "adapter", train_frac: float = 0.5,
               seed: int = 0, adapter_options: dict | None = None,
               compare_params: dict | None = None, address: str | None = None) -> dict:
    logger = get_run_logger()
    if mode != "adapter":
        raise InputError(f"align mode {mode!r} is not available in the flow yet; use "
                         f"--mode adapter (encoder fine-tuning: speclens.encoders.finetune).")
    params = {**DEFAULTS, "seed": seed, **(compare_params or {})}
    run_id = run_id or make_run_id(dataset, [encoder, reference, "align"], params)
    run_url = urls.join(root, "runs", run_id)
    x_url, y_url = resolve_embedding(dataset, encoder), resolve_embedding(dataset, reference)
    trained = train_adapter(dataset, x_url, y_url, run_url, train_frac, seed, adapter_options or {})
    logger.info("%s: adapter trained on %d samples (%d held out)", run_id, trained["train"],
                trained["held_out"])
    out = write_aligned(dataset, encoder, x_url, y_url, run_id, run_url, trained["adapter_url"],
                        trained["split_url"])
    views = out["views"]
    with dask_cluster(address) as addr:
        before = compare_pair(dataset, reference, encoder, views["y"], views["x"], root,
                              f"{run_id}-before", run_id, params, addr, logger)
        after = compare_pair(dataset, reference, out["aligned_id"], views["y"], views["aligned"],
                             root, f"{run_id}-after", run_id, params, addr, logger,
                             parent_run_id=f"{run_id}-before")
    probes = label_probes(dataset, x_url, out["aligned_url"], trained["split_url"])
    summary = {"run_id": run_id, "encoder": encoder, "reference": reference,
               "aligned_id": out["aligned_id"], "aligned_url": out["aligned_url"],
               "train": trained["train"], "held_out": trained["held_out"],
               "before": {"run_id": before["run_id"], "spec_diff": before["spec_diff"]},
               "after": {"run_id": after["run_id"], "spec_diff": after["spec_diff"]},
               "probes": probes}
    urls.write_json(urls.join(run_url, "align.json"), summary)
    from speclens.report.align import write_align_report

    summary["report"] = write_align_report(urls.join(root, "reports", run_id), summary)
    logger.info("%s: SPEC-diff(reference over encoder) %.4f -> %.4f; probes %s", run_id,
                before["spec_diff"]["x_over_y"], after["spec_diff"]["x_over_y"], json.dumps(probes))
    return summary


def align(dataset: str, encoder: str, reference: str, **kwargs) -> dict:
    """Run :func:`align_flow`; raises :class:`InputError` for bad input (one sentence)."""
    with prefect_api():
        state = align_flow(dataset=dataset, encoder=encoder, reference=reference, **kwargs,
                           return_state=True)
    return flow_result(state, "align", value_errors_are_input=True)
