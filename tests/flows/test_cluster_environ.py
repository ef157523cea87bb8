"""A local Dask cluster leaves the flow's process its own thread settings: the Nanny writes
``OMP_NUM_THREADS=1`` (and MKL's, OpenBLAS's) into the parent's environment to spawn its
workers, and torch imported later in the flow's process would get one thread."""

from __future__ import annotations

import os

from speclens.flows.runtime import dask_cluster

KEYS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def _worker_environ():
    return {k: os.environ.get(k) for k in KEYS}


def test_a_local_cluster_leaves_the_parents_thread_settings(monkeypatch):
    from distributed import Client

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setenv("MKL_NUM_THREADS", "2")
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    with dask_cluster(None, 1) as address:
        inside = {k: os.environ.get(k) for k in KEYS}
        with Client(address) as client:
            workers = list(client.run(_worker_environ).values())
    assert inside == {"OMP_NUM_THREADS": None, "MKL_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": None}
    # the workers still get one thread each where the parent set nothing (Dask's pre-spawn
    # environment; a value the parent set is passed on)
    assert workers == [
        {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "1"}
    ]
    assert {k: os.environ.get(k) for k in KEYS} == inside
