"""Ingest throughput: the full flow vs a bare decode+resize loop over the same JPEG files,
and the flow with 1 vs 2 local workers.

    .venv/bin/python benchmarks/ingest.py [--n 1536] [--side 512] [--size 224] [--shard-size 256]

Writes ``n`` photo-sized JPEG files (the embedded sample rendered at ``side`` px, cropped to
4:3: 512x384 by default, about ImageNet's typical 500x375) to a temporary folder, then prints images/s of

* bare: one process reading each file and calling ``decode_image`` (decode, resize, crop);
* ingest: ``speclens ingest folder`` in-process (Prefect + Dask LocalCluster, sha256, Zarr
  writes, markers), shard phase only (cluster started and task code loaded beforehand), and
  end to end (planning, cluster start, finalize);

and the ratios ingest(1 worker) / bare (aim >= 0.8) and ingest(2 workers) / ingest(1).
With fewer free cores than workers, the 2-worker figure measures contention, not scaling.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
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


def bare(folder: str, size: int) -> float:
    from speclens.datasets.decode import decode_image

    names = sorted(os.listdir(folder))
    t0 = time.perf_counter()
    for name in names:
        with open(os.path.join(folder, name), "rb") as fh:
            decoded = decode_image(fh.read(), size)
        assert decoded.image is not None
    return len(names) / (time.perf_counter() - t0)


def full(folder: str, out: str, size: int, shard_size: int, workers: int) -> tuple[float, float]:
    from speclens.datasets.sources import IngestSource
    from speclens.flows.ingest import ingest

    t0 = time.perf_counter()
    summary = ingest(IngestSource.folder(folder), out, image_size=size, shard_size=shard_size,
                     workers=workers, overwrite=True, progress=False)
    wall = time.perf_counter() - t0
    assert summary["counts"]["ok"] == summary["n_samples"]
    return summary["images_per_s"], summary["n_samples"] / wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1536)
    parser.add_argument("--side", type=int, default=512)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--shard-size", type=int, default=256)
    args = parser.parse_args()

    from speclens.flows.runtime import prefect_api

    with tempfile.TemporaryDirectory(prefix="speclens-bench-") as tmp, prefect_api():
        folder = os.path.join(tmp, "photos")
        os.makedirs(folder)
        nbytes = write_files(folder, args.n, args.side)
        print(f"{args.n} JPEG files of {args.side}x{args.side * 3 // 4} px "
              f"({nbytes / args.n / 1024:.0f} KiB each) -> {args.size}x{args.size}, "
              f"shards of {args.shard_size}, {os.cpu_count()} cores")
        base = bare(folder, args.size)
        print(f"bare decode+resize, 1 process      {base:8.1f} images/s")
        results = {}
        for workers in (1, 2):
            shard_phase, end_to_end = full(folder, os.path.join(tmp, f"w{workers}.zarr"),
                                           args.size, args.shard_size, workers)
            results[workers] = shard_phase
            print(f"ingest flow, {workers} worker(s)            {shard_phase:8.1f} images/s "
                  f"(end to end incl. planning and cluster start: {end_to_end:.1f})")
        again = bare(folder, args.size)
        print(f"bare decode+resize, again          {again:8.1f} images/s (the spread is "
              "other load on this machine)")
        best = max(base, again)
        print(f"ratio ingest(1 worker) / bare      {results[1] / best:8.2f}  (aim >= 0.8)")
        print(f"ratio ingest(2 workers) / ingest(1) {results[2] / results[1]:7.2f}")


if __name__ == "__main__":
    main()
