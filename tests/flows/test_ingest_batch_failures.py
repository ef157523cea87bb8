"""A batch of shards whose task keeps failing on I/O: Prefect retries it (each retry redoes
only the shards without a marker), then the run ends with the shards left uncommitted as
failed, and the others written."""

from __future__ import annotations

import pytest

from speclens.datasets.sources import IngestSource
from speclens.errors import IncompleteRun
from speclens.flows import ingest as ingest_module
from speclens.storage.dataset_store import DatasetStore

pytestmark = pytest.mark.integration


def test_a_batch_failing_on_io_after_its_retries_fails_only_its_uncommitted_shards(
    tmp_path, prefect_api, monkeypatch
):
    out = str(tmp_path / "s.zarr")
    attempts = []
    real_write = DatasetStore.write_shard

    def write(self, shard_id, *args):
        if shard_id == 1:
            attempts.append(shard_id)
            raise OSError(5, "Input/output error")
        return real_write(self, shard_id, *args)

    # threads of this process (the patch applies), no waiting between the retries
    monkeypatch.setattr(DatasetStore, "write_shard", write)
    fast = ingest_module.ingest_shards.with_options(retry_delay_seconds=0)
    monkeypatch.setattr(ingest_module, "ingest_shards", fast)
    with pytest.raises(
        IncompleteRun, match=r"^1 of 3 shards of .* failed \(shard 1: OSError: .*Input/output"
    ):
        ingest_module.ingest(
            IngestSource.sample(30, 0),
            out,
            shard_size=10,
            workers=1,
            processes=False,
            progress=False,
        )
    assert len(attempts) == 4  # the first run and 3 retries, each redoing shard 1 only
    store = DatasetStore.open(out)
    assert store.committed() == [0, 2] and store.summary()["state"] == "partial"
