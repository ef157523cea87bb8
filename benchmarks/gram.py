"""Benchmark the streaming Gram accumulator against this machine's plain GEMM.

Prints, in one run:
  * the plain product rate: ``P^T P`` on (block_rows x m) float32 blocks, m = 4 * rff_dim
    (the same shapes and dtype the accumulator multiplies), summed into float64;
  * the accumulator's rate on the same nominal work, including the random Fourier features
    of both embeddings (projection, cos, sin) and the float64 accumulation; their ratio;
  * wall time and peak resident memory at n and 4n, with the input generated chunk by chunk
    (never held whole), and their ratios.
Each measurement runs in its own process so peak memory is that run's alone.

    python benchmarks/gram.py                # n = 100,000, dx 512, dy 768, rff_dim 1000
    python benchmarks/gram.py --n 20000      # quicker
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _chunks(n: int, chunk: int, dx: int, dy: int, seed: int):
    rng = np.random.default_rng(seed)
    for start in range(0, n, chunk):
        rows = min(chunk, n - start)
        yield (
            rng.standard_normal((rows, dx), dtype=np.float32),
            rng.standard_normal((rows, dy), dtype=np.float32),
        )


def run_gemm(a) -> dict:
    m = 4 * a.rff_dim
    rng = np.random.default_rng(0)
    block = rng.standard_normal((a.chunk, m), dtype=np.float32) / np.float32(np.sqrt(a.rff_dim))
    total = np.zeros((m, m))
    t_compute = cpu = 0.0
    for start in range(0, a.n, a.chunk):
        rows = min(a.chunk, a.n - start)
        p = block[:rows]
        t0, c0 = time.perf_counter(), time.process_time()
        total += p.T @ p
        t_compute += time.perf_counter() - t0
        cpu += time.process_time() - c0
    return {"compute_s": t_compute, "cpu_s": cpu, "peak_mb": _peak_rss_mb()}


def run_accumulator(a) -> dict:
    from speclens.spec import GaussianRFF, GramAccumulator

    fx = GaussianRFF(20.0, a.rff_dim, 0).fit(a.dx)
    fy = GaussianRFF(25.0, a.rff_dim, 0).fit(a.dy)
    acc = GramAccumulator(fx, fy, dtype="float32", block_rows=a.chunk)
    t_compute = t_generate = cpu = 0.0
    t_start = time.perf_counter()
    it = _chunks(a.n, a.chunk, a.dx, a.dy, seed=1)
    while True:
        t0 = time.perf_counter()
        nxt = next(it, None)
        t_generate += time.perf_counter() - t0
        if nxt is None:
            break
        t0, c0 = time.perf_counter(), time.process_time()
        acc.update(*nxt)
        t_compute += time.perf_counter() - t0
        cpu += time.process_time() - c0
    state = acc.state()
    wall = time.perf_counter() - t_start
    assert state.count == a.n
    return {
        "compute_s": t_compute,
        "cpu_s": cpu,
        "generate_s": t_generate,
        "wall_s": wall,
        "peak_mb": _peak_rss_mb(),
    }


def _child(mode: str, n: int, a) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        mode,
        "--n",
        str(n),
        "--dx",
        str(a.dx),
        "--dy",
        str(a.dy),
        "--rff-dim",
        str(a.rff_dim),
        "--chunk",
        str(a.chunk),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--dx", type=int, default=512)
    p.add_argument("--dy", type=int, default=768)
    p.add_argument("--rff-dim", type=int, default=1000)
    p.add_argument("--chunk", type=int, default=8192)
    p.add_argument("--child", choices=["gemm", "acc"])
    a = p.parse_args()
    if a.child:
        print(json.dumps(run_gemm(a) if a.child == "gemm" else run_accumulator(a)))
        return

    m = 4 * a.rff_dim
    flops = lambda n: 2.0 * n * m * m  # noqa: E731  nominal GEMM flops of P^T P
    print(
        f"Gram benchmark: n={a.n:,} dx={a.dx} dy={a.dy} rff_dim={a.rff_dim} (m={m}) "
        f"chunk={a.chunk} float32 features, float64 sums"
    )
    gemm = _child("gemm", a.n, a)
    acc_n = _child("acc", a.n, a)
    acc_4n = _child("acc", 4 * a.n, a)
    gemm_rate = flops(a.n) / gemm["compute_s"] / 1e9
    acc_rate = flops(a.n) / acc_n["compute_s"] / 1e9
    print(
        f"  plain P^T P (same shapes)    : {gemm['compute_s']:8.2f} s  {gemm_rate:7.1f} GFLOP/s (nominal)"
    )
    print(
        f"  accumulator incl. RFF, n     : {acc_n['compute_s']:8.2f} s  {acc_rate:7.1f} GFLOP/s (nominal)"
    )
    print(f"  rate ratio accumulator/plain : {acc_rate / gemm_rate:8.3f}   (target >= 0.7)")
    print(
        f"  input generation (excluded)  : {acc_n['generate_s']:8.2f} s at n, {acc_4n['generate_s']:.2f} s at 4n"
    )
    t_ratio = acc_4n["compute_s"] / acc_n["compute_s"]
    w_ratio = acc_4n["wall_s"] / acc_n["wall_s"]
    mem_ratio = acc_4n["peak_mb"] / acc_n["peak_mb"]
    print(
        f"  time n / 4n (compute)        : {acc_n['compute_s']:.2f} s / {acc_4n['compute_s']:.2f} s  "
        f"ratio {t_ratio:.3f}   (target 3.5-4.5)"
    )
    print(
        f"  time n / 4n (wall, with input): {acc_n['wall_s']:.2f} s / {acc_4n['wall_s']:.2f} s  ratio {w_ratio:.3f}"
    )
    cpu_ratio = acc_4n["cpu_s"] / acc_n["cpu_s"]
    print(
        f"  CPU seconds n / 4n           : {acc_n['cpu_s']:.2f} s / {acc_4n['cpu_s']:.2f} s  "
        f"ratio {cpu_ratio:.3f}   (robust to other load on the machine)"
    )
    print(f"  CPU rate ratio acc/plain     : {gemm['cpu_s'] / acc_n['cpu_s']:.3f}")
    print(
        f"  peak RSS n / 4n              : {acc_n['peak_mb']:.0f} MB / {acc_4n['peak_mb']:.0f} MB  "
        f"ratio {mem_ratio:.3f}   (target <= 1.2)"
    )
    ok = acc_rate / gemm_rate >= 0.7 and 3.5 <= t_ratio <= 4.5 and mem_ratio <= 1.2
    print("  all targets met" if ok else "  TARGET MISSED")


if __name__ == "__main__":
    main()
