"""The shared local Prefect server, as commands use it (real processes, a private
PREFECT_HOME each): two commands started at once share one server; it stops itself once idle;
a stale record is replaced; `speclens server` starts, reports and stops it; a command killed by
SIGINT, SIGTERM or SIGKILL leaves none of its processes behind (the shared server is not its)."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.integration
BIN = pathlib.Path(sys.executable).parent


def _env(home: pathlib.Path, idle: float) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env.update(PREFECT_HOME=str(home), SPECLENS_SERVER_IDLE_S=str(idle))
    return env


def _speclens(env: dict, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [str(BIN / "speclens"), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _record(home: pathlib.Path) -> dict | None:
    path = home / "speclens-server" / "server.json"
    return json.loads(path.read_text()) if path.exists() else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = pathlib.Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ")[-1].startswith("Z"))


def _until(check, timeout: float, step: float = 0.5) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(step)
    return True


def _daemons(home: pathlib.Path) -> list[int]:
    """Pids of server daemons whose record lives in ``home``."""
    mark = str(home / "speclens-server" / "server.json")
    out = []
    for proc in pathlib.Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if "speclens.flows.server_daemon" in cmd and mark in cmd and _alive(int(proc.name)):
                out.append(int(proc.name))
    return out


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for proc in pathlib.Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                ppid = int((proc / "stat").read_text().split(") ")[-1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(proc.name))
    out, todo = set(), [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            if c not in out:
                out.add(c)
                todo.append(c)
    return out


def test_two_commands_at_once_share_one_server_that_stops_when_idle(tmp_path):
    home, env = tmp_path / "home", _env(tmp_path / "home", idle=20)
    procs = [
        _speclens(env, "ingest", "sample", "--n", "10", "--out", str(tmp_path / f"s{i}.zarr"))
        for i in range(2)
    ]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert all("threads of this process (10 images" in out for out in outs), outs
    rec = _record(home)
    assert rec is not None and _daemons(home) == [rec["pid"]]  # one server, not two
    assert _until(lambda: not _alive(rec["pid"]), timeout=90), "the server did not stop when idle"
    assert _record(home) is None  # it removed its record on the way out


def test_a_stale_record_is_replaced_and_server_commands_say_what_runs(tmp_path):
    home, env = tmp_path / "home", _env(tmp_path / "home", idle=300)
    (home / "speclens-server").mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = {"pid": dead.pid, "port": 9, "url": "http://127.0.0.1:9/api", "idle_s": 1, "started": 0}
    (home / "speclens-server" / "server.json").write_text(json.dumps(stale))
    out = subprocess.run(
        [str(BIN / "speclens"), "server", "status"], env=env, capture_output=True, text=True
    )
    assert "not running (a stale record" in out.stdout
    try:
        out = subprocess.run(
            [str(BIN / "speclens"), "server", "start"],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert out.returncode == 0 and out.stdout.startswith("started: http://127.0.0.1:"), out
        rec = _record(home)
        assert rec["pid"] != dead.pid and _daemons(home) == [rec["pid"]]
        again = subprocess.run(
            [str(BIN / "speclens"), "server", "start"], env=env, capture_output=True, text=True
        )
        assert again.stdout.startswith(f"running: {rec['url']} (pid {rec['pid']}")
        site = subprocess.run(
            [str(BIN / "speclens"), "server", "status"],
            env={**env, "PREFECT_API_URL": "http://site:4200/api"},
            capture_output=True,
            text=True,
        )
        assert "speclens commands use http://site:4200/api and start no server" in site.stdout
    finally:
        out = subprocess.run(
            [str(BIN / "speclens"), "server", "stop"], env=env, capture_output=True, text=True
        )
    assert out.stdout.startswith("stopped: ") and _until(lambda: not _daemons(home), 30)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_a_killed_command_leaves_no_process_of_its_own(tmp_path, sig):
    home, env = tmp_path / "home", _env(tmp_path / "home", idle=300)
    subprocess.run(
        [str(BIN / "speclens"), "server", "start"],
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )
    server = _record(home)["pid"]
    try:
        cmd = _speclens(
            env,
            "ingest",
            "sample",
            "--n",
            "20000",
            "--processes",
            "--no-progress",
            "--out",
            str(tmp_path / "big.zarr"),
        )
        # the command's Dask worker processes (and multiprocessing's helpers) are up
        assert _until(lambda: len(_descendants(cmd.pid)) >= 3, timeout=120), cmd.poll()
        time.sleep(2)
        family = _descendants(cmd.pid)
        os.kill(cmd.pid, sig)
        cmd.communicate(timeout=120)
        left = lambda: {p for p in family if _alive(p)}  # noqa: E731
        assert _until(lambda: not left(), timeout=60), f"left behind after {sig.name}: {left()}"
        assert _alive(server)  # the shared server is not the command's
    finally:
        subprocess.run([str(BIN / "speclens"), "server", "stop"], env=env, capture_output=True)
