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
    _audit(server, worker, overrides)
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


EVENTS = """
import json
from prefect.client.orchestration import get_client
from prefect.events.filters import EventFilter, EventNameFilter
with get_client(sync_client=True) as c:
    page = c.read_events(EventFilter(event=EventNameFilter(name=["speclens.audit.alert"])), 50)
    print(json.dumps([{**e.payload, "resource": e.resource.id} for e in page.events]))
"""
ARTIFACTS = """
import json
from prefect.client.orchestration import get_client
with get_client(sync_client=True) as c:
    arts = c.read_artifacts()
    print(json.dumps([{"key": a.key, "data": a.data} for a in arts if a.key]))
"""


def _api(env: dict, code: str):
    """Run ``code`` against the server (its JSON answer, the last line printed)."""
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def _audit(server: dict, worker, overrides: dict) -> None:
    run = subprocess.run(
        [
            *(str(BIN / "prefect"), "--no-prompt", "deployment", "run", "speclens-audit/nightly"),
            *("--param", f"overrides={json.dumps(overrides)}", "--watch", "--watch-timeout", "420"),
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


def _wait_for(check, timeout: float = 90):
    deadline = time.time() + timeout
    while True:
        found = check()
        if found or time.time() > deadline:
            return found
        time.sleep(2)


def test_a_series_of_audits_alerts_once_the_candidate_differs(server, deployed, worker, tmp_path):
    """Three audits of one series (the candidate named 'nightly'): the baseline itself twice
    (no significant change, no event), then another encoder (an alert: the event, read back
    through the API with the series and run in its payload, the artifact, the notify
    deployment's trigger starting a flow run); `speclens history` shows the three runs."""
    root, warehouse = tmp_path / "out", tmp_path / "warehouse"
    base = {
        "root": str(root),
        "warehouse": str(warehouse),
        "source": {"n": N},
        "compare": {"rff_dim": 200, "n_modes": N_MODES},
        "encoders": None,  # the shipped config's every-pair list gives way to the roles
        "baseline": "hue-hist",
        "alerts": {"spec_diff": 0.02, "p_value": 0.01},
    }
    for i, candidate in enumerate(("hue-hist", "hue-hist", "grad-hist")):
        cand = [{"encoder": candidate, "name": "nightly"}]
        _audit(server, worker, {**base, "run_id": f"night-{i}", "candidates": cand})
        if i < 2:
            assert _api(server, EVENTS) == []
    events = _wait_for(lambda: _api(server, EVENTS))
    assert len(events) == 1, events
    event = events[0]
    runs = Warehouse(str(warehouse)).read("runs").sort_by("created_at").to_pylist()
    assert [r["run_id"] for r in runs] == ["night-0", "night-1", "night-2"]
    series = {r["series"] for r in runs}
    assert len(series) == 1 and "hue-hist.vs.nightly" in runs[0]["series"]
    assert event["series"] == runs[0]["series"] and event["run_id"] == "night-2"
    assert event["resource"] == f"speclens.series.{runs[0]['series']}"
    assert any("held-out SPEC-diff" in a for a in event["alerts"])
    assert [json.loads(r["alerts"]) == [] for r in runs] == [True, True, False]
    artifacts = _api(server, ARTIFACTS)
    alert_art = [a for a in artifacts if a["key"].startswith("speclens-alert-")]
    assert len(alert_art) == 1 and "night-2" in alert_art[0]["data"]
    notified = _wait_for(lambda: _notify_runs(server))
    assert [p["run_id"] for p in notified] == ["night-2"], notified
    out = subprocess.run(
        [str(BIN / "speclens"), "history", "--root", str(root), "--warehouse", str(warehouse)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert f"series {runs[0]['series']}: changed significantly since" in out.stdout
    assert sum("no significant change" in line and "night-" in line for line in lines) == 2
    assert sum(line.rstrip().endswith("significant") and "night-2" in line for line in lines) == 1
    assert (root / "reports" / "series" / runs[0]["series"] / "index.html").exists()


NOTIFY_RUNS = """
import json
from prefect.client.orchestration import get_client
with get_client(sync_client=True) as c:
    runs = c.read_flow_runs()
    deps = {d.id: d.name for d in c.read_deployments()}
    print(json.dumps([r.parameters for r in runs if deps.get(r.deployment_id) == "notify"]))
"""


def _notify_runs(server: dict) -> list:
    return _api(server, NOTIFY_RUNS)
