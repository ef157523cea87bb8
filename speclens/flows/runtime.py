"""Where flows run: one Prefect API for a flow and its Dask workers, the Dask cluster or task
runner, and how a finished run's result comes back.

Every speclens flow (ingest, embed, compare, align, audit) runs inside :func:`prefect_api`:

* :func:`prefect_api` makes sure a Prefect API is reachable by URL. If ``PREFECT_API_URL``
  is set (a real server, or the test harness), it is used. Otherwise the shared local server
  (one per ``PREFECT_HOME``, reused by every command until it has been idle for 30 minutes,
  :mod:`speclens.flows.local_server`) and its URL exported, so Dask worker processes report
  to the same server instead of each starting its own.
* :func:`task_runner` builds a ``DaskTaskRunner``: a ``distributed.LocalCluster`` by default
  (``n_workers`` processes of one thread each; threads in one process with
  ``processes=False``, needed for ``memory://`` stores), or the existing scheduler at
  ``address``. :func:`run_flow` runs a flow on one (ingest); embed uses one only with an
  ``address`` (otherwise its shard tasks run on threads of the flow's process).
* :func:`dask_cluster` yields a scheduler address, the one given or that of a LocalCluster
  started for the ``with`` block: compare, align and audit hand it to the tasks that run the
  compare map-reduce on it.
* :func:`flow_result` gives a finished run's result or raises its error again;
  :func:`collect_shards` and :func:`incomplete_message` are the shard loop ingest and embed share.

None of them starts anything at import (a LocalCluster started at import time, without a
``__main__`` guard, fails in its spawned workers).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator

# No telemetry, no outside lookups: the server inherits these when it starts.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
# A temporary server (Prefect's, e.g. the test harness's) starts in seconds, far slower on a
# loaded machine: wait up to 2 min (docs/benchmarks.md, "Prefect server start").
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
# Dask's own INFO chatter (workers starting and stopping) stays off the terminal.
os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")

from prefect.settings import PREFECT_API_URL, temporary_settings  # noqa: E402

from speclens.tasks.local_client import local_workers  # noqa: E402


@contextlib.contextmanager
def prefect_api() -> Iterator[str]:
    """Yield the URL of a Prefect API that this process and its Dask workers share: the one
    ``PREFECT_API_URL`` names, else the shared local server (started when none is running,
    :mod:`speclens.flows.local_server`)."""
    url = PREFECT_API_URL.value()
    if url:
        yield url
        return
    from speclens.flows.local_server import ensure_server

    url = ensure_server()["url"]
    previous = os.environ.get("PREFECT_API_URL")
    os.environ["PREFECT_API_URL"] = url
    try:
        with temporary_settings(updates={PREFECT_API_URL: url, **_local_heartbeats()}):
            yield url
    finally:
        if previous is None:
            os.environ.pop("PREFECT_API_URL", None)
        else:
            os.environ["PREFECT_API_URL"] = previous


def _local_heartbeats() -> dict:
    """Flow-run heartbeats off on the shared local server (unless the environment sets their
    frequency). They are events for an automation that marks silent runs crashed, which that
    server does not have; and Prefect joins the heartbeat thread at the end of every flow run,
    a thread that sleeps in one-second steps: 0 to 1 s of every command (0.5 s on average).
    A site's server (``PREFECT_API_URL``) keeps them."""
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY

    named = ("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", "PREFECT_RUNNER_HEARTBEAT_FREQUENCY")
    if any(k in os.environ for k in named):
        return {}
    return {PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}


#: Local runs of at most this many rows (compare) or images (ingest, audit) run their
#: Dask tasks on threads of the command's process: starting worker processes (5-8 s on two
#: cores) costs more than they save on small work (docs/benchmarks.md, "Commands").
LIGHT_ROWS = 20_000
LIGHT_IMAGES = 2_000


def use_processes(size: int | None, limit: int, processes: bool | None = None) -> bool:
    """Worker processes (True) or threads of this process (False) for a local run: as asked,
    else processes only above ``limit`` (an unknown size counts as large)."""
    if processes is not None:
        return processes
    return size is None or size > limit


def describe_local(processes: bool, size: int | None = None, unit: str = "rows") -> str:
    """The execution choice in words, for the run's log and summary."""
    if processes:
        return f"local Dask cluster of {local_workers()} worker processes"
    why = f" ({size:,} {unit}: too small to pay for worker processes)" if size is not None else ""
    return f"threads of this process{why}"


@contextlib.contextmanager
def dask_cluster(
    address: str | None,
    n_workers: int | None = None,
    processes: bool = True,
    scheduler: bool = True,
) -> Iterator[str]:
    """Yield a Dask scheduler address: ``address``, or that of a LocalCluster started for the
    ``with`` block: worker processes (one thread each, at most two), or with
    ``processes=False`` one worker whose threads run in this process (starts in about a
    second). ``processes=False, scheduler=False`` (work that only the compare passes run,
    through ``dask_client``): no cluster at all, :data:`IN_PROCESS` (threads of this
    process, :mod:`speclens.tasks.local_client`)."""
    if address:
        yield address
        return
    if not processes and not scheduler:
        from speclens.tasks.local_client import IN_PROCESS

        yield IN_PROCESS
        return
    from distributed import LocalCluster

    workers = n_workers or local_workers()
    kwargs = dict(n_workers=workers, threads_per_worker=1, processes=True)
    if not processes:
        kwargs = dict(n_workers=1, threads_per_worker=workers, processes=False, protocol="tcp://")
    before = spawn_environ()
    with LocalCluster(**kwargs, host="127.0.0.1", dashboard_address=":0") as cluster:
        restore_environ(before)
        yield cluster.scheduler_address


