"""Benchmark the commands a new user types one after another, as processes, on this machine.

In a temporary folder with a private PREFECT_HOME and no PREFECT_API_URL (so nothing of a
site's Prefect is used), it measures, wall seconds of each whole command:

1. ``speclens server start`` with no server recorded (the cost of starting the local Prefect
   API once), then ``speclens server stop``;
2. the first ``speclens ingest sample --n N`` with no server running (it starts the shared
   server), and its ratio to (1);
3. with the server up: ``ingest sample --n N`` again (a new store), ``embed --encoder
   hue-hist``, ``embed --encoder grad-hist``, ``compare`` of the two (``--n-modes 1
   --no-uncertainty``: 10 rows are too few for held-out halves);
4. ``speclens --help`` and ``speclens info <store>``.

Then it stops the server it started. Goals (issue 18): (2) at most 1.3 x (1); each command
of (3) under 5 s; (4) under 2 s.

    python benchmarks/commands.py              # N = 10, best of 1
    python benchmarks/commands.py --repeats 3  # each of (3) and (4) three times, the fastest
"""

from __future__ import annotations

import argparse
import os
import pathlib
import subprocess
import sys
import tempfile
import time

BIN = pathlib.Path(sys.executable).parent
#: each embed recomputes (a repeat would otherwise find the store complete and skip the work)
EMBED = ("--no-progress", "--overwrite")


def timed(env: dict, *args: str) -> float:
    t0 = time.perf_counter()
    out = subprocess.run(
        [str(BIN / "speclens"), *args], env=env, capture_output=True, text=True, timeout=900
    )
    seconds = time.perf_counter() - t0
    if out.returncode != 0:
        raise SystemExit(
            f"speclens {' '.join(args)} failed:\n{out.stdout[-2000:]}{out.stderr[-2000:]}"
        )
    return seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--n", type=int, default=10, help="images of the sample")
    p.add_argument("--repeats", type=int, default=1)
    a = p.parse_args()
    work = pathlib.Path(tempfile.mkdtemp(prefix="speclens-commands-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env.update(PREFECT_HOME=str(work / "prefect-home"), PREFECT_SERVER_ANALYTICS_ENABLED="false")
    env.update(DO_NOT_TRACK="1")
    print(f"commands benchmark: {os.cpu_count()} CPUs, sample of {a.n} images, in {work}")
    try:
        start = timed(env, "server", "start")
        timed(env, "server", "stop")
        first = timed(env, "ingest", "sample", "--n", str(a.n), "--out", str(work / "first.zarr"))
        print(f"  local server start            {start:6.2f} s")
        print(
            f"  first ingest (starts it)      {first:6.2f} s   ratio to the start {first / start:.2f}   (goal <= 1.3)"
        )
        store = str(work / "tiny.zarr")
        steps = {
            "ingest sample": ("ingest", "sample", "--n", str(a.n), "--out", store),
            "embed hue-hist": ("embed", "--dataset", store, "--encoder", "hue-hist", *EMBED),
            "embed grad-hist": ("embed", "--dataset", store, "--encoder", "grad-hist", *EMBED),
            "compare": (
                *("compare", "--dataset", store, "--encoder", "hue-hist", "--encoder", "grad-hist"),
                *("--n-modes", "1", "--no-uncertainty", "--root", str(work / "out")),
            ),
        }
        for name, args in steps.items():
            best = min(timed(env, *_fresh(args, i)) for i in range(a.repeats))
            print(f"  {name:<29} {best:6.2f} s   (goal < 5 s)")
        for name, args in {"--help": ("--help",), "info": ("info", store)}.items():
            best = min(timed(env, *args) for _ in range(a.repeats))
            print(f"  speclens {name:<20} {best:6.2f} s   (goal < 2 s)")
    finally:
        subprocess.run([str(BIN / "speclens"), "server", "stop"], env=env, capture_output=True)


def _fresh(args: tuple, i: int) -> tuple:
    """Repeats of an ingest write a new store (the same one would be skipped as done)."""
    if args[0] == "ingest" and i:
        return (*args[:-1], args[-1].replace(".zarr", f"-{i}.zarr"))
    return args


if __name__ == "__main__":
    main()
