"""One local Prefect API shared by every speclens command on this machine (for this
``PREFECT_HOME``), when no ``PREFECT_API_URL`` names a site's server.

The first command that needs an API starts :mod:`speclens.flows.server_daemon` on a free port
of 127.0.0.1, in a session of its own, and records it in ``<PREFECT_HOME>/speclens-server/
server.json`` (pid, port, URL, idle limit, start time); later commands find the record, check
that the process is alive and answers ``/api/health``, and use it. A lock file makes commands
started at the same moment wait for one start instead of starting two; a record whose process
is gone or does not answer (killed, rebooted) is replaced. The server stops itself after
``idle`` seconds without a request (default 30 minutes: ``SPECLENS_SERVER_IDLE_S``), or with
:func:`stop_server` (``speclens server stop``).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

#: Seconds without a request before the shared server stops itself (``SPECLENS_SERVER_IDLE_S``).
DEFAULT_IDLE_S = 30 * 60
#: How long a start may take before the command gives up (a loaded machine is slow).
START_TIMEOUT_S = 120


def state_dir() -> Path:
    from prefect.settings import PREFECT_HOME

    return Path(PREFECT_HOME.value()).expanduser() / "speclens-server"


def idle_seconds() -> float:
    return float(os.environ.get("SPECLENS_SERVER_IDLE_S") or DEFAULT_IDLE_S)


def read_record() -> dict | None:
    try:
        return json.loads((state_dir() / "server.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def healthy(url: str, timeout: float = 3.0) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=timeout) as r:
            return r.status == 200
    except OSError:
        return False


def _usable(rec: dict | None) -> bool:
    return bool(rec) and alive(rec["pid"]) and healthy(rec["url"])


def running() -> dict | None:
    """The record of the shared server when its process is alive and answers, else None."""
    rec = read_record()
    return rec if _usable(rec) else None


@contextlib.contextmanager
def _locked():
    d = state_dir()
    d.mkdir(parents=True, exist_ok=True)
    with open(d / "lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield d
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def ensure_server(idle: float | None = None) -> dict:
    """The shared server's record, started first when none is running (module docstring)."""
    with _locked() as d:
        rec = read_record()
        if _usable(rec):
            return rec
        if rec:  # stale: its process is gone, or alive and deaf (stop it)
            _terminate(rec["pid"])
            (d / "server.json").unlink(missing_ok=True)
        return _start(d, idle if idle is not None else idle_seconds())


def _start(d: Path, idle: float) -> dict:
    port = _free_port()
    url = f"http://127.0.0.1:{port}/api"
    record = d / "server.json"
    env = {
        **os.environ,
        "PREFECT_UI_ENABLED": "0",
        "PREFECT__SERVER_EPHEMERAL": "1",
        "PREFECT__SERVER_FINAL": "1",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
    }
    env.pop("PREFECT_API_URL", None)
    args = [sys.executable, "-m", "speclens.flows.server_daemon"]
    args += ["--port", str(port), "--idle", str(idle), "--record", str(record)]
    with open(d / "server.log", "ab") as log:
        proc = subprocess.Popen(
            args, env=env, stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    while not healthy(url, timeout=2.0):
        if proc.poll() is not None or time.monotonic() > deadline:
            _terminate(proc.pid)
            tail = (d / "server.log").read_text(errors="replace").splitlines()[-5:]
            raise RuntimeError(
                f"the local Prefect server did not start within {START_TIMEOUT_S} s (log "
                f"{d / 'server.log'}: {' | '.join(tail)}); start one with `prefect server "
                "start` and set PREFECT_API_URL to its /api URL."
            )
        time.sleep(0.25)
    rec = {"pid": proc.pid, "port": port, "url": url, "idle_s": idle, "started": time.time()}
    tmp = record.with_suffix(".tmp")
    tmp.write_text(json.dumps(rec), encoding="utf-8")
    tmp.replace(record)
    return rec


def stop_server(timeout: float = 15.0) -> dict | None:
    """Stop the shared server (SIGTERM, SIGKILL after ``timeout``); its record, or None when
    none was recorded."""
    with _locked() as d:
        rec = read_record()
        if rec:
            _terminate(rec["pid"], timeout)
            (d / "server.json").unlink(missing_ok=True)
        return rec


def _terminate(pid: int, timeout: float = 15.0) -> None:
    if not alive(pid):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        _reap(pid)
        time.sleep(0.1)
    if alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    _reap(pid)


def _reap(pid: int) -> None:
    """Collect the exit status when ``pid`` is this process's child (else it stays a zombie
    that :func:`alive` counts as alive)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
