"""The GPU paths side by side with what the device itself can do, in one short run.

Prepared for a lent GPU machine (one H100/H200-class card: sized for under 5 minutes with
the defaults, an estimate until it has run there); with ``--device cpu`` it runs at toy
sizes in about a minute on two cores, which is what the tests check (that it starts and
prints every figure; CPU figures mean nothing here).

    .venv/bin/python benchmarks/gpu.py                     # --device auto: cuda when present
    .venv/bin/python benchmarks/gpu.py --device cpu        # toy sizes: a smoke run
    .venv/bin/python benchmarks/gpu.py --parts a,c         # a subset
    .venv/bin/python benchmarks/gpu.py --gram-rows 4000000 --compare-rows 200000 --embed-n 32768

Each part runs in its own process (its memory, host and device, is its own) and prints:

(a) Gram accumulation rows/s: ``GramAccumulator(GaussianRFF x, GaussianRFF y,
    dtype='float32', backend='torch', device=DEV)`` (dx 512, dy 768, rff_dim 1000: m = 4,000
    features) fed chunks of ``--block-rows`` rows from host memory (pinned on CUDA), as the
    flow's rows arrive from Zarr: the timing includes the host-side input checks, the
    host->device copy, the random features and the float64 sums. Beside it the device's own
    ``torch.mm(P.T, Q)`` on (block_rows x m) float32 blocks (distinct buffers, same row
    count), both as nominal GFLOP/s (2 n m^2), and their ratio (target >= 0.7). To say where
    a gap comes from it also times the accumulator's features and products on rows already on
    the device, and per block the host checks and the host->device copy alone.
(b) The compare stages on ``--compare-rows`` rows (1,000,000 on CUDA) of two synthetic
    embedding stores written as ``benchmarks/compare.py`` writes them (not timed), run as that
    script runs them (plan_sweep -> accumulate_gram -> solve_spectrum -> score_members on a
    local Dask cluster) with ``CompareParams(rff_dim, n_modes=5, uncertainty=False,
    compare_device=DEV)``: seconds and rows/s per stage, the peak RSS of the process tree
    and, on CUDA, the workers' peak GPU memory (zero: the passes never ran on the GPU).
(c) ``open_clip:ViT-B-32@random`` (random weights: nothing is downloaded; on CPU the shipped
    2-layer ``speclens-tiny-vit``) images/s through the real embed path
    (``speclens.flows.embed.embed`` on a Zarr dataset store of generated sample images:
    Prefect shard tasks, Zarr reads, prepare, host->device copy, forward, row writes; the
    summary's ``images_per_s``, first shard submitted to last shard done) against the bare
    ``model.encode_image`` on a batch already preprocessed and on the device, same model
    object, batch size and autocast (bf16, or fp16 without bf16, on CUDA). Targets: ratio
    >= 0.9 and >= 10,000 images/s on an H100/H200. Bare and pipeline runs are interleaved,
    ``--repeats`` each, and the best of each is compared (as ``benchmarks/embed.py``).

The run ends with a summary block: each target, its figure, met or missed. Everything is
seeded; nothing is downloaded.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import math
import os
import pathlib
import platform
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "error")

import numpy as np  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent
RESULT = "RESULT "  # a child's last stdout line: RESULT <json>
PARTS = ("a", "b", "c")

GRAM_RATIO_TARGET = 0.7
EMBED_RATIO_TARGET = 0.9
EMBED_RATE_TARGET = 10_000  # images/s, ViT-B/32 on an H100/H200

#: Sizes per device kind: the targets' sizes on CUDA; toy sizes on CPU (the whole run in well
#: under a minute on two cores: a smoke test, its figures mean nothing).
DEFAULTS = {
    "cuda": {
        "dx": 512,
        "dy": 768,
        "rff_dim": 1000,
        "block_rows": 8192,  # GramAccumulator's default, which the flow's tasks use
        "gram_rows": 1_000_000,
        "compare_rows": 1_000_000,
        "shard": 8192,  # benchmarks/compare.py's
        # One worker process of one thread: one GPU, so one CUDA context holding the runs'
        # m x m states, and the Gram tasks one after another on it. A second worker would
        # share the same card (a second context, second copies of the states) and could only
        # overlap its host-side reads with the other's device work: try --workers 2.
        "workers": 1,
        "encoder": "open_clip:ViT-B-32@random",
        "embed_n": 16_384,
        "image_size": 224,  # the model's input: prepare's resize and crop are no-ops
        "embed_shard": 1024,  # 4 batches a shard, so the loader thread overlaps the forward
        "batch_size": 256,
        "repeats": 3,
    },
    "cpu": {
        "dx": 32,
        "dy": 48,
        "rff_dim": 64,
        "block_rows": 1024,
        "gram_rows": 8192,
        "compare_rows": 2000,
        "shard": 500,
        "workers": 1,
        "encoder": "open_clip:speclens-tiny-vit@random",
        "embed_n": 256,
        "image_size": 32,
        "embed_shard": 128,
        "batch_size": 64,
        "repeats": 2,
    },
}


def _torch_device(name: str):
    import torch

    dev = torch.device(name)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    return dev


def _sync(dev) -> None:
    import torch

    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _seed(seed: int = 0) -> None:
    import torch

    np.random.seed(seed)  # noqa: NPY002  anything that still reads the legacy global state
    torch.manual_seed(seed)  # all devices too


def _say(text: str) -> None:
    print(text, flush=True)


# ---- (a) Gram accumulation vs the device's torch.mm -----------------------------------------
def part_a(c: dict) -> dict:
    import torch

    from speclens.spec import GaussianRFF, GramAccumulator
    from speclens.spec.validation import check_pair

    _seed()
    dev = _torch_device(c["device"])
    n, br, dx, dy, rff = c["gram_rows"], c["block_rows"], c["dx"], c["dy"], c["rff_dim"]
    m = 4 * rff
    flops = 2.0 * n * m * m  # nominal: one (rows x m)^T (rows x m) product per row block
    sizes = [min(br, n - s) for s in range(0, n, br)]
    pinned = dev.type == "cuda"
    _say(
        f"(a) Gram accumulation, torch backend on {dev}: n={n:,} rows, dx {dx}, dy {dy}, "
        f"rff_dim {rff} (m={m}), block_rows {br} ({len(sizes)} blocks), float32 features, "
        f"float64 sums; TF32 matmul {'on' if torch.backends.cuda.matmul.allow_tf32 else 'off'}"
    )

    # inputs: a few distinct chunks, generated once on the host (pinned on CUDA) and fed in
    # turn, as the flow's rows arrive on the host from Zarr; update() copies them over
    gen = torch.Generator().manual_seed(1)
    k = min(4, len(sizes))
    chunks = []
    for _ in range(k):
        x = torch.randn(br, dx, generator=gen).pin_memory() if pinned else torch.randn(br, dx)
        y = torch.randn(br, dy, generator=gen).pin_memory() if pinned else torch.randn(br, dy)
        chunks.append((x.numpy(), y.numpy()))
    _say(
        f"  inputs: {k} distinct chunks of {br} rows in {'pinned ' if pinned else ''}host "
        f"memory, passed to update() in turn; update() checks them on the host"
        f"{f' and copies them to {dev}' if pinned else ''} (the flow's rows arrive on the "
        f"host from Zarr)"
    )
    fx = GaussianRFF(20.0, rff, 0).fit(dx)
    fy = GaussianRFF(25.0, rff, 1).fit(dy)

    def accumulator():
        return GramAccumulator(fx, fy, dtype="float32", backend="torch", device=dev, block_rows=br)

    # warm-up: CUDA context, cuBLAS handles, the frequencies on the device, the allocator
    warm = accumulator()
    for x, y in chunks[:2]:
        warm.update(x, y)
    warm.state()
    del warm

    # the device's own rate: P^T Q on the same shapes, distinct buffers
    p = torch.randn(br, m, device=dev) / math.sqrt(rff)
    q = torch.randn(br, m, device=dev) / math.sqrt(rff)
    out = torch.empty(m, m, device=dev)
    for _ in range(3):
        torch.mm(p.T, q, out=out)
    _sync(dev)
    t0 = time.perf_counter()
    for r in sizes:
        torch.mm(p[:r].T, q[:r], out=out)
    _sync(dev)
    mm_s = time.perf_counter() - t0
    del p, q, out

    # the accumulator, fed from the host: what the flow's tasks pay
    acc = accumulator()
    _sync(dev)
    t0 = time.perf_counter()
    for i, r in enumerate(sizes):
        x, y = chunks[i % k]
        acc.update(x[:r], y[:r])
    _sync(dev)
    acc_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    state = acc.state(copy=False)
    state_s = time.perf_counter() - t0
    del acc

    # where the time goes: the same features and products on rows already on the device ...
    dev_acc = accumulator()
    resident = [(torch.as_tensor(x, device=dev), torch.as_tensor(y, device=dev)) for x, y in chunks]
    buf = torch.empty(br, m, device=dev)
    total = None
    _sync(dev)
    t0 = time.perf_counter()
    for i, r in enumerate(sizes):
        xd, yd = resident[i % k]
        phi = dev_acc.features(xd[:r], yd[:r], out=buf[:r])
        block = phi.T @ phi  # as GramAccumulator's torch path: the product, a float64 sum
        if total is None:
            total = block.to(torch.float64)
        else:
            total += block
    _sync(dev)
    resident_s = time.perf_counter() - t0
    del resident, buf, total, dev_acc

    # ... and per block, the host-side checks and the host->device copy alone
    x, y = chunks[0]
    reps = 5
    t0 = time.perf_counter()
    for _ in range(reps):
        check_pair(x, y)
    check_ms = (time.perf_counter() - t0) / reps * 1e3
    copy = "none (cpu)"
    if dev.type == "cuda":

        def copy_ms(xs, ys) -> float:
            _sync(dev)
            t0 = time.perf_counter()
            for _ in range(reps):
                _ = torch.as_tensor(xs, device=dev), torch.as_tensor(ys, device=dev)
            _sync(dev)
            return (time.perf_counter() - t0) / reps * 1e3

        # pageable: where rows read from Zarr live, unless the flow stages them in pinned memory
        copy = (
            f"{copy_ms(x, y):.2f} ms from pinned memory "
            f"({copy_ms(np.array(x), np.array(y)):.2f} ms from pageable memory)"
        )

    def rate(s: float) -> str:
        return f"{s:8.3f} s  {flops / s / 1e9:9.1f} GFLOP/s (nominal)  {n / s:12,.0f} rows/s"

    ratio = mm_s / acc_s
    _say(f"  torch.mm P^T Q, same shapes          : {rate(mm_s)}")
    _say(f"  accumulator update() from the host   : {rate(acc_s)}  rows {state.count:,}")
    _say(f"  accumulator on device-resident rows  : {rate(resident_s)}  (diagnostic)")
    _say(
        f"  per block of {br} rows: host checks (check_pair) {check_ms:.2f} ms, "
        f"host->device copy {copy}; torch.mm {mm_s / len(sizes) * 1e3:.2f} ms, "
        f"update() {acc_s / len(sizes) * 1e3:.2f} ms"
    )
    _say(f"  state() to the host (once a task, not in the rate): {state_s:.3f} s")
    _say(f"  rate ratio accumulator/torch.mm      : {ratio:8.3f}   (target >= {GRAM_RATIO_TARGET})")
    assert state.count == n, (state.count, n)
    return {
        "rows": int(state.count),
        "mm_gflops": flops / mm_s / 1e9,
        "acc_gflops": flops / acc_s / 1e9,
        "acc_rows_per_s": n / acc_s,
        "resident_gflops": flops / resident_s / 1e9,
        "ratio": ratio,
    }


# ---- (b) the compare stages with the Gram on the device -------------------------------------
def _bench_compare():
    """benchmarks/compare.py as a module (benchmarks/ is no package): its write_store,
    PeakRSS and worker warm-up."""
    spec = importlib.util.spec_from_file_location("speclens_bench_compare", HERE / "compare.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _warm_device(device: str) -> int:
    """On a worker: the CUDA context and cuBLAS outside the timings, then a fresh peak."""
    import torch

    if not device.startswith("cuda") or not torch.cuda.is_available():
        return 0
    a = torch.ones(64, 64, device=device)
    (a @ a).sum().item()
    del a
    torch.cuda.reset_peak_memory_stats(device)
    return 1


def _gpu_peak_bytes(device: str) -> int:
    import torch

    if not device.startswith("cuda") or not torch.cuda.is_initialized():
        return 0
    return int(torch.cuda.max_memory_allocated(device))


def part_b(c: dict) -> dict:
    from distributed import Client

    from speclens.flows.runtime import dask_cluster
    from speclens.spec import GramState
    from speclens.storage.arrays import load_npz
    from speclens.tasks.params import CompareParams

    _seed()
    bench = _bench_compare()
    n, dev = c["compare_rows"], c["device"]
    params = CompareParams(rff_dim=c["rff_dim"], n_modes=5, uncertainty=False, compare_device=dev)
    _say(
        f"(b) compare of {n:,} rows on {dev}: dx {c['dx']}, dy {c['dy']}, rff_dim {c['rff_dim']} "
        f"(m={4 * c['rff_dim']}), shards of {c['shard']}, n_modes 5, no uncertainty, "
        f"{c['workers']} Dask worker(s) x 1 thread"
    )
    with tempfile.TemporaryDirectory(prefix="speclens-bench-gpu-") as tmp:
        x_url, y_url = f"{tmp}/x.zarr", f"{tmp}/y.zarr"
        t0 = time.perf_counter()
        with ThreadPoolExecutor(2) as pool:  # both stores at once; each its own seeded rng
            jobs = [
                pool.submit(bench.write_store, x_url, n, c["dx"], c["shard"], 1),
                pool.submit(bench.write_store, y_url, n, c["dy"], c["shard"], 2),
            ]
            for job in jobs:
                job.result()
        _say(f"  writing the two stores (not timed)   : {time.perf_counter() - t0:.1f} s")
        runs = [f"{tmp}/run{i}" for i in range(len(params.sweep()))]
        with bench.PeakRSS() as peak, dask_cluster(None, c["workers"]) as address:
            bench._warm_up(address)  # imports (torch, zarr) on each worker, not timed
            with Client(address) as client:
                client.run(_warm_device, dev)
            t, gram_urls = bench.run_stages(address, x_url, y_url, runs, params)
            with Client(address) as client:
                gpu_peak = max(client.run(_gpu_peak_bytes, dev).values(), default=0)
        counts = [GramState.from_arrays(load_npz(u)).count for u in gram_urls]
    total = sum(t.values())
    for stage, s in t.items():
        per = f"  {n / s:12,.0f} rows/s" if stage in ("gram", "scores") else ""
        _say(f"  {stage:<7}{s:8.2f} s{per}")
    gpu = f"   workers' peak GPU memory {gpu_peak / 2**20:,.0f} MB" if dev != "cpu" else ""
    _say(
        f"  total  {total:8.2f} s  {n / total:12,.0f} rows/s   peak RSS "
        f"{peak.peak / 2**20:,.0f} MB{gpu}   Gram rows {counts[0]:,}"
    )
    if dev != "cpu" and gpu_peak == 0:
        _say("  WARNING: the workers allocated nothing on the GPU: the passes ran on the CPU")
    assert all(k == n for k in counts), counts
    return {"rows": counts[0], "stages": t, "total": total, "gpu_peak_mb": gpu_peak / 2**20}


# ---- (c) the embed path vs the bare model forward -------------------------------------------
def _bare(encoder, images, n: int, batch: int) -> float:
    """images/s of ``model.encode_image`` on batches already preprocessed and on the device,
    n images in all (up to 4 distinct batches in turn), under the encoder's autocast. On a
    worker thread, as the flow's shard tasks run (see benchmarks/embed.py's ``bare``)."""
    import torch

    dev = encoder.device
    batches = []
    for s in range(0, min(len(images), 4 * batch), batch):
        prepared = encoder.prepare(images[s : s + batch])
        batches.append(encoder.transform.normalize(prepared.to(dev)))
    steps = -(-n // batch)

    def loop() -> float:
        ctx = (
            torch.autocast(device_type=dev.type, dtype=encoder.autocast)
            if encoder.autocast is not None
            else contextlib.nullcontext()
        )
        with torch.inference_mode(), ctx:
            for x in batches[:2]:  # warm-up, untimed
                encoder.model.encode_image(x, normalize=False)
            _sync(dev)
            t0 = time.perf_counter()
            for i in range(steps):
                encoder.model.encode_image(batches[i % len(batches)], normalize=False)
            _sync(dev)
        return steps * batch / (time.perf_counter() - t0)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="bench-bare") as pool:
        return pool.submit(loop).result()


def part_c(c: dict) -> dict:
    import torch

    from speclens.datasets.sources import IngestSource
    from speclens.flows.embed import embed
    from speclens.flows.ingest import ingest
    from speclens.flows.runtime import prefect_api
    from speclens.storage.dataset_store import DatasetStore
    from speclens.tasks.embed import load_encoder

    _seed()
    dev, enc_id, n, batch = c["device"], c["encoder"], c["embed_n"], c["batch_size"]
    cuda = dev != "cpu"
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="speclens-bench-gpu-") as tmp, prefect_api() as api:
        api_s = time.perf_counter() - t0
        url = f"{tmp}/datasets/sample.zarr"
        t0 = time.perf_counter()
        summary = ingest(
            IngestSource.sample(n, seed=0),
            url,
            image_size=c["image_size"],
            shard_size=c["embed_shard"],
            workers=None if cuda else 1,  # all cores on the GPU machine
            processes=cuda,  # on CPU: threads of this process, no worker processes to start
            overwrite=True,
            progress=False,
        )
        assert summary["counts"]["ok"] == n, summary["counts"]
        ingest_s = time.perf_counter() - t0
        # the flow's own per-process cache: the bare loop runs the very model the flow runs
        encoder = load_encoder(enc_id, dev, 0)
        _say(
            f"(c) embed {enc_id} on {encoder.device}: {n:,} generated sample images of "
            f"{c['image_size']} px (ingested in {ingest_s:.1f} s, shards of {c['embed_shard']}), "
            f"batch {batch}, model input {encoder.input_size} px, dim {encoder.dim}, autocast "
            f"{str(encoder.autocast).replace('torch.', '') if encoder.autocast else 'off'}, "
            f"embed concurrency {c['concurrency']}; Prefect API {api} ({api_s:.1f} s to reach)"
        )
        images = DatasetStore.open(url).images(0, min(n, 4 * batch))
        out = f"{tmp}/embeddings/sample/bench.zarr"
        bares, pipes = [], []
        for _ in range(c["repeats"]):
            bares.append(_bare(encoder, images, n, batch))
            _say(f"  bare model.encode_image   {bares[-1]:12,.1f} images/s")
            t0 = time.perf_counter()
            (s,) = embed(
                url,
                enc_id,
                outs=[out],
                device=dev,
                batch_size=batch,
                overwrite=True,
                progress=False,
                concurrency=c["concurrency"],
            )
            assert s["rows_written"] == n, s
            pipes.append(s["images_per_s"])
            tm = s["timings"]
            _say(
                f"  pipeline, shard phase     {s['images_per_s']:12,.1f} images/s  "
                f"({s['rows_written']:,} in {s['seconds']:.2f} s; summed over shards: "
                f"read {tm['read_s']:.2f} s, prepare {tm['prepare_s']:.2f} s, "
                f"forward {tm['compute_s']:.2f} s; the whole embed() call "
                f"{time.perf_counter() - t0:.1f} s)"
            )
        if cuda:
            peak = torch.cuda.max_memory_allocated(encoder.device) / 2**20
            _say(f"  peak GPU memory {peak:,.0f} MB")
    ratio = max(pipes) / max(bares)
    _say(
        f"  ratio pipeline / bare     {ratio:12.3f}  (best of {len(bares)} each; target >= "
        f"{EMBED_RATIO_TARGET}; pipeline target >= {EMBED_RATE_TARGET:,} images/s on an H100/H200)"
    )
    return {"bare": max(bares), "pipeline": max(pipes), "ratio": ratio, "images": n}


# ---- the parent: children, summary ----------------------------------------------------------
def _child(part: str, c: dict, env: dict) -> tuple[dict | None, float]:
    """Run one part in its own process; echo its lines; its result (None if it failed)."""
    cmd = [sys.executable, __file__, "--child", part, "--config", json.dumps(c)]
    t0 = time.perf_counter()
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, env=env)
        result = None
        for line in proc.stdout:
            if line.startswith(RESULT):
                result = json.loads(line[len(RESULT) :])
            else:
                print(line, end="", flush=True)
        rc = proc.wait()
        if rc != 0 or result is None:
            err.seek(0)
            tail = err.read()[-3000:]
            print(f"  part ({part}) FAILED (exit code {rc}):\n{tail}", flush=True)
            result = None
    return result, time.perf_counter() - t0


def _verdict(value: float, target: float) -> str:
    return "met" if value >= target else "MISSED"


def summary(c: dict, res: dict, cuda: bool) -> list[str]:
    lines = [f"summary ({c['device_name']}, torch {c['torch']}):"]
    if "a" in res:
        a = res["a"]
        lines.append(
            f"  (a) Gram rate accumulator / torch.mm   {a['ratio']:10.3f}   target >= "
            f"{GRAM_RATIO_TARGET}   {_verdict(a['ratio'], GRAM_RATIO_TARGET)}"
            f"   ({a['acc_rows_per_s']:,.0f} rows/s, {a['acc_gflops']:,.1f} vs "
            f"{a['mm_gflops']:,.1f} GFLOP/s)"
            if a
            else "  (a) Gram rate: FAILED (see above)"
        )
    if "b" in res:
        b = res["b"]
        if b:
            st = b["stages"]
            on_gpu = f"   on the GPU: {'yes' if b['gpu_peak_mb'] > 0 else 'NO'}" if cuda else ""
            lines.append(
                f"  (b) compare of {b['rows']:,} rows           {b['total']:10.2f} s   "
                f"(gram {st['gram']:.2f} s, {b['rows'] / st['gram']:,.0f} rows/s; scores "
                f"{st['scores']:.2f} s; no target){on_gpu}"
            )
        else:
            lines.append("  (b) compare: FAILED (see above)")
    if "c" in res:
        r = res["c"]
        if r:
            lines.append(
                f"  (c) embed pipeline / bare forward      {r['ratio']:10.3f}   target >= "
                f"{EMBED_RATIO_TARGET}   {_verdict(r['ratio'], EMBED_RATIO_TARGET)}"
            )
            lines.append(
                f"  (c) embed pipeline images/s      {r['pipeline']:14,.1f}   target >= "
                f"{EMBED_RATE_TARGET:,}   {_verdict(r['pipeline'], EMBED_RATE_TARGET)}"
                f"   (bare {r['bare']:,.1f})"
            )
        else:
            lines.append("  (c) embed: FAILED (see above)")
    if not cuda:
        lines.append("  (a CPU smoke run: the targets are set for ViT-B/32 and m = 4,000 on a GPU)")
    return lines


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--device", default="auto", help="auto (cuda when present), cpu, cuda, cuda:N")
    p.add_argument("--parts", default="a,b,c", help="a subset of a,b,c")
    p.add_argument("--dx", type=int, help="X width, (a) and (b) (cuda 512, cpu 32)")
    p.add_argument("--dy", type=int, help="Y width, (a) and (b) (cuda 768, cpu 48)")
    p.add_argument("--rff-dim", type=int, help="(a) and (b): m = 4 x rff_dim (cuda 1000, cpu 64)")
    p.add_argument("--gram-rows", type=int, help="(a) rows (cuda 1,000,000, cpu 8,192)")
    p.add_argument("--block-rows", type=int, help="(a) accumulator block rows (cuda 8192)")
    p.add_argument("--compare-rows", type=int, help="(b) rows (cuda 1,000,000, cpu 2,000)")
    p.add_argument(
        "--shard", type=int, help="(b) rows per embedding-store shard (cuda 8192, cpu 500)"
    )
    p.add_argument("--workers", type=int, help="(b) Dask worker processes (1)")
    p.add_argument("--encoder", help="(c) an open_clip image id (cuda open_clip:ViT-B-32@random)")
    p.add_argument("--embed-n", type=int, help="(c) sample images (cuda 16,384, cpu 256)")
    p.add_argument("--image-size", type=int, help="(c) ingested image side, px (cuda 224)")
    p.add_argument("--embed-shard", type=int, help="(c) dataset shard size (cuda 1024)")
    p.add_argument("--batch-size", type=int, help="(c) batch size (cuda 256, cpu 64)")
    p.add_argument("--concurrency", type=int, default=1, help="(c) embed shards at once (1)")
    p.add_argument("--repeats", type=int, help="(c) bare/pipeline pairs (cuda 3, cpu 2)")
    p.add_argument("--child", choices=PARTS, help=argparse.SUPPRESS)
    p.add_argument("--config", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        c = json.loads(a.config)
        result = {"a": part_a, "b": part_b, "c": part_c}[a.child](c)
        print(RESULT + json.dumps(result), flush=True)
        return

    import torch

    parts = [x.strip() for x in a.parts.split(",") if x.strip()]
    if not parts or any(x not in PARTS for x in parts):
        p.error(f"--parts takes a subset of a,b,c, got {a.parts!r}")
    device = a.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        p.error(f"--device {device}: CUDA is not available here; use --device cpu")
    if not (device == "cpu" or device.startswith("cuda")):
        p.error(f"--device takes auto, cpu, cuda or cuda:N, got {device!r}")
    cuda = device != "cpu"
    c = dict(DEFAULTS["cuda" if cuda else "cpu"])
    for key in c:
        if getattr(a, key, None) is not None:
            c[key] = getattr(a, key)
    c["concurrency"] = a.concurrency
    c["device"] = device
    c["torch"] = torch.__version__
    c["device_name"] = (
        f"{device}: {torch.cuda.get_device_name(torch.device(device))}"
        if cuda
        else f"cpu: {platform.processor() or platform.machine()}"
    )
    print(
        f"GPU benchmark on {c['device_name']}; torch {torch.__version__} (CUDA "
        f"{torch.version.cuda}), {os.cpu_count()} cores; parts {','.join(parts)}",
        flush=True,
    )
    if cuda:
        free, total = torch.cuda.mem_get_info(torch.device(device))
        print(f"  device memory {total / 2**30:.1f} GiB ({free / 2**30:.1f} GiB free)", flush=True)
    env = dict(os.environ)
    results, seconds = {}, {}
    with tempfile.TemporaryDirectory(prefix="speclens-bench-prefect-") as home:
        if not env.get("PREFECT_API_URL"):
            env["PREFECT_HOME"] = home  # a private temporary server's database
        for part in parts:
            print(flush=True)
            results[part], seconds[part] = _child(part, c, env)
    print()
    for line in summary(c, results, cuda):
        print(line)
    print("  seconds per part: " + ", ".join(f"({k}) {v:.0f}" for k, v in seconds.items()))
    if any(r is None for r in results.values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