def spawn_environ() -> dict[str, str | None]:
    """This process's values of the variables a Dask Nanny sets for the workers it spawns.

    A Nanny writes its ``distributed.nanny.pre-spawn-environ`` (``OMP_NUM_THREADS=1``,
    ``MKL_NUM_THREADS=1``, ``OPENBLAS_NUM_THREADS=1``) into the *parent's* ``os.environ``
    before it spawns a worker, and leaves it there. The workers should have one thread each;
    the flow's process should not: torch imported after that point gets one thread, and the
    compare's solve, which runs in the flow's process, took 9.2 s instead of 5.3 s at
    m = 4,000. :func:`restore_environ` puts these values back once the workers are up."""
    import dask

    keys = dask.config.get("distributed.nanny.pre-spawn-environ", default={}) or {}
    return {k: os.environ.get(k) for k in keys}


def restore_environ(before: dict[str, str | None]) -> None:
    """Put back the values :func:`spawn_environ` read (unset the ones that were unset)."""
    for key, value in before.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


class Stopwatch:
    """Seconds per named stage of a run: ``with clock("gram"): ...``, then ``clock.seconds``."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] = time.perf_counter() - start


def task_runner(
    address: str | None = None,
    *,
    n_workers: int | None = None,
    threads_per_worker: int = 1,
    processes: bool = True,
    **cluster_kwargs,
):
    """A DaskTaskRunner on the scheduler at ``address``, or on a new LocalCluster (prefect_dask
    and distributed are imported here: a command without Dask work does not pay for them)."""
    from prefect_dask import DaskTaskRunner

    logging.getLogger("distributed").setLevel(logging.WARNING)
    if address:
        return DaskTaskRunner(address=address)
    kwargs = {
        "n_workers": n_workers,
        "threads_per_worker": threads_per_worker,
        "processes": processes,
        **cluster_kwargs,
    }
    if n_workers is None:
        kwargs["n_workers"] = max(1, (os.cpu_count() or 1) // threads_per_worker)
    return DaskTaskRunner(cluster_class="distributed.LocalCluster", cluster_kwargs=kwargs)


def run_flow(
    flow,
    *,
    address: str | None = None,
    n_workers: int | None = None,
    processes: bool = True,
    **parameters,
):
    """Run ``flow(**parameters)`` on a Dask task runner against a shared Prefect API.

    Returns the flow's final state (never raises for a failed run; the caller decides).
    """
    runner = task_runner(address, n_workers=n_workers, processes=processes)
    before = spawn_environ()
    try:
        with prefect_api():
            return flow.with_options(task_runner=runner)(**parameters, return_state=True)
    finally:
        restore_environ(before)


def flow_result(state, *, value_errors_are_input: bool = False):
    """The result of a finished flow run, or the exception that failed it, raised again as it
    was raised (a :class:`~speclens.errors.SpeclensError` for a user's mistake, an
    :class:`~speclens.errors.IncompleteRun` for shards that failed after their retries).
    ``value_errors_are_input``: a plain ValueError (the math core's refusal of an option
    value) is raised as an InputError."""
    from speclens.errors import InputError, SpeclensError

    try:
        return state.result()
    except ValueError as exc:
        if value_errors_are_input and not isinstance(exc, SpeclensError):
            raise InputError(str(exc)) from None
        raise


def collect_shards(
    futures: dict, total_rows: int, desc: str, progress: bool, settle=None
) -> tuple[list[dict], dict[int, str]]:
    """Wait for shard tasks (``{future: key}``) in the order they finish, with a progress bar
    of rows; returns the commit markers written and ``{shard_id: 'Type: message'}`` of the
    shards that failed (a failed task never stops the others). ``settle(key, result, exc)``
    turns a task's outcome into (markers, failed shards); by default a task is one shard
    (``key`` its id) whose result is its marker."""
    import sys

    from prefect.futures import as_completed
    from tqdm import tqdm

    settle = settle or _one_shard
    written, failed = [], {}
    with tqdm(
        total=total_rows,
        unit="img",
        desc=desc,
        file=sys.stderr,
        disable=not progress,
        dynamic_ncols=True,
    ) as bar:
        for future in as_completed(list(futures)):
            try:
                result, exc = future.result(), None
            except Exception as error:
                result, exc = None, error
            markers, bad = settle(futures[future], result, exc)
            written += markers
            failed.update(bad)
            bar.update(sum(m["stop"] - m["start"] for m in markers))
    return written, failed


def _one_shard(shard_id: int, marker, exc) -> tuple[list[dict], dict[int, str]]:
    if exc is not None:
        return [], {shard_id: failure_text(exc)}
    return [marker], {}


def failure_text(exc: BaseException) -> str:
    """How a failed shard's error is recorded: ``'Type: message'``."""
    return f"{type(exc).__name__}: {exc}"


def incomplete_message(failed: dict[int, str], n_shards: int, out: str) -> str:
    """One sentence for a run some of whose shards failed: how many, the first, what to do."""
    first = min(failed)
    return (
        f"{len(failed)} of {n_shards} shards of {out} failed (shard {first}: "
        f"{failed[first]}); rerun the same command to redo only those shards."
    )
