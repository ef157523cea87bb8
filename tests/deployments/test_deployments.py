"""The deployments as an operator runs them: a real `prefect server` on 127.0.0.1 with its own
PREFECT_HOME, a process work pool, `prefect deploy` from deployments/prefect.yaml, a worker,
and the audit deployment triggered with parameters on the embedded sample; then the warehouse
rows it published. Everything started here is stopped, also when a step fails."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
import yaml

from speclens.storage.warehouse import Warehouse

pytestmark = pytest.mark.integration
REPO = pathlib.Path(__file__).parents[2]
BIN = pathlib.Path(sys.executable).parent
PREFECT_YAML = "deployments/prefect.yaml"
N, N_MODES, RUN_ID = 200, 3, "deployed-audit"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(args: list[str], env: dict, log: pathlib.Path) -> subprocess.Popen:
    return subprocess.Popen(
        [str(BIN / "prefect"), *args],
        cwd=REPO,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _stop(proc: subprocess.Popen, grace: float = 15) -> None:
    """SIGTERM to the process group it leads (it and its children), SIGKILL after ``grace``."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # leftovers of the group (flow runs, Dask workers)
    except ProcessLookupError:
        pass
    proc.wait(timeout=30)


def _tail(path: pathlib.Path, n: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-n:]) if path.exists() else ""


def _cli(env: dict, *args: str, timeout: float = 240) -> str:
    out = subprocess.run(
        [str(BIN / "prefect"), "--no-prompt", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert out.returncode == 0, (
        f"prefect {' '.join(args)}:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    )
    return out.stdout


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`prefect server start` with a temporary home; yields the environment that reaches it."""
    home = tmp_path_factory.mktemp("prefect-server-home")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_API_URL=f"http://127.0.0.1:{port}/api",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        DO_NOT_TRACK="1",
        PREFECT_WORKER_QUERY_SECONDS="1",
        PREFECT_CLI_WRAP_LINES="false",
    )
    log = home / "server.log"
    # No scheduler service: the nightly schedule must not start a full audit during the test.
    proc = _start(
        [
            "server",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-ui",
            "--no-scheduler",
        ],
        env,
        log,
    )
    try:
        deadline = time.time() + 240
        while True:
            assert proc.poll() is None, f"prefect server exited:\n{_tail(log)}"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert time.time() < deadline, f"prefect server did not answer:\n{_tail(log)}"
            time.sleep(1)
        yield env
    finally:
        _stop(proc)


@pytest.fixture(scope="module")
def deployed(server):
    """Both pools and the deployments: `--all`, or, until speclens/flows/align.py exists, the
    others by name (`prefect deploy --name` matches the entrypoint's function name)."""
    for pool in ("speclens-cpu", "speclens-gpu"):
        _cli(server, "work-pool", "create", pool, "--type", "process")
    specs = yaml.safe_load((REPO / PREFECT_YAML).read_text())["deployments"]
    present = [d for d in specs if (REPO / d["entrypoint"].split(":")[0]).exists()]
    picked = (
        ["--all"]
        if len(present) == len(specs)
        else [
            a for d in present for a in ("--name", f"{d['entrypoint'].split(':')[1]}/{d['name']}")
        ]
    )
    _cli(server, "deploy", *picked, "--prefect-file", PREFECT_YAML)
    return json.loads(_cli(server, "deployment", "ls", "--output", "json"))


@pytest.fixture(scope="module")
def worker(server, tmp_path_factory):
    log = tmp_path_factory.mktemp("prefect-worker") / "worker.log"
    proc = _start(
        ["worker", "start", "--pool", "speclens-cpu", "--type", "process", "--limit", "1"],
        server,
        log,
    )
    try:
        yield log
    finally:
        _stop(proc)


def test_deploy_creates_the_deployments_with_the_nightly_schedule(deployed):
    by_name = {d["name"]: d for d in deployed if d["name"] != "on-demand"}
    assert {"nightly", "cpu", "gpu"} <= set(by_name)
    assert sum(d["name"] == "on-demand" for d in deployed) >= 1
    crons = [s["schedule"]["cron"] for s in by_name["nightly"]["schedules"]]
    assert (
        crons == ["0 3 * * *"]
        and by_name["nightly"]["parameters"]["config"] == "deployments/audit.yaml"
    )
    assert by_name["gpu"]["work_pool_name"] == "speclens-gpu"
    assert by_name["gpu"]["job_variables"]["env"]["SPECLENS_DEVICE"] == "cuda"
    pull = by_name["nightly"]["pull_steps"][0]["prefect.deployments.steps.set_working_directory"]
    assert pathlib.Path(pull["directory"]).resolve() == REPO.resolve()


def test_triggered_audit_publishes_warehouse_rows(server, deployed, worker, tmp_path):
    root, warehouse = tmp_path / "out", tmp_path / "warehouse"
    overrides = {
        "root": str(root),
        "warehouse": str(warehouse),
        "run_id": RUN_ID,
        "source": {"n": N},
        "compare": {"rff_dim": 200, "n_modes": N_MODES},
    }
    run = subprocess.run(
        [
            str(BIN / "prefect"),
            "--no-prompt",
            "deployment",
            "run",
            "speclens-audit/nightly",
            "--param",
            f"overrides={json.dumps(overrides)}",
            "--watch",
            "--watch-timeout",
            "420",
        ],
        cwd=REPO,
        env=server,
        capture_output=True,
        text=True,
        timeout=480,
    )
    assert run.returncode == 0 and "Completed" in run.stdout, (
        f"{run.stdout[-2000:]}\n{run.stderr[-2000:]}\nworker log:\n{_tail(worker, 60)}"
    )
    wh = Warehouse(str(warehouse))
    runs = wh.read("runs", RUN_ID).to_pylist()
    assert len(runs) == 1 and runs[0]["n"] == N and runs[0]["status"] == "succeeded"
    assert (runs[0]["encoder_x"], runs[0]["encoder_y"]) == ("hue-hist", "grad-hist")
    assert runs[0]["rff_dim"] == 200 and runs[0]["dataset"] == str(
        root / "datasets" / "sample.zarr"
    )
    assert wh.read("modes", RUN_ID).num_rows == 2 * N_MODES
    assert wh.read("pair_scores", RUN_ID).num_rows == 1
    assert (root / "reports" / RUN_ID / "index.html").exists()
    assert not (root / "warehouse").exists()  # the warehouse root given replaces <root>/warehouse
