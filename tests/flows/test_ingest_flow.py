"""The ingest flow on the embedded sample: contents, summary artifact, rerun, resume of a
lost shard, refusal of a different input, --overwrite, memory:// stores, `speclens info`."""

from __future__ import annotations

import numpy as np
import pytest
from prefect.states import Failed

from speclens.datasets import sample
from speclens.datasets.ingest import IngestOptions, prepare
from speclens.datasets.sources import IngestSource
from speclens.errors import IncompleteRun, InputError
from speclens.flows.ingest import ingest
from speclens.storage import urls
from speclens.storage.dataset_store import DatasetStore
from speclens.tasks.retries import retry_on_io_error

pytestmark = pytest.mark.integration
N, SEED, SHARD = 300, 7, 64


@pytest.fixture(scope="module")
def sample_store(tmp_path_factory, dask_address):
    out = str(tmp_path_factory.mktemp("flow") / "sample.zarr")
    summary = ingest(
        IngestSource.sample(N, SEED), out, shard_size=SHARD, address=dask_address, progress=False
    )
    return out, summary


def arrays(out):
    store = DatasetStore.open(out)
    names = ["images", "sample_id", "label", "status", "sha256", "caption", "factors/colour"]
    return {name: store.array(name)[:] for name in names}


def test_sample_store_holds_the_generated_ground_truth(sample_store):
    out, summary = sample_store
    assert summary["counts"] == {"ok": N, "quarantined": 0}
    assert summary["shards_written"] == 5 and summary["images_per_s"] > 0
    store = DatasetStore.open(out)
    images, f, caps = sample.generate(N, SEED)
    np.testing.assert_array_equal(store.images(), images)
    np.testing.assert_array_equal(store.labels(), f.label)
    for name, values in store.factors().items():
        np.testing.assert_array_equal(values, getattr(f, name))
    assert store.factor_names()["colour"] == list(sample.COLOURS)
    assert store.label_names[0] == "red circle"
    assert store.captions().num_rows == 3 * N
    assert list(store.sample_ids()[:2]) == ["shapes/000000", "shapes/000001"]
    assert store.ok_mask().all()


def test_summary_artifact_is_published(sample_store):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["ingest-summary"]))
        )
    texts = [a.data for a in found if sample_store[0] in str(a.data)]
    assert texts and "| ok | 300 |" in texts[0] and "images/s" in texts[0]


def test_rerun_skips_committed_shards(sample_store, dask_address):
    out, _ = sample_store
    before, markers = arrays(out), DatasetStore.open(out).markers()
    summary = ingest(
        IngestSource.sample(N, SEED), out, shard_size=SHARD, address=dask_address, progress=False
    )
    assert summary["shards_written"] == 0 and summary["shards_skipped"] == 5
    assert DatasetStore.open(out).markers() == markers
    for name, values in arrays(out).items():
        np.testing.assert_array_equal(values, before[name])


def test_lost_shard_is_redone_alone(sample_store, dask_address):
    out, _ = sample_store
    before, markers = arrays(out), DatasetStore.open(out).markers()
    store = DatasetStore.open(out, "r+")
    store.array("images")[SHARD * 2 : SHARD * 3] = 0  # a writer died after its rows...
    urls.remove(urls.join(out, "_shards", "00002.json"))  # ...before its marker
    assert store.summary()["pending"] == [2] and store.summary()["state"] == "partial"
    summary = ingest(
        IngestSource.sample(N, SEED), out, shard_size=SHARD, address=dask_address, progress=False
    )
    assert summary["shards_written"] == 1 and summary["shards_skipped"] == 4
    after = DatasetStore.open(out).markers()
    assert {i: after[i] for i in (0, 1, 3, 4)} == {i: markers[i] for i in (0, 1, 3, 4)}
    for name, values in arrays(out).items():
        np.testing.assert_array_equal(values, before[name])


def test_different_input_is_refused_then_overwritten(tmp_path, dask_address):
    out = str(tmp_path / "s.zarr")
    ingest(IngestSource.sample(40, 1), out, shard_size=16, address=dask_address, progress=False)
    with pytest.raises(InputError, match="different input or settings.*--overwrite"):
        prepare(IngestSource.sample(40, 2), out, IngestOptions(shard_size=16))
    with pytest.raises(InputError, match="different input or settings.*--overwrite"):
        prepare(IngestSource.sample(40, 1), out, IngestOptions(shard_size=16, image_size=32))
    assert DatasetStore.open(out).meta["source"]["seed"] == 1  # untouched
    summary = ingest(
        IngestSource.sample(40, 2),
        out,
        shard_size=16,
        address=dask_address,
        overwrite=True,
        progress=False,
    )
    assert summary["shards_written"] == 3
    np.testing.assert_array_equal(DatasetStore.open(out).images(), sample.generate(40, 2)[0])


def test_memory_store_on_a_local_threaded_cluster(prefect_api):
    out = "memory://speclens-tests/sample.zarr"
    summary = ingest(IngestSource.sample(50, 0), out, shard_size=20, workers=2, progress=False)
    assert summary["counts"]["ok"] == 50
    np.testing.assert_array_equal(DatasetStore.open(out).images(), sample.generate(50, 0)[0])
    urls.remove(out)


def test_info_command_reports_shards_and_counts(sample_store):
    from typer.testing import CliRunner

    from speclens.cli import app

    result = CliRunner().invoke(app, ["info", sample_store[0]])
    assert result.exit_code == 0, result.output
    assert "shards      5 of 64: 5 committed, 0 pending" in result.stdout
    assert "ok 300, quarantined 0" in result.stdout


def test_retries_only_on_io_errors():
    assert retry_on_io_error(None, None, Failed(data=ConnectionResetError("peer reset")))
    assert retry_on_io_error(None, None, Failed(data=OSError(5, "Input/output error")))
    assert not retry_on_io_error(None, None, Failed(data=ValueError("a bug")))
    assert not retry_on_io_error(None, None, Failed(data=KeyError("x")))


def test_cli_empty_dataset_is_one_sentence_and_non_zero(tmp_path, dask_address):
    from typer.testing import CliRunner

    from speclens.cli import app

    (tmp_path / "empty").mkdir()
    out = tmp_path / "o.zarr"
    result = CliRunner().invoke(
        app,
        [
            "ingest",
            "folder",
            str(tmp_path / "empty"),
            "--out",
            str(out),
            "--address",
            dask_address,
            "--no-progress",
        ],
    )
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: image folder {tmp_path}/empty holds no images; it needs files ending in "
        ".jpg, .jpeg, .png, .bmp, .gif, .webp or .tif."
    )
    assert not out.exists()


def test_failed_shards_end_the_run_with_one_sentence_and_a_rerun_redoes_them(
    tmp_path, dask_address
):
    out = str(tmp_path / "s.zarr")
    source = IngestSource.sample(60, 0)
    prepare(source, out, IngestOptions(shard_size=20))
    plan = tmp_path / "s.zarr" / "_plan.parquet"
    good = plan.read_bytes()
    plan.write_bytes(b"not parquet")  # every shard fails on a non-I/O error: no retries
    with pytest.raises(
        IncompleteRun,
        match=r"^3 of 3 shards of .* failed \(shard 0: .*\); "
        r"rerun the same command to redo only those",
    ):
        ingest(source, out, shard_size=20, address=dask_address, progress=False)
    assert DatasetStore.open(out).summary()["state"] == "partial"
    plan.write_bytes(good)
    summary = ingest(source, out, shard_size=20, address=dask_address, progress=False)
    assert summary["shards_written"] == 3 and summary["state"] == "complete"
