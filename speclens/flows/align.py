"""The align flow: SPEC-align one embedding to a reference, measured before and after.

The two modes differ in their train and write steps only; the flow takes them from
:data:`MODES`:

* ``adapter`` (:mod:`speclens.tasks.align.adapter`): an adapter (linear or residual
  MLP, :mod:`speclens.spec.adapter`) trained on the stored embeddings of the train rows and
  applied to every row;
* ``finetune`` (:mod:`speclens.tasks.align.finetune`): the encoder's open_clip image
  tower fine-tuned on the images and captions (contrastive loss plus the SPEC-align loss
  against the reference's stored vectors), checkpointed under ``<root>/runs/<run_id>/`` and
  resumed from there; the embed pipeline then embeds every sample with the checkpoint.

Every run:

1. checks its input and claims its run id before anything is written;
2. splits the samples both embed (seeded), trains on one part (the mode's ``train``) and writes
   the aligned embedding of every sample as a new encoder entry ``<encoder>+aligned@<run_id>``
   (the mode's ``write``), then the held-out views the comparisons read;
3. compares on the held-out samples, before (reference vs encoder) and after (reference vs
   aligned encoder); both runs go to the warehouse, the after run's ``parent_run_id`` naming the
   before run. The reference is X, so ``x_over_y`` is what the reference captures and the
   aligned embedding still misses: the quantity alignment should lower;
4. measures label probes before and after (alignment must not wreck the embedding) and writes
   the align report.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from prefect import flow, get_run_logger

from speclens.flows.compare import Pair, compare_pair, make_run_id
from speclens.flows.embed import embed_one
from speclens.flows.runtime import dask_cluster, flow_result, prefect_api
from speclens.storage import urls
from speclens.storage.layout import Layout
from speclens.tasks.align import adapter, finetune
from speclens.tasks.align.options import TRAIN_FRAC, check_options
from speclens.tasks.align.probes import label_probes
from speclens.tasks.align.run import AlignRun, claim_run, preflight
from speclens.tasks.align.views import aligned_entry, write_views
from speclens.tasks.checks import check_align, resolve_embedding
from speclens.tasks.params import CompareParams


def write_finetuned(run: AlignRun, trained: dict) -> str:
    """The aligned entry of the fine-tune mode, written by the embed pipeline: every sample
    embedded with the latest checkpoint, as the encoder's own store was embedded."""
    how = finetune.finetuned_entry(run, trained)
    _, url, keys = aligned_entry(run)
    settings = {
        "device": run.device,
        "batch_size": how["batch_size"],
        "normalize": how["normalize"],
        "seed": run.seed,
    }
    embed_one(
        run.dataset,
        how["encoder_id"],
        url,
        settings,
        overwrite=True,
        progress=False,
        entry={**how["provenance"], **keys},
    )
    finetune.check_finite(run, url, trained["checkpoint"])
    return url


@dataclass(frozen=True)
class Mode:
    """A mode's steps (its options are checked by
    :func:`speclens.tasks.align.options.check_options` before anything is written):
    ``train(run) -> trained``, ``write(run, trained) -> aligned store URL``, ``settings(run,
    trained)`` for align.json, and ``trained_line(trained)`` for the log."""

    train: Callable[[AlignRun], dict]
    write: Callable[[AlignRun, dict], str]
    settings: Callable[[AlignRun, dict], dict]
    trained_line: Callable[[dict], str]


MODES = {
    "adapter": Mode(
        adapter.train_adapter,
        adapter.write_adapted,
        adapter.settings,
        lambda t: f"adapter trained on {t['train']} samples ({t['held_out']} held out)",
    ),
    "finetune": Mode(
        finetune.finetune_encoder,
        write_finetuned,
        finetune.settings,
        lambda t: (
            f"image tower fine-tuned to step {t['checkpoint_step']} ({t['steps_run']} step(s) "
            f"this run) on {t['trained_on']} samples ({t['held_out']} held out); checkpoint "
            f"{t['checkpoint']}"
        ),
    ),
}


def check_inputs(mode: str, encoder: str, mode_options: dict | None = None) -> Mode:
    """The mode, or one sentence for an unknown mode or bad options of the mode (checked
    before any store is opened)."""
    check_options(mode, encoder, mode_options)
    return MODES[mode]


