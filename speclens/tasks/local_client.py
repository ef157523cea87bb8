"""The compare passes on threads of this process without a Dask scheduler.

A small local compare (``LIGHT_ROWS``) runs its map-reduce on threads of the command's
process. A ``distributed`` LocalCluster for that costs its import (about 0.6 s of a
five-second command) and a scheduler's round trips for a handful of tasks; :class:`ThreadClient`
answers the few ``Client`` calls the passes make (``compute``, ``map``, ``gather``,
``scatter``, ``nthreads``) with dask's threaded scheduler and a thread pool instead. The
reduction trees are the same graphs, so the results are the same.

:data:`IN_PROCESS` is the address that names it: :func:`speclens.flows.runtime.dask_cluster`
yields it for in-process work that needs no scheduler, and
:func:`speclens.tasks.mapreduce.dask_client` opens a :class:`ThreadClient` for it.
"""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

IN_PROCESS = "threads://this-process"


def local_workers() -> int:
    """Workers (or threads) of local work: one per core, at most two."""
    return max(1, min(2, os.cpu_count() or 1))


def _done(value: Any) -> Future:
    future: Future = Future()
    future.set_result(value)
    return future


class ThreadClient:
    """What the compare passes ask of a ``distributed.Client``, on ``threads`` threads here."""

    def __init__(self, threads: int):
        self.threads = max(1, int(threads))

    def nthreads(self) -> dict[str, int]:
        return {IN_PROCESS: self.threads}

    def compute(self, graph) -> Future:
        import dask

        return _done(dask.compute(graph, scheduler="threads", num_workers=self.threads)[0])

    def map(self, fn, *iterables, pure: bool = True) -> list[Future]:
        with ThreadPoolExecutor(self.threads, thread_name_prefix="speclens-map") as pool:
            return [_done(v) for v in pool.map(fn, *iterables)]

    def gather(self, futures: list[Future]) -> list:
        return [f.result() for f in futures]

    def scatter(self, data, broadcast: bool = False):
        return data

    def close(self) -> None:
        """Nothing to stop: the pools live for one call each."""
