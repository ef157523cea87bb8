"""The align flow's encoder fine-tune mode end to end on CPU: the tiny @random open_clip image
tower (``speclens-tiny``, shipped in speclens/encoders/configs) fine-tuned toward hue-hist on
48 embedded-sample images for 3 steps; the aligned entry, the linked before/after runs, a
rerun of the run id that resumes without training, and the one-sentence bad-input errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from speclens.datasets.sources import IngestSource
from speclens.encoders.weights import sha256_file
from speclens.errors import InputError
from speclens.flows.align import align
from speclens.flows.embed import embed
from speclens.flows.ingest import ingest
from speclens.storage.embedding_store import EmbeddingStore
from speclens.storage.layout import Layout
from speclens.storage.warehouse import Warehouse

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("torch_one_thread")]

ENCODER = "open_clip:speclens-tiny@random"
OPTIONS = {"steps": 3, "batch_size": 8, "lr": 1e-3, "checkpoint_every": 1}
COMPARE = {"rff_dim": 64, "n_modes": 2, "members": 5}


@pytest.fixture(scope="module")
def stores(tmp_path_factory, dask_address, torch_one_thread):
    root = str(tmp_path_factory.mktemp("align-finetune"))
    dataset = f"{root}/datasets/sample.zarr"
    ingest(IngestSource.sample(48, 4), dataset, shard_size=24, address=dask_address, progress=False)
    embed(dataset, [ENCODER, "hue-hist"], device="cpu", progress=False)
    return root, dataset


def run(stores, dask_address, **kwargs):
    root, dataset = stores
    kwargs = {"run_id": "ft", "mode": "finetune", "options": OPTIONS, **kwargs}
    return align(
        dataset,
        kwargs.pop("encoder", ENCODER),
        "hue-hist",
        root=root,
        seed=0,
        address=dask_address,
        device="cpu",
        compare=COMPARE,
        **kwargs,
    )


@pytest.fixture(scope="module")
def first(stores, dask_address):
    summary = run(stores, dask_address)
    folder = Path(summary["finetune"]["checkpoint"]).parent
    snapshot = {p.name: (p / "model.safetensors").stat().st_mtime_ns for p in folder.iterdir()}
    vectors, _ = EmbeddingStore.open(summary["aligned_url"]).rows()
    return summary, snapshot, vectors


def test_aligned_entry_is_the_fine_tuned_checkpoints_embedding(stores, first):
    root, dataset = stores
    s, snapshot, vectors = first
    ft = s["finetune"]
    assert s["mode"] == "finetune" and s["train"] == 24 and s["held_out"] == 24
    assert sorted(snapshot) == ["step-000001", "step-000002", "step-000003"]
    assert ft["checkpoint"] == os.path.join(root, "runs", "ft", "checkpoints", "step-000003")
    assert ft["checkpoint_step"] == 3 and ft["steps_run"] == 3 and ft["resumed_from"] is None
    assert ft["settings"]["steps"] == 3 and ft["settings"]["lr"] == 1e-3
    assert ft["settings"]["spec_weight"] == 1.0 and ft["trained_on"] == 24
    weights = os.path.join(ft["checkpoint"], "model.safetensors")
    assert ft["checkpoint_sha256"] == sha256_file(weights)
    aligned = EmbeddingStore.open(s["aligned_url"])
    assert s["aligned_url"] == Layout.embedding(dataset, f"{ENCODER}+aligned@ft")
    assert aligned.encoder_id == f"{ENCODER}+aligned@ft" and aligned.n_samples == 48
    assert aligned.valid().sum() == 48 and aligned.dim == 16
    meta = aligned.meta
    assert meta["align_mode"] == "finetune" and meta["aligned_from"] == ENCODER
    assert meta["checkpoint"] == ft["checkpoint"] and meta["checkpoint_step"] == 3
    assert meta["checkpoint_sha256"] == ft["checkpoint_sha256"] == meta["weights_sha256"]
    before, _ = EmbeddingStore.open(Layout.embedding(dataset, ENCODER)).rows()
    assert np.isfinite(vectors).all() and not np.allclose(vectors, before, atol=1e-4)
    saved = json.loads(Path(root, "runs", "ft", "align.json").read_text())
    assert saved["mode"] == "finetune" and saved["finetune"]["settings"]["batch_size"] == 8
    assert "fine-tuning its image tower to step 3" in Path(s["report"]).read_text("utf-8")


def test_both_runs_are_published_and_linked(stores, first):
    root, _ = stores
    s, _, _ = first
    runs = {r["run_id"]: r for r in Warehouse(f"{root}/warehouse").read("runs").to_pylist()}
    assert runs["ft-after"]["parent_run_id"] == "ft-before"
    assert runs["ft-before"]["encoder_y"] == ENCODER and runs["ft-before"]["n"] == 24
    assert runs["ft-after"]["encoder_y"] == f"{ENCODER}+aligned@ft"
    assert set(s["probes"]) == {"before", "after", "rows"}


def test_rerun_of_the_run_id_resumes_without_training(stores, dask_address, first):
    s, snapshot, vectors = first
    again = run(stores, dask_address)
    ft = again["finetune"]
    assert ft["resumed_from"] == 3 and ft["steps_run"] == 0 and ft["checkpoint_step"] == 3
    assert ft["checkpoint_sha256"] == s["finetune"]["checkpoint_sha256"]
    folder = Path(ft["checkpoint"]).parent
    assert {
        p.name: (p / "model.safetensors").stat().st_mtime_ns for p in folder.iterdir()
    } == snapshot
    prov = json.loads((Path(ft["checkpoint"]) / "provenance.json").read_text())
    assert [h["step"] for h in prov["loss_history"]] == [1, 2, 3]
    rewritten, _ = EmbeddingStore.open(again["aligned_url"]).rows()
    np.testing.assert_array_equal(rewritten, vectors)


def test_interrupted_training_resumes_on_the_same_batches(stores, first, tmp_path):
    """Two steps, then three: the third step continues exactly like the first run's; a
    resume with other batches, another model setting or fewer steps is refused."""
    from prefect.logging import disable_run_logger

    from speclens.tasks.align.finetune import finetune_encoder
    from speclens.tasks.align.run import AlignRun

    _, dataset = stores
    s, _, _ = first
    x_url = Layout.embedding(dataset, ENCODER)
    y_url = Layout.embedding(dataset, "hue-hist")
    args = (dataset, ENCODER, "hue-hist", x_url, y_url, str(tmp_path), "resume", 0.5, 0, "cpu")

    def run_with(options):
        return finetune_encoder.fn(AlignRun(*args, options))

    with disable_run_logger():
        run_with({**OPTIONS, "steps": 2})
        resumed = run_with(OPTIONS)
    assert resumed["resumed_from"] == 2 and resumed["steps_run"] == 1
    history = json.loads((Path(resumed["checkpoint"]) / "provenance.json").read_text())
    first_history = json.loads((Path(s["finetune"]["checkpoint"]) / "provenance.json").read_text())
    assert history["loss_history"] == first_history["loss_history"]
    with disable_run_logger():
        with pytest.raises(InputError, match=r"other data settings \(batch_size: 8\)"):
            run_with({**OPTIONS, "steps": 4, "batch_size": 4})
        with pytest.raises(InputError, match=r"different configuration \(lr\).*new --run-id"):
            run_with({**OPTIONS, "steps": 4, "lr": 1e-2})
        with pytest.raises(InputError, match="past --steps 2; pass --steps 3 or more"):
            run_with({**OPTIONS, "steps": 2})


def test_a_dataset_without_captions_is_refused(stores, tmp_path, monkeypatch):
    from prefect.logging import disable_run_logger

    from speclens.storage.dataset_store import CAPTIONS_SCHEMA, DatasetStore
    from speclens.tasks.align.finetune import finetune_encoder
    from speclens.tasks.align.run import AlignRun

    _, dataset = stores
    monkeypatch.setattr(DatasetStore, "captions", lambda self: CAPTIONS_SCHEMA.empty_table())
    x_url = Layout.embedding(dataset, ENCODER)
    y_url = Layout.embedding(dataset, "hue-hist")
    with disable_run_logger(), pytest.raises(InputError, match="has no captions") as err:
        finetune_encoder.fn(
            AlignRun(
                dataset,
                ENCODER,
                "hue-hist",
                x_url,
                y_url,
                str(tmp_path),
                "nocap",
                0.5,
                0,
                "cpu",
                OPTIONS,
            )
        )
    assert "--mode adapter" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("encoder", "mode", "match"),
    [
        ("hue-hist", "finetune", "--mode finetune fine-tunes an open_clip image tower"),
        ("open_clip-text:speclens-tiny@random", "finetune", "is not one; pass --encoder open_clip"),
        (ENCODER, "retrain", "align mode 'retrain' is unknown; pass --mode adapter"),
    ],
)
def test_bad_inputs_give_one_sentence(stores, dask_address, encoder, mode, match):
    with pytest.raises(InputError, match=match) as err:
        run(stores, dask_address, encoder=encoder, mode=mode, run_id="bad")
    message = str(err.value)
    assert message.endswith(".") and "\n" not in message


def test_cli_checks_the_mode_before_starting_a_flow(stores):
    from typer.testing import CliRunner

    from speclens.cli import app

    _, dataset = stores
    result = CliRunner().invoke(
        app,
        [
            "align",
            "--dataset",
            dataset,
            "--encoder",
            "pixels",
            "--reference",
            "hue-hist",
            "--mode",
            "finetune",
        ],
    )
    assert result.exit_code == 2
    assert "--mode finetune fine-tunes an open_clip image tower" in result.output


def test_cli_finetune_defaults_are_the_flows():
    import inspect

    from speclens.commands.align import align as command
    from speclens.tasks.align.finetune import finetune_settings

    defaults = finetune_settings({})
    params = inspect.signature(command).parameters
    for name in ("steps", "lr", "spec_weight", "checkpoint_every"):
        assert params[name].default == defaults[name], name
    # --batch-size serves both modes: unset, each mode takes its own default
    assert params["batch_size"].default is None and defaults["batch_size"] == 64


def test_fine_tunes_on_a_coco_format_store(sample_copies, dask_address, tmp_path):
    """COCO layout (images folder + captions JSON, several captions per image, no labels):
    trained on its captions; no labels, so no probes."""
    coco, root = sample_copies["coco"], str(tmp_path)
    dataset = f"{root}/datasets/coco.zarr"
    ingest(
        IngestSource.coco(coco["images"], coco["captions"]),
        dataset,
        image_size=64,
        shard_size=24,
        address=dask_address,
        progress=False,
    )
    embed(dataset, [ENCODER, "hue-hist"], device="cpu", progress=False)
    s = align(
        dataset,
        ENCODER,
        "hue-hist",
        root=root,
        run_id="coco",
        mode="finetune",
        seed=0,
        options={**OPTIONS, "steps": 2},
        address=dask_address,
        device="cpu",
        compare=COMPARE,
    )
    assert s["finetune"]["checkpoint_step"] == 2 and s["finetune"]["trained_on"] == 24
    assert EmbeddingStore.open(s["aligned_url"]).valid().sum() == 48
    assert s["probes"] == {}
    runs = {r["run_id"] for r in Warehouse(f"{root}/warehouse").read("runs").to_pylist()}
    assert runs == {"coco-before", "coco-after"}


@pytest.mark.parametrize(
    "args,message",
    [
        (
            ["--steps", "10"],
            "--steps is not used by --mode adapter; drop it or pass the --mode "
            "finetune that uses it.",
        ),
        (
            ["--mode", "finetune", "--kind", "mlp", "--epochs", "3"],
            "--kind, --epochs are not used by --mode finetune; drop them",
        ),
    ],
)
def test_cli_refuses_options_of_the_other_mode(stores, args, message, tmp_path):
    from typer.testing import CliRunner

    from speclens.cli import app

    _, dataset = stores
    result = CliRunner().invoke(
        app,
        [
            "align",
            "--dataset",
            dataset,
            "--encoder",
            ENCODER,
            "--reference",
            "hue-hist",
            "--root",
            str(tmp_path),
            *args,
        ],
    )
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())