@flow(name="align")
def align_flow(
    dataset: str,
    encoder: str,
    reference: str,
    root: str = "speclens-out",
    run_id: str | None = None,
    mode: str = "adapter",
    train_frac: float = TRAIN_FRAC,
    seed: int = 0,
    options: dict | None = None,
    compare: dict | None = None,
    address: str | None = None,
    device: str = "auto",
) -> dict:
    logger = get_run_logger()
    params = CompareParams.from_options({"seed": seed, **(compare or {})})
    run_id = run_id or make_run_id(dataset, [encoder, reference, "align"], params)
    steps = check_inputs(mode, encoder, options)  # nothing is written before these pass
    x_url, y_url = resolve_embedding(dataset, encoder), resolve_embedding(dataset, reference)
    run = AlignRun(
        dataset,
        encoder,
        reference,
        x_url,
        y_url,
        root,
        run_id,
        train_frac,
        seed,
        device,
        dict(options or {}),
    )
    claim_run(run.run_url, {"mode": mode, **preflight(dataset, x_url, y_url)})
    trained = steps.train(run)
    logger.info("%s: %s", run_id, steps.trained_line(trained))
    aligned_id, aligned_url, _ = aligned_entry(run)
    steps.write(run, trained)
    views = write_views(run, aligned_url, trained["split_url"])
    before, after = _before_after(run, aligned_id, views, params, address)
    probes = label_probes(dataset, x_url, aligned_url, trained["split_url"], seed)
    summary = {
        **_record(run, mode, steps.settings(run, trained), params, trained),
        "aligned_id": aligned_id,
        "aligned_url": aligned_url,
        "before": _outcome(before),
        "after": _outcome(after),
        "probes": probes,
    }
    urls.write_json(urls.join(run.run_url, "align.json"), summary)
    from speclens.report.align import write_align_report

    summary["report"] = write_align_report(Layout(root).report(run_id), summary)
    logger.info(
        "%s: SPEC-diff(reference over encoder) %.4f -> %.4f; probes %s",
        *(run_id, before["spec_diff"]["x_over_y"], after["spec_diff"]["x_over_y"]),
        json.dumps(probes),
    )
    return summary


def _record(run: AlignRun, mode: str, settings: dict, params: CompareParams, trained: dict) -> dict:
    """What align.json says about the run's input and training."""
    return {
        "run_id": run.run_id,
        "mode": mode,
        mode: settings,
        "encoder": run.encoder,
        "seed": run.seed,
        "train_frac": run.train_frac,
        "compare": params.model_dump(),
        "reference": run.reference,
        "train": trained["train"],
        "held_out": trained["held_out"],
    }


def _outcome(result: dict) -> dict:
    """What align.json keeps of a held-out comparison."""
    return {
        "run_id": result["run_id"],
        "spec_diff": result["spec_diff"],
        "eigenvalues": [float(v) for v in result["eigenvalues"]],
    }


def _before_after(run: AlignRun, aligned_id: str, views: dict, params, address) -> tuple:
    """The held-out comparisons: reference vs encoder, then reference vs aligned encoder."""
    before_id, after_id = f"{run.run_id}-before", f"{run.run_id}-after"
    with dask_cluster(address) as addr:
        before = compare_pair(
            Pair(
                run.dataset,
                run.reference,
                run.encoder,
                views["y"],
                views["x"],
                run.root,
                before_id,
                run.run_id,
            ),
            params,
            addr,
        )
        after = compare_pair(
            Pair(
                run.dataset,
                run.reference,
                aligned_id,
                views["y"],
                views["aligned"],
                run.root,
                after_id,
                run.run_id,
                parent_run_id=before_id,
            ),
            params,
            addr,
        )
    return before, after


def align(dataset: str, encoder: str, reference: str, **kwargs) -> dict:
    """Run :func:`align_flow` (keyword arguments as it takes them); raises a
    :class:`~speclens.errors.SpeclensError` for bad input (one sentence), checked before
    any server starts where the input alone shows it."""
    mode, options = kwargs.get("mode", "adapter"), kwargs.get("options") or {}
    CompareParams.from_options(
        {"seed": kwargs.get("seed", 0), **(kwargs.get("compare") or {})}
    ).one_bandwidth()
    check_align(dataset, encoder, reference, mode, options)
    with prefect_api():
        state = align_flow(
            dataset=dataset, encoder=encoder, reference=reference, **kwargs, return_state=True
        )
    return flow_result(state, value_errors_are_input=True)
