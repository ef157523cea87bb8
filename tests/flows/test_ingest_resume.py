"""Kill and resume: SIGKILL `speclens ingest sample` mid-run (flow, Dask cluster and all),
run the same command again: only uncommitted shards are redone, and the store equals that
of an uninterrupted run, array for array."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from speclens.datasets.sources import IngestSource
from speclens.flows.ingest import ingest
from speclens.storage.dataset_store import STRING_ROWS, DatasetStore

pytestmark = pytest.mark.integration
N, SEED, SHARD = 480, 11, 30  # 16 shards
N_SHARDS = N // SHARD


def command(out: str) -> list[str]:
    script = Path(sys.executable).with_name("speclens")
    head = [str(script)] if script.exists() else [sys.executable, "-m", "speclens.cli"]
    return head + [
        "ingest",
        "sample",
        "--out",
        out,
        "--n",
        str(N),
        "--seed",
        str(SEED),
        "--shard-size",
        str(SHARD),
        "--workers",
        "1",
        "--threads",
        "--no-progress",
    ]


def valid_markers(out: str) -> dict[int, dict]:
    try:
        return DatasetStore.open(out).markers()
    except ValueError:  # not planned yet
        return {}


def everything(out: str) -> dict:
    store = DatasetStore.open(out)
    names = [
        "images",
        "label",
        "duplicate_of",
        *STRING_ROWS,
        *(f"factors/{f}" for f in store.factor_names()),
    ]
    data = {name: store.array(name)[:] for name in names}
    data["captions"] = store.captions().to_pylist()
    data["counts"] = store.manifest()["counts"]
    data["input_hash"] = store.input_hash
    return data


def test_sigkill_mid_run_then_rerun_equals_an_uninterrupted_run(tmp_path, flow_env, dask_address):
    out = str(tmp_path / "killed.zarr")
    proc = subprocess.Popen(
        command(out),
        env=flow_env,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 120
    try:
        while len(valid_markers(out)) < 3:
            assert proc.poll() is None, proc.stdout.read().decode()[-3000:]
            assert time.monotonic() < deadline, "no shard committed within 120 s"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the flow and its Dask workers, no clean-up
        proc.wait()
    committed = valid_markers(out)
    assert 3 <= len(committed) < N_SHARDS, "the kill came after the run finished"
    assert DatasetStore.open(out).manifest()["state"] == "planned"

    rerun = subprocess.run(command(out), env=flow_env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    redone = N_SHARDS - len(committed)
    assert f"{redone} shard(s) written, {len(committed)} already committed" in rerun.stdout
    after = DatasetStore.open(out).markers()
    assert {i: after[i] for i in committed} == committed  # committed shards were not redone

    reference = str(tmp_path / "reference.zarr")
    ingest(
        IngestSource.sample(N, SEED),
        reference,
        shard_size=SHARD,
        address=dask_address,
        progress=False,
    )
    got, want = everything(out), everything(reference)
    assert got.keys() == want.keys()
    for name in want:
        if isinstance(want[name], np.ndarray):
            np.testing.assert_array_equal(got[name], want[name], err_msg=name)
        else:
            assert got[name] == want[name], name
