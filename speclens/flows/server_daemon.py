"""The shared local Prefect API, as a process of its own (``python -m
speclens.flows.server_daemon --port P --idle S``): Prefect's server app under uvicorn on
127.0.0.1, the same app and settings as the temporary server Prefect starts for a flow run,
that stops itself once no request has come for ``--idle`` seconds with no connection open.

Started by :func:`speclens.flows.local_server.ensure_server` in a session of its own, so a
command that is killed does not take it down; stopped by its idle clock, ``speclens server
stop`` or SIGTERM. On the way out it removes the server record if the record is still its own.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time


class IdleClock:
    """ASGI middleware: the time of the last request or connection event, and how many are
    open (an open events websocket keeps the server busy)."""

    def __init__(self, app):
        self.app = app
        self.last = time.monotonic()
        self.open = 0

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket") or scope.get("path") == "/api/health":
            return await self.app(scope, receive, send)  # speclens's own probes keep no one busy
        self.open += 1
        self.last = time.monotonic()
        try:
            return await self.app(scope, receive, send)
        finally:
            self.open -= 1
            self.last = time.monotonic()

    def idle_for(self) -> float:
        return 0.0 if self.open else time.monotonic() - self.last


def _watch(server, clock: IdleClock, idle: float) -> None:
    while not server.should_exit:
        time.sleep(min(5.0, max(idle / 4, 0.2)))
        if clock.idle_for() > idle:
            server.should_exit = True


def _forget(record: str) -> None:
    """Remove the server record when it still names this process."""
    try:
        with open(record, encoding="utf-8") as f:
            if json.load(f).get("pid") == os.getpid():
                os.remove(record)
    except (OSError, ValueError):
        pass


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--idle", type=float, required=True, help="seconds without a request")
    p.add_argument("--record", required=True, help="the server record (removed on exit)")
    a = p.parse_args()
    import uvicorn
    from prefect.server.api.server import create_app

    clock = IdleClock(create_app())
    config = uvicorn.Config(clock, host="127.0.0.1", port=a.port, log_level="error", lifespan="on")
    server = uvicorn.Server(config)
    threading.Thread(target=_watch, args=(server, clock, a.idle), daemon=True).start()
    try:
        server.run()
    finally:
        _forget(a.record)


if __name__ == "__main__":
    main()
