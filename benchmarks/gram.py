"""Benchmark the streaming Gram accumulator against this machine's plain GEMM.

Prints, in one run:
  * the plain product rate: the general product ``P^T Q`` (BLAS GEMM) on (block_rows x m)
    float32 blocks, m = 4 * rff_dim (the shapes and dtype the accumulator multiplies), summed
    into float64. ``Q`` is a copy of ``P``: numpy's ``P.T @ P`` on one buffer already calls
    SYRK, so it would not be the plain product;
  * the bare SYRK rate on the same blocks (one triangle: half the flops), for reference;
  * the accumulator's rate on the same nominal work (the full product's ``2 n m^2`` flops),
    including the random Fourier features of both embeddings (projection, cos, sin) and the
    float64 accumulation; its ratio to the plain product (target >= 1.3: SYRK's halved work
    delivered, the features kept cheap);
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


def run_plain(a, product: str) -> dict:
    from speclens.spec.gram import add_upper, symmetric_product

    m = 4 * a.rff_dim
    rng = np.random.default_rng(0)
    block = rng.standard_normal((a.chunk, m), dtype=np.float32) / np.float32(np.sqrt(a.rff_dim))
    other = block.copy()  # a second buffer: the plain product of two matrices
    total = np.zeros((m, m))
    out = None
    t_compute = cpu = 0.0
    for start in range(0, a.n, a.chunk):
        rows = min(a.chunk, a.n - start)
        p = block[:rows]
        t0, c0 = time.perf_counter(), time.process_time()
        if product == "gemm":
            total += p.T @ other[:rows]
        else:
            out = symmetric_product(p, "syrk", out)
            add_upper(total, out.T)
        t_compute += time.perf_counter() - t0
        cpu += time.process_time() - c0
    return {"compute_s": t_compute, "cpu_s": cpu, "peak_mb": _peak_rss_mb()}


def run_accumulator(a) -> dict:
    from speclens.spec import GaussianRFF, GramAccumulator
    from speclens.spec.features import _torch_or_none

    _torch_or_none()  # torch's elementwise kernels: imported before the clock starts
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
    p.add_argument("--child", choices=["gemm", "syrk", "acc"])
    a = p.parse_args()
    if a.child:
        print(json.dumps(run_accumulator(a) if a.child == "acc" else run_plain(a, a.child)))
        return

    m = 4 * a.rff_dim
    flops = lambda n: 2.0 * n * m * m  # noqa: E731  nominal GEMM flops of P^T P
    print(
        f"Gram benchmark: n={a.n:,} dx={a.dx} dy={a.dy} rff_dim={a.rff_dim} (m={m}) "
        f"chunk={a.chunk} float32 features, float64 sums"
    )
    gemm = _child("gemm", a.n, a)
    syrk = _child("syrk", a.n, a)
    acc_n = _child("acc", a.n, a)
    acc_4n = _child("acc", 4 * a.n, a)
    gemm_rate = flops(a.n) / gemm["compute_s"] / 1e9
    syrk_rate = flops(a.n) / syrk["compute_s"] / 1e9
    acc_rate = flops(a.n) / acc_n["compute_s"] / 1e9
    print(
        f"  plain P^T Q GEMM (same shapes): {gemm['compute_s']:7.2f} s  {gemm_rate:7.1f} GFLOP/s (nominal)"
    )
    print(
        f"  bare SYRK, one triangle      : {syrk['compute_s']:8.2f} s  {syrk_rate:7.1f} GFLOP/s (nominal)"
    )
    print(
        f"  accumulator incl. RFF, n     : {acc_n['compute_s']:8.2f} s  {acc_rate:7.1f} GFLOP/s (nominal)"
    )
    ratio = acc_rate / gemm_rate
    print(f"  rate ratio accumulator/plain : {ratio:8.3f}   (target >= 1.3)")
    print(f"  rate ratio accumulator/SYRK  : {acc_rate / syrk_rate:8.3f}   (features and sums)")
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
    ok = ratio >= 1.3 and 3.5 <= t_ratio <= 4.5 and mem_ratio <= 1.2
    print("  all targets met" if ok else "  TARGET MISSED")


if __name__ == "__main__":
    main()
