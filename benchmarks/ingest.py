"""Ingest throughput: the full flow vs a bare decode+resize loop over the same JPEG files,
and the flow with 1 vs 2 local workers.

    .venv/bin/python benchmarks/ingest.py [--n 1536] [--side 512] [--size 224] [--shard-size 256]
        [--repeats 5]

Writes ``n`` photo-sized JPEG files (the embedded sample rendered at ``side`` px, cropped to
4:3: 512x384 by default, about ImageNet's typical 500x375) to a temporary folder, then
measures

* bare: one process reading each file and calling ``decode_image`` (decode, resize, crop);
* ingest: ``speclens ingest folder`` in-process (Prefect tasks on a Dask LocalCluster of 1 or
  2 worker processes of one task thread each; sha256, Zarr writes, markers), shard phase
  only (a task reads files ahead and writes each shard on two helper threads of its own,
  docs/ingest.md, "Throughput");

and prints images/s (wall clock) and CPU milliseconds per image (the workers' CPU for the
flow, over the whole ``ingest()`` call: the plan and finalize tasks run on the workers too;
the flow process and the Prefect server are shown apart). Bare and the 1-worker flow
alternate, ``--repeats`` pairs on one cluster, then the 2-worker flow runs ``--repeats``
times; the best of each is compared (the machine is shared: the best run is the least
disturbed one), and the median ratio of the back-to-back pairs, which saw about the same
load, is printed beside it. On a shared machine the wall figures move with other load; CPU
per image moves less, so both ratios are printed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import tempfile
import time

import numpy as np
import psutil
from PIL import Image


def write_files(folder: str, n: int, side: int, seed: int = 0) -> int:
    from speclens.datasets import sample

    f = sample.draw_factors(n, seed)
    total = 0
    for start in range(0, n, 64):
        idx = np.arange(start, min(start + 64, n))
        images = sample.render(f.take(idx), idx, seed, side)
        for i, img in zip(idx, images, strict=True):
            path = os.path.join(folder, f"photo_{i:06d}.jpg")
            Image.fromarray(img[: side * 3 // 4]).save(path, quality=90)
            total += os.path.getsize(path)
    return total


def bare(folder: str, size: int) -> tuple[float, float]:
    """(images/s, CPU ms per image) of a plain read + decode_image loop."""
    from speclens.datasets.decode import decode_image

    names = sorted(os.listdir(folder))
    t0, c0 = time.perf_counter(), time.process_time()
    for name in names:
        with open(os.path.join(folder, name), "rb") as fh:
            decoded = decode_image(fh.read(), size)
        assert decoded.image is not None
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return len(names) / wall, 1000 * cpu / len(names)


def _cpu(pids) -> float:
    total = 0.0
    for pid in pids:
        t = psutil.Process(pid).cpu_times()
        total += t.user + t.system
    return total


def full(folder: str, out: str, size: int, shard_size: int, client, server_pid: int):
    """(images/s of the shard phase, worker CPU ms/image, flow+server CPU ms/image)."""
    from speclens.datasets.sources import IngestSource
    from speclens.flows.ingest import ingest

    worker_pids = list(client.run(os.getpid).values())
    others = [os.getpid(), server_pid]
    w0, o0 = _cpu(worker_pids), _cpu(others)
    summary = ingest(
        IngestSource.folder(folder),
        out,
        image_size=size,
        shard_size=shard_size,
        address=client.scheduler.address,
        overwrite=True,
        progress=False,
    )
    w1, o1 = _cpu(worker_pids), _cpu(others)
    n = summary["n_samples"]
    assert summary["counts"]["ok"] == n
    return summary["images_per_s"], 1000 * (w1 - w0) / n, 1000 * (o1 - o0) / n


@contextlib.contextmanager
def cluster(workers: int):
    """A LocalCluster of ``workers`` single-threaded worker processes with the task code
    loaded, and its client."""
    from distributed import Client, LocalCluster

    from speclens.flows.ingest import load_task_code

    with (
        LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as local,
        Client(local) as client,
    ):
        client.run(load_task_code)
        yield client


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1536)
    parser.add_argument("--side", type=int, default=512)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--shard-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5, help="bare/flow pairs, and 2-worker runs")
    args = parser.parse_args()

    from prefect.server.api.server import SubprocessASGIServer

    from speclens.flows.runtime import prefect_api

    with tempfile.TemporaryDirectory(prefix="speclens-bench-") as tmp, prefect_api():
        server = SubprocessASGIServer._instances.get(None)
        server_pid = server.server_process.pid if server and server.server_process else os.getpid()
        folder = os.path.join(tmp, "photos")
        os.makedirs(folder)
        nbytes = write_files(folder, args.n, args.side)
        print(
            f"{args.n} JPEG files of {args.side}x{args.side * 3 // 4} px "
            f"({nbytes / args.n / 1024:.0f} KiB each) -> {args.size}x{args.size}, "
            f"shards of {args.shard_size}, {os.cpu_count()} cores, "
            f"load average {os.getloadavg()[0]:.1f}",
            flush=True,
        )
        run = (args.size, args.shard_size)
        bares, flows, rate2 = [], [], []
        with cluster(1) as client:
            for _ in range(args.repeats):
                bares.append(bare(folder, args.size))
                print(
                    f"bare decode+resize, 1 process     {bares[-1][0]:7.1f} images/s  "
                    f"{bares[-1][1]:5.2f} CPU ms/image",
                    flush=True,
                )
                rate, cpu, other = full(
                    folder, os.path.join(tmp, "w1.zarr"), *run, client, server_pid
                )
                flows.append((rate, cpu))
                print(
                    f"ingest flow, 1 worker             {rate:7.1f} images/s  "
                    f"{cpu:5.2f} CPU ms/image in workers (+{other:.2f} flow and server)",
                    flush=True,
                )
        with cluster(2) as client:
            for _ in range(args.repeats):
                rate, cpu, other = full(
                    folder, os.path.join(tmp, "w2.zarr"), *run, client, server_pid
                )
                rate2.append(rate)
                print(
                    f"ingest flow, 2 workers            {rate:7.1f} images/s  "
                    f"{cpu:5.2f} CPU ms/image in workers (+{other:.2f} flow and server)",
                    flush=True,
                )
        best_bare, best_flow = max(b[0] for b in bares), max(f[0] for f in flows)
        paired = statistics.median(f[0] / b[0] for f, b in zip(flows, bares, strict=True))
        by_cpu = min(b[1] for b in bares) / min(f[1] for f in flows)
        print(
            f"ratio ingest(1 worker) / bare:    {best_flow / best_bare:.2f} images/s (best of "
            f"{args.repeats} each; median of the back-to-back pairs {paired:.2f}), "
            f"{by_cpu:.2f} by CPU per image  (aim >= 0.8)"
        )
        print(f"ratio ingest(2 workers) / ingest(1 worker): {max(rate2) / best_flow:.2f}")
        print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
