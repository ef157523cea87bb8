"""The align flow: SPEC-align one embedding to a reference, measured before and after.

Two modes, which differ in steps 1 and 2 only:

1. a seeded train / held-out split of the samples both embed, then on the train rows
   ``train-adapter`` (``mode="adapter"``): an adapter (linear or residual MLP,
   :mod:`speclens.spec.adapter`) on the stored embeddings; or ``finetune-encoder``
   (``mode="finetune"``): the encoder's open_clip image tower fine-tuned on the images and
   captions with the contrastive loss plus the SPEC-align loss against the reference's stored
   vectors, checkpointed under ``<root>/runs/<run_id>/checkpoints/`` and resumed from there
   when the run id is run again (:mod:`speclens.tasks.align_finetune`).
2. ``write-aligned`` / ``write-finetuned``: the aligned embedding of every sample (adapter
   output, or the fine-tuned checkpoint's embedding) as a new encoder entry
   ``<encoder>+aligned@<run_id>`` beside the others, and held-out views for the comparisons.
3. compare on the held-out samples, before (reference vs encoder) and after (reference vs
   aligned encoder); both runs go to the warehouse, the after run's ``parent_run_id`` naming
   the before run. The reference is X, so ``x_over_y`` is what the reference captures and the
   aligned embedding still misses: the quantity alignment should lower.
4. ``label-probes``: k-NN and linear-probe label accuracy before and after (alignment must not
   wreck the embedding), and an align report: both SPEC-diffs, both spectra side by side, the
   probes, and links to both runs' full reports.
"""

from __future__ import annotations

import json

from prefect import flow, get_run_logger

from speclens.errors import InputError
from speclens.flows.compare import Pair, compare_pair, make_run_id
from speclens.flows.runtime import dask_cluster, flow_result, prefect_api
from speclens.spec.adapter import check_adapter_options
from speclens.storage import urls
from speclens.storage.layout import Layout
from speclens.tasks.align import claim_run, label_probes, preflight, train_adapter, write_aligned
from speclens.tasks.align_finetune import (
    check_finetune_encoder,
    finetune_encoder,
    finetune_settings,
    write_finetuned,
)
from speclens.tasks.checks import resolve_embedding
from speclens.tasks.params import CompareParams

MODES = ("adapter", "finetune")


def check_inputs(
    mode: str,
    encoder: str,
    finetune_options: dict | None = None,
    adapter_options: dict | None = None,
) -> None:
    """One sentence for an unknown mode, a fine-tune of something that is not open_clip, or
    bad options of the mode (checked before any store is opened)."""
    if mode not in MODES:
        raise InputError(
            f"align mode {mode!r} is unknown; pass --mode adapter (an adapter on "
            f"the stored embeddings) or --mode finetune (fine-tune an open_clip "
            f"image tower)."
        )
    if mode == "finetune":
        check_finetune_encoder(encoder)
        finetune_settings(finetune_options or {})
    else:
        try:
            check_adapter_options(adapter_options or {})
        except ValueError as exc:
            raise InputError(f"adapter option: {exc}") from None


@flow(name="align")
def align_flow(
    dataset: str,
    encoder: str,
    reference: str,
    root: str = "speclens-out",
    run_id: str | None = None,
    mode: str = "adapter",
    train_frac: float = 0.5,
    seed: int = 0,
    adapter_options: dict | None = None,
    compare_params: dict | None = None,
    address: str | None = None,
    finetune_options: dict | None = None,
    device: str = "auto",
) -> dict:
    logger = get_run_logger()
    params = CompareParams.from_options({"seed": seed, **(compare_params or {})})
    run_id = run_id or make_run_id(dataset, [encoder, reference, "align"], params)
    run_url = Layout(root).run(run_id)
    # bad input ends the run with its one sentence before anything is written
    check_inputs(mode, encoder, finetune_options, adapter_options)
    x_url, y_url = resolve_embedding(dataset, encoder), resolve_embedding(dataset, reference)
    claim_run(run_url, {"mode": mode, **preflight(dataset, x_url, y_url)})
    if mode == "adapter":
        trained = train_adapter(
            dataset, x_url, y_url, run_url, train_frac, seed, adapter_options or {}, device
        )
        logger.info(
            "%s: adapter trained on %d samples (%d held out)",
            run_id,
            trained["train"],
            trained["held_out"],
        )
        out = write_aligned(
            dataset, x_url, y_url, run_id, run_url, trained["adapter_url"], trained["split_url"]
        )
        settings = {
            **(adapter_options or {}),
            "epochs_run": trained["epochs"],
            "batch_size": trained["batch_size"],
            **trained["trained_with"],
        }
    else:
        trained = finetune_encoder(
            dataset,
            encoder,
            reference,
            x_url,
            y_url,
            run_url,
            train_frac,
            seed,
            finetune_options or {},
            device,
        )
        logger.info(
            "%s: image tower fine-tuned to step %d (%d step(s) this run) on %d samples "
            "(%d held out); checkpoint %s",
            run_id,
            trained["checkpoint_step"],
            trained["steps_run"],
            trained["trained_on"],
            trained["held_out"],
            trained["checkpoint"],
        )
        out = write_finetuned(
            dataset,
            encoder,
            x_url,
            y_url,
            run_id,
            run_url,
            trained["checkpoint"],
            trained["split_url"],
            device,
            trained["settings"]["batch_size"],
        )
        settings = {k: v for k, v in trained.items() if k not in ("train", "held_out", "split_url")}
    views = out["views"]
    with dask_cluster(address) as addr:
        before = compare_pair(
            Pair(
                dataset,
                reference,
                encoder,
                views["y"],
                views["x"],
                root,
                f"{run_id}-before",
                run_id,
            ),
            params,
            addr,
        )
        after = compare_pair(
            Pair(
                dataset,
                reference,
                out["aligned_id"],
                views["y"],
                views["aligned"],
                root,
                f"{run_id}-after",
                run_id,
                parent_run_id=f"{run_id}-before",
            ),
            params,
            addr,
        )
    probes = label_probes(dataset, x_url, out["aligned_url"], trained["split_url"], seed)
    summary = {
        "run_id": run_id,
        "mode": mode,
        mode: settings,
        "encoder": encoder,
        "seed": seed,
        "train_frac": train_frac,
        "compare": params.model_dump(),
        "reference": reference,
        "aligned_id": out["aligned_id"],
        "aligned_url": out["aligned_url"],
        "train": trained["train"],
        "held_out": trained["held_out"],
        **{
            side: {
                "run_id": r["run_id"],
                "spec_diff": r["spec_diff"],
                "eigenvalues": [float(v) for v in r["eigenvalues"]],
            }
            for side, r in (("before", before), ("after", after))
        },
        "probes": probes,
    }
    urls.write_json(urls.join(run_url, "align.json"), summary)
    from speclens.report.align import write_align_report

    summary["report"] = write_align_report(Layout(root).report(run_id), summary)
    logger.info(
        "%s: SPEC-diff(reference over encoder) %.4f -> %.4f; probes %s",
        run_id,
        before["spec_diff"]["x_over_y"],
        after["spec_diff"]["x_over_y"],
        json.dumps(probes),
    )
    return summary


def align(dataset: str, encoder: str, reference: str, **kwargs) -> dict:
    """Run :func:`align_flow`; raises :class:`InputError` for bad input (one sentence)."""
    with prefect_api():
        state = align_flow(
            dataset=dataset, encoder=encoder, reference=reference, **kwargs, return_state=True
        )
    return flow_result(state, value_errors_are_input=True)
