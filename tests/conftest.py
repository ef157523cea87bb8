"""Shared fixtures: a real Prefect API (test harness), a real Dask LocalCluster, and small
ImageNet- and COCO-layout copies of the embedded sample written as real JPEG files.

Reusable by every flow's tests:

* ``prefect_api``  (session): URL of a temporary Prefect server with a temporary database;
  also exported as ``PREFECT_API_URL`` so subprocesses and Dask workers report to it.
* ``dask_address`` (session): address of a LocalCluster (2 worker processes, 1 thread each,
  on 127.0.0.1) that flows reach with ``address=dask_address``.
* ``flow_env``: environment for running ``speclens`` in a subprocess against that server.
* ``sample_copies`` (session): ``{"imagenet_train": {...}, "imagenet_val": {...},
  "coco": {...}, "n": N, "seed": S}`` with the paths the readers take.
"""

from __future__ import annotations

import os
import tempfile

# Before anything imports Prefect: private home, no telemetry, quiet Dask.
_HOME = tempfile.mkdtemp(prefix="speclens-prefect-home-")
os.environ["PREFECT_HOME"] = _HOME
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["DO_NOT_TRACK"] = "1"
# open_clip's table snapshot (speclens.encoders.openclip_catalogue) goes to a private folder
os.environ["SPECLENS_CACHE_DIR"] = tempfile.mkdtemp(prefix="speclens-cache-")
os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
# A command run without PREFECT_API_URL starts the shared local server in this home: it stops
# itself after 5 idle minutes, and pytest_sessionfinish stops it at the end of the session.
os.environ.setdefault("SPECLENS_SERVER_IDLE_S", "300")

import pytest  # noqa: E402

SAMPLE_N = 48
SAMPLE_SEED = 3


def pytest_sessionfinish(session, exitstatus):
    """Stop the shared local server a test's command started in this session's home."""
    from speclens.flows.local_server import stop_server

    stop_server()


@pytest.fixture(scope="session")
def prefect_api():
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        url = PREFECT_API_URL.value()
        previous = os.environ.get("PREFECT_API_URL")
        os.environ["PREFECT_API_URL"] = url
        try:
            yield url
        finally:
            if previous is None:
                os.environ.pop("PREFECT_API_URL", None)
            else:
                os.environ["PREFECT_API_URL"] = previous


@pytest.fixture(scope="session")
def dask_address(prefect_api):
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=":0"
    ) as cluster:
        yield cluster.scheduler_address


@pytest.fixture()
def flow_env(prefect_api):
    env = dict(os.environ)
    env["PREFECT_API_URL"] = prefect_api
    return env


@pytest.fixture(scope="session")
def sample_copies(tmp_path_factory):
    from speclens.datasets.sample_export import export_coco, export_imagenet

    root = tmp_path_factory.mktemp("sample-copies")
    return {
        "n": SAMPLE_N,
        "seed": SAMPLE_SEED,
        "imagenet_train": export_imagenet(str(root / "train"), SAMPLE_N, SAMPLE_SEED),
        "imagenet_val": export_imagenet(str(root / "val"), SAMPLE_N, SAMPLE_SEED, split="val"),
        "coco": export_coco(str(root / "coco"), SAMPLE_N, SAMPLE_SEED),
    }


@pytest.fixture(scope="module")
def torch_one_thread():
    """Small torch problems: one thread is faster, and much faster on a shared, busy machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
