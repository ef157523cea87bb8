"""Ingest throughput: the full flow vs a bare decode+resize loop over the same JPEG files,
and the flow with 1 vs 2 local workers.

    .venv/bin/python benchmarks/ingest.py [--n 1536] [--side 512] [--size 224] [--shard-size 256]

Writes ``n`` photo-sized JPEG files (the embedded sample rendered at ``side`` px, cropped to
4:3: 512x384 by default, about ImageNet's typical 500x375) to a temporary folder, then
measures

* bare: one process reading each file and calling ``decode_image`` (decode, resize, crop);
* ingest: ``speclens ingest folder`` in-process (Prefect tasks on a Dask LocalCluster of 1 or
  2 single-threaded worker processes; sha256, Zarr writes, markers), shard phase only;

and prints images/s (wall clock) and CPU milliseconds per image (the workers' CPU for the
flow; the flow process and the Prefect server are shown apart). On a shared machine the wall
figures move with other load; CPU per image does not, so both ratios are printed.
"""

from __future__ import annotations

import argparse
import os
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


def full(folder: str, out: str, size: int, shard_size: int, workers: int, server_pid: int):
    """(images/s of the shard phase, worker CPU ms/image, flow+server CPU ms/image)."""
    from distributed import Client, LocalCluster

    from speclens.datasets.sources import IngestSource
    from speclens.flows.ingest import ingest, load_task_code

    with (
        LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as client,
    ):
        client.run(load_task_code)
        worker_pids = list(client.run(os.getpid).values())
        others = [os.getpid(), server_pid]
        w0, o0 = _cpu(worker_pids), _cpu(others)
        summary = ingest(
            IngestSource.folder(folder),
            out,
            image_size=size,
            shard_size=shard_size,
            address=cluster.scheduler_address,
            overwrite=True,
            progress=False,
        )
        w1, o1 = _cpu(worker_pids), _cpu(others)
    n = summary["n_samples"]
    assert summary["counts"]["ok"] == n
    return summary["images_per_s"], 1000 * (w1 - w0) / n, 1000 * (o1 - o0) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1536)
    parser.add_argument("--side", type=int, default=512)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--shard-size", type=int, default=256)
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
            f"load average {os.getloadavg()[0]:.1f}"
        )
        base, base_cpu = bare(folder, args.size)
        print(
            f"bare decode+resize, 1 process     {base:7.1f} images/s  {base_cpu:5.2f} CPU ms/image"
        )
        rate, cpu = {}, {}
        for workers in (1, 2):
            rate[workers], cpu[workers], other = full(
                folder,
                os.path.join(tmp, f"w{workers}.zarr"),
                args.size,
                args.shard_size,
                workers,
                server_pid,
            )
            print(
                f"ingest flow, {workers} worker(s)          {rate[workers]:7.1f} images/s  "
                f"{cpu[workers]:5.2f} CPU ms/image in workers (+{other:.2f} flow and server)"
            )
        again, _ = bare(folder, args.size)
        print(f"bare decode+resize, again         {again:7.1f} images/s  (spread = other load)")
        best = max(base, again)
        print(
            f"ratio ingest(1 worker) / bare:    {rate[1] / best:.2f} images/s, "
            f"{base_cpu / cpu[1]:.2f} by CPU per image  (aim >= 0.8)"
        )
        print(f"ratio ingest(2 workers) / ingest(1 worker): {rate[2] / rate[1]:.2f}")


if __name__ == "__main__":
    main()
