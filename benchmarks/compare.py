"""Benchmark the compare stages on synthetic embeddings stored in Zarr, at n and 4n, with and
without the uncertainty (held-out values, intervals, p-values, stability), side by side.

For each size and setting, in its own process: write two embedding stores (dx, dy) shard by
shard (generated per shard, never held whole; not timed), then run the compare stages on a
local Dask cluster exactly as the flow does (``plan_sweep`` -> ``accumulate_gram`` ->
``solve_spectrum`` -> ``score_members``) and print per-stage and total seconds, the ratios
time(4n)/time(n) and with/without the uncertainty, and the peak resident memory of the whole
process tree (client, scheduler and workers, sampled every 0.1 s). Worker imports (torch,
zarr) are warmed up before the clock starts.

    python benchmarks/compare.py                 # n = 100,000, dx 512, dy 768, rff_dim 1000
    python benchmarks/compare.py --n 20000       # quicker
    python benchmarks/compare.py --uncertainty on --sizes 1   # one run: n only, with it
    python benchmarks/compare.py --sweep 0.25,0.5,1,2 --sizes 1   # a 4-bandwidth sweep vs one

With ``--sweep``, each setting also runs the bandwidth sweep (one pass over the stores for all
its runs) and prints its time against the single-bandwidth compare (scale 0.5) of the same
setting, stage by stage.

Every run also prints the Gram arithmetic's lower bound: the full product's nominal flops
(2 n m^2) at this machine's plain GEMM rate, measured in the same run (``P^T Q`` on one block
of the shapes the passes multiply, all cores), and the total's ratio to it. ``--small 500``
adds a compare of that many rows and prints what its stages take beyond that bound (the
fixed costs a small compare pays).

    python benchmarks/compare.py --n 1000000 --sizes 1 --uncertainty off   # a million rows

``--samples on`` also runs the samples stage (every sample's local agreement and the 2-D map)
after the scoring pass and prints its seconds apart from the compare's total.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "error")

import numpy as np  # noqa: E402


class PeakRSS:
    """Peak summed RSS of this process and all its descendants."""

    def __init__(self, interval: float = 0.1):
        import psutil

        self.proc, self.peak, self.interval = psutil.Process(), 0, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        import psutil

        while not self._stop.is_set():
            total = 0
            for p in [self.proc, *self.proc.children(recursive=True)]:
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def write_store(url: str, n: int, d: int, shard: int, seed: int) -> None:
    from speclens.storage.embedding_store import EmbeddingStore

    ids = np.array([f"s{i:08d}" for i in range(n)])
    store = EmbeddingStore.create(
        url,
        n_samples=n,
        dim=d,
        shard_size=shard,
        sample_id=ids,
        provenance={
            "encoder_id": f"synthetic-{d}",
            "seed": seed,
            "dataset_input_hash": "synthetic",
        },
    )
    rng = np.random.default_rng(seed)
    for s in range(store.n_shards):
        a, b = store.shard_range(s)
        store.write_shard(
            s, rng.standard_normal((b - a, d), dtype=np.float32), np.ones(b - a, dtype=bool), {}
        )
    store.write_manifest({"state": "complete"})


def _warm_up(address: str) -> None:
    from distributed import Client

    def imports():
        import speclens.spec.features as f
        import speclens.tasks.mapreduce  # noqa: F401

        f._torch_or_none()

    with Client(address) as client:
        client.run(imports)


def child(a) -> dict:
    with tempfile.TemporaryDirectory(prefix="speclens-bench-") as tmp:  # stores: GBs at 4n
        return _timed(a, tmp)


def _timed(a, tmp: str) -> dict:
    from speclens.flows.runtime import dask_cluster
    from speclens.spec import GramState
    from speclens.storage.arrays import load_npz
    from speclens.tasks.params import CompareParams

    t0 = time.perf_counter()
    write_store(f"{tmp}/x.zarr", a.n, a.dx, a.shard, 1)
    write_store(f"{tmp}/y.zarr", a.n, a.dy, a.shard, 2)
    write_s = time.perf_counter() - t0
    scale = a.scales or "0.5"
    params = CompareParams(
        rff_dim=a.rff_dim,
        n_modes=5,
        uncertainty=a.uncertainty == "on",
        sigma_scale=scale,
        local_agreement=a.samples == "on",
        map_points=20000 if a.samples == "on" else 0,
    )
    sweep = params.sweep()
    runs = [f"{tmp}/run{i}" for i in range(len(sweep))]
    with PeakRSS() as peak, dask_cluster(None, a.workers) as address:
        _warm_up(address)  # imports (torch, zarr) once per worker, outside the timings
        t, gram_urls = run_stages(address, f"{tmp}/x.zarr", f"{tmp}/y.zarr", runs, params)
    assert all(GramState.from_arrays(load_npz(u)).count == a.n for u in gram_urls)
    samples = t.pop("samples", None)  # the samples stage is reported on its own
    return {
        "stages": t,
        "total": sum(t.values()),
        "samples_s": samples,
        "peak_mb": peak.peak / 2**20,
        "write_s": write_s,
    }


def run_stages(address: str, x_url: str, y_url: str, runs: list[str], params) -> tuple:
    """The compare stages as the flow runs them (plan, Gram passes per group of runs, solve,
    scores) on the cluster at ``address``: (seconds per stage, the runs' gram.npz URLs)."""
    from speclens.tasks.compare import accumulate_gram, score_members, solve_spectrum
    from speclens.tasks.plan import pass_groups, plan_sweep

    sweep = params.sweep()
    t = {}
    t0 = time.perf_counter()
    preps = plan_sweep(x_url, y_url, runs, sweep, address)
    t["plan"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    blocks = preps[0]["blocks"]
    gram_urls = []
    for group in pass_groups(preps, params):  # as the flow: runs whose states fit together
        part = [preps[i] for i in group], params, [runs[i] for i in group]
        gram_urls += accumulate_gram.fn(address, blocks, *part)
    t["gram"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    for gram_url, p, prep, run in zip(gram_urls, sweep, preps, runs, strict=True):
        solve_spectrum.fn(gram_url, p, prep, run)
    t["solve"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    score_members.fn(address, blocks, preps, runs, params)
    t["scores"] = time.perf_counter() - t0
    if params.local_agreement or params.map_points:
        from speclens.tasks.samples import sample_stage

        t0 = time.perf_counter()
        sample_stage.fn(x_url, y_url, runs, params)
        t["samples"] = time.perf_counter() - t0
    return t, gram_urls


def gemm_rate(m: int, rows: int = 8192, repeats: int = 3) -> float:
    """This machine's plain float32 GEMM rate (FLOP/s, all cores): ``P^T Q`` on one block of
    the passes' shapes (Q a copy: numpy's ``P.T @ P`` on one buffer would call SYRK)."""
    rng = np.random.default_rng(0)
    p = rng.standard_normal((rows, m), dtype=np.float32)
    q = p.copy()
    best = float("inf")
    for _ in range(repeats + 1):  # the first one warms up
        t0 = time.perf_counter()
        p.T @ q
        best = min(best, time.perf_counter() - t0)
    return 2.0 * rows * m * m / best


def lower_bound(n: int, m: int, rate: float) -> float:
    """Seconds of the Gram's nominal flops (2 n m^2) at the plain GEMM rate."""
    return 2.0 * n * m * m / rate


def _run(a, n: int, uncertainty: str, scales: str | None = None) -> dict:
    flags = ("n", "dx", "dy", "rff_dim", "shard", "workers")
    cmd = [sys.executable, __file__, "--child", "--uncertainty", uncertainty]
    cmd += ["--samples", a.samples]
    cmd += ["--scales", scales] if scales else []
    for f in flags:
        cmd += ["--" + f.replace("_", "-"), str(n if f == "n" else getattr(a, f))]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    stages = "  ".join(f"{k} {v:6.2f}s" for k, v in r["stages"].items())
    what = f"sweep {scales}" if scales else "one bandwidth"
    bound = lower_bound(n, 4 * a.rff_dim, a.rate) * (len(scales.split(",")) if scales else 1)
    print(
        f"  n={n:>9,} uncertainty {uncertainty:>3} {what}: total {r['total']:7.2f} s  ({stages})  "
        f"peak RSS {r['peak_mb']:7.0f} MB  [writing the stores, not timed: {r['write_s']:.1f} s]\n"
        f"      Gram arithmetic's lower bound {bound:6.2f} s: total / bound {r['total'] / bound:.2f}",
        flush=True,
    )
    if r.get("samples_s") is not None:
        print(
            f"      samples stage (local agreement, k=10, and the map of 20,000 rows): "
            f"{r['samples_s']:.2f} s   (goal at n = 100,000: <= 60 s)",
            flush=True,
        )
    r["bound"] = bound
    return r


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--dx", type=int, default=512)
    p.add_argument("--dy", type=int, default=768)
    p.add_argument("--rff-dim", type=int, default=1000)
    p.add_argument("--shard", type=int, default=8192)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--uncertainty", choices=("off", "on", "both"), default="both")
    p.add_argument("--sizes", type=int, choices=(1, 2), default=2, help="n only, or n and 4n")
    p.add_argument("--sweep", default=None, help="bandwidth scales, e.g. 0.25,0.5,1,2")
    p.add_argument("--small", type=int, default=500, help="rows of the small compare (0: none)")
    p.add_argument("--scales", default=None, help=argparse.SUPPRESS)  # a child's scales
    p.add_argument(
        "--samples",
        choices=("off", "on"),
        default="off",
        help="also run the samples stage (local agreement, map) and print its seconds",
    )
    p.add_argument("--child", action="store_true")
    a = p.parse_args()
    if a.child:
        print(json.dumps(child(a)))
        return
    a.rate = gemm_rate(4 * a.rff_dim)
    print(
        f"compare benchmark: dx={a.dx} dy={a.dy} rff_dim={a.rff_dim} (m={4 * a.rff_dim}), "
        f"shards of {a.shard} rows, {a.workers} Dask workers x 1 thread, float32 features; "
        f"plain GEMM {a.rate / 1e9:.0f} GFLOP/s on this machine"
    )
    settings = ("off", "on") if a.uncertainty == "both" else (a.uncertainty,)
    sizes = (a.n, 4 * a.n)[: a.sizes]
    res = {(n, u): _run(a, n, u) for n in sizes for u in settings}
    for u in settings:
        r = res[a.n, u]
        print(
            f"  goals at n={a.n:,}, uncertainty {u}: solve {r['stages']['solve']:.2f} s "
            f"(m = {4 * a.rff_dim}; goal <= 4 s at m = 4,000), total {r['total']:.1f} s "
            f"(goals: <= 25 s at n = 100,000, <= 180 s at n = 1,000,000), peak RSS "
            f"{r['peak_mb'] / 1024:.2f} GB (goal <= 6 GB)"
        )
    if a.small:
        for u in settings:
            r = _run(a, a.small, u)
            print(
                f"  small compare, n={a.small}, uncertainty {u}: stages beyond the Gram arithmetic "
                f"{r['total'] - r['bound']:.2f} s   (goal <= 3 s)"
            )
    if a.sweep:
        for n in sizes:
            for u in settings:
                one, sw = res[n, u], _run(a, n, u, a.sweep)
                stages = "  ".join(
                    f"{k} {sw['stages'][k] / max(one['stages'][k], 1e-9):.2f}"
                    for k in one["stages"]
                )
                print(
                    f"  sweep of {len(a.sweep.split(','))} bandwidths / one bandwidth at n={n:,}, "
                    f"uncertainty {u}: total {sw['total'] / one['total']:.3f} ({stages})  "
                    f"peak RSS {sw['peak_mb'] / one['peak_mb']:.3f}   (goal: at most 3)"
                )
    if len(settings) == 2:
        for n in sizes:
            off, on = res[n, "off"], res[n, "on"]
            stages = "  ".join(
                f"{k} {on['stages'][k] / max(off['stages'][k], 1e-9):.2f}" for k in off["stages"]
            )
            print(
                f"  with/without uncertainty at n={n:,}: total {on['total'] / off['total']:.3f} "
                f"({stages})  peak RSS {on['peak_mb'] / off['peak_mb']:.3f}"
            )
    if len(sizes) == 2:
        for u in settings:
            n, n4 = res[a.n, u], res[4 * a.n, u]
            print(
                f"  uncertainty {u:>3}: time(4n)/time(n) total {n4['total'] / n['total']:.3f}   "
                f"gram {n4['stages']['gram'] / n['stages']['gram']:.3f}   scores "
                f"{n4['stages']['scores'] / n['stages']['scores']:.3f}   (linear: 4)   "
                f"peak RSS 4n / n {n4['peak_mb'] / n['peak_mb']:.3f}   (flat in n: 1)"
            )


if __name__ == "__main__":
    main()
