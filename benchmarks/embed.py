"""Embed throughput: the real embed flow vs the bare model forward over the same images.

    .venv/bin/python benchmarks/embed.py                      # a few minutes on 2 cores
    .venv/bin/python benchmarks/embed.py --n 256 --encoder open_clip:ViT-B-32@random
    .venv/bin/python benchmarks/embed.py --dataset /path/to/datasets/x.zarr   # no ingest

Encoders: by default ``open_clip:speclens-tiny-vit@random`` over ``--n`` (2048) sample images
and ``timm:resnet18@random`` over ``--n-large`` (128: a slower model; its measured rate and
this script's run time are in docs/benchmarks.md, "Embed throughput"); with ``--encoder``
(repeatable), each given encoder over ``--n``. Each sample size is ingested once
(``--image-size`` px, shards of ``--shard-size``) into a temporary folder, or ``--dataset`` is
used for all. For each encoder, on the same device, with the same batch size and the same model
object, it prints images/s of

* bare: ``enc.embed(enc.prepare(batch))`` in a loop over the dataset's images already read
  into memory (one warm-up batch first, untimed); prepare and forward run one after the other,
  on one worker thread like the flow's tasks (see :func:`bare` for why not the main thread);
* pipeline: ``speclens.flows.embed.embed(...)`` on the dataset, the summary's
  ``images_per_s``: rows / seconds from submitting the first shard task to the last shard's
  result. It includes Prefect task runs (state reports to the local API), opening both stores
  per shard, reading images from Zarr, preparing (inline on a CPU device; on a loader thread,
  overlapped with the forward, on an accelerator), the forward, and writing rows and markers.
  It excludes the flow's start, planning (building the encoder, creating the store) and
  finalising (manifest, artifact), fixed costs per run; the end-to-end figure (the whole
  ``embed()`` call) is printed beside it for reference;

and their ratio (aim >= 0.9). Bare and pipeline are interleaved, ``--repeats`` pairs or more
(until ``--min-seconds`` have passed; cheap for a small model), and the best of each is compared:
the machine is shared, and the best run is the least disturbed one. The median of the ratios of
back-to-back pairs, which saw about the same load, is printed beside it.

For encoders with a torch image model it first prints the bare rate with ``torch.channels_last``
weights and batches and without, side by side (alternating, ``--repeats`` each, best of each;
the encoders use it for convolutional networks, see ``speclens.encoders.base.conv_dominated``).

With CUDA present it also measures ``open_clip:ViT-B-32@random`` on ``cuda`` the same way over a
larger sample at 224 px (``--gpu-n``, ``--gpu-batch-size``); on a CPU-only machine it says so.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

# Before anything imports Prefect: a private home, no telemetry, quiet logs.
_HOME = tempfile.mkdtemp(prefix="speclens-bench-prefect-")
os.environ["PREFECT_HOME"] = _HOME
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["DO_NOT_TRACK"] = "1"
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")

DEFAULT_ENCODERS = ("open_clip:speclens-tiny-vit@random", "timm:resnet18@random")
GPU_ENCODER = "open_clip:ViT-B-32@random"


def ingest_sample(out: str, n: int, image_size: int, shard_size: int, workers: int | None) -> float:
    from speclens.datasets.sources import IngestSource
    from speclens.flows.ingest import ingest

    t0 = time.perf_counter()
    summary = ingest(
        IngestSource.sample(n, seed=0),
        out,
        image_size=image_size,
        shard_size=shard_size,
        workers=workers,
        overwrite=True,
        progress=False,
    )
    assert summary["counts"]["ok"] == n, summary["counts"]
    return time.perf_counter() - t0


def load_images(dataset: str):
    """The ok rows' images, read into memory once (what the bare loop iterates over)."""
    from speclens.storage.dataset_store import DatasetStore

    store = DatasetStore.open(dataset)
    ok = store.ok_mask()
    return store.images()[ok], store


def bare(encoder, images, batch_size: int) -> float:
    """images/s of prepare + forward, one batch after another, on images in memory.

    Runs on a worker thread, as the flow's shard tasks do (Prefect's thread pool): torch's
    OpenMP threads behave differently in the main thread, which on a loaded machine made the
    same loop there several times slower (active spin-waiting at OpenMP barriers)."""

    def loop() -> float:
        encoder.embed(encoder.prepare(images[:batch_size]))  # warm-up, untimed
        t0 = time.perf_counter()
        for start in range(0, len(images), batch_size):
            encoder.embed(encoder.prepare(images[start : start + batch_size]))
        return len(images) / (time.perf_counter() - t0)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="bench-bare") as pool:
        return pool.submit(loop).result()


def memory_formats(encoder, images, batch_size: int, repeats: int) -> tuple[float, float] | None:
    """Best bare images/s with the model's weights and batches in ``torch.channels_last`` and
    in the contiguous NCHW format, alternating (the same model object; its own setting is
    restored after). None for encoders without a torch image model."""
    if encoder.modality != "image" or not hasattr(getattr(encoder, "model", None), "modules"):
        return None
    default, rates = encoder.channels_last, {True: [], False: []}
    try:
        for _ in range(repeats):
            for on in (True, False):
                encoder.set_channels_last(on)
                rates[on].append(bare(encoder, images, batch_size))
    finally:
        encoder.set_channels_last(default)
    return max(rates[True]), max(rates[False])


def pipeline(dataset: str, out: str, encoder_id: str, device: str, batch_size: int) -> dict:
    from speclens.flows.embed import embed

    t0 = time.perf_counter()
    (summary,) = embed(
        dataset,
        encoder_id,
        outs=[out],
        device=device,
        batch_size=batch_size,
        overwrite=True,
        progress=False,
    )
    summary["end_to_end_per_s"] = summary["rows_written"] / (time.perf_counter() - t0)
    return summary


def compare(
    dataset: str,
    images,
    tmp: str,
    encoder_id: str,
    device: str,
    batch_size: int,
    repeats: int,
    min_seconds: float,
) -> float:
    from speclens.tasks.embed import load_encoder

    # the flow's own per-process cache: the bare loop runs the very model object the flow runs
    encoder = load_encoder(encoder_id, device, 0)
    out = os.path.join(tmp, "embeddings", encoder_id.replace(":", "_").replace("/", "_") + ".zarr")
    print(
        f"\n{encoder_id} on {device}: {len(images)} images, batch {batch_size}, "
        f"dim {encoder.dim}, model input {encoder.input_size} px; {_load()}",
        flush=True,
    )
    formats = memory_formats(encoder, images, batch_size, repeats)
    if formats is not None:
        on, off = formats
        print(
            f"  bare, channels_last on    {on:9.1f} images/s, off {off:.1f} (x{on / off:.2f}; "
            f"best of {repeats} each; this encoder uses "
            f"{'channels_last' if encoder.channels_last else 'the contiguous format'})",
            flush=True,
        )
    bares, pipes = [], []
    t_start = time.perf_counter()
    while len(bares) < repeats or (
        time.perf_counter() - t_start < min_seconds and len(bares) < 3 * repeats
    ):
        bares.append(bare(encoder, images, batch_size))
        print(f"  bare prepare+forward      {bares[-1]:9.1f} images/s", flush=True)
        s = pipeline(dataset, out, encoder_id, device, batch_size)
        pipes.append(s["images_per_s"])
        t = s["timings"]
        print(
            f"  pipeline, shard phase     {s['images_per_s']:9.1f} images/s  "
            f"({s['rows_written']} in {s['seconds']:.2f} s; summed over shards: "
            f"forward {t['compute_s']:.2f} s, read {t['read_s']:.2f} s, "
            f"prepare {t['prepare_s']:.2f} s; end to end {s['end_to_end_per_s']:.1f}/s)",
            flush=True,
        )
    ratio = max(pipes) / max(bares)
    paired = statistics.median(p / b for p, b in zip(pipes, bares, strict=True))
    print(
        f"  ratio pipeline / bare     {ratio:9.2f}  (best of {len(bares)} each; median of the "
        f"back-to-back pairs {paired:.2f}; aim >= 0.9); {_load()}"
    )
    return ratio


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f}"


LEGEND = """\
bare: enc.embed(enc.prepare(batch)) over the images in memory, warm, one worker thread.
pipeline, shard phase: the embed flow's images_per_s, first shard submitted to last shard
  done: Prefect task runs, store opens, Zarr reads, prepare (on a loader thread on GPU),
  forward, row and marker writes. Not in it: flow start, planning (encoder build, store
  creation), finalize; 'end to end' (the whole embed() call) includes them.
Both use the same model object, device and batch size."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--n",
        type=int,
        default=2048,
        help="sample images for the small model (and for every --encoder given)",
    )
    parser.add_argument(
        "--n-large",
        type=int,
        default=128,
        help=f"sample images for the default larger model ({DEFAULT_ENCODERS[1]})",
    )
    parser.add_argument("--image-size", type=int, default=64, help="ingested image side, px")
    parser.add_argument("--shard-size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument(
        "--encoder",
        action="append",
        default=None,
        help=f"encoder id, repeatable (default: {', '.join(DEFAULT_ENCODERS)})",
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--repeats", type=int, default=3, help="bare/pipeline pairs per encoder, at least"
    )
    parser.add_argument(
        "--min-seconds",
        type=float,
        default=20.0,
        help="more pairs (up to 3x --repeats) until an encoder has had this long",
    )
    parser.add_argument(
        "--dataset",
        default=None,
        help="an ingested dataset store to use for every encoder (no ingest)",
    )
    parser.add_argument("--gpu-n", type=int, default=8192)
    parser.add_argument("--gpu-batch-size", type=int, default=256)
    parser.add_argument("--skip-gpu", action="store_true")
    args = parser.parse_args()

    import torch

    from speclens.flows.runtime import prefect_api

    if args.encoder:
        plan = [(e, args.n) for e in args.encoder]
    else:
        plan = [(DEFAULT_ENCODERS[0], args.n), (DEFAULT_ENCODERS[1], args.n_large)]
    print(
        f"{os.cpu_count()} cores, torch {torch.__version__} with {torch.get_num_threads()} "
        f"threads; {_load()} at start"
    )
    print(LEGEND)
    ratios = {}
    with tempfile.TemporaryDirectory(prefix="speclens-bench-") as tmp, prefect_api():
        datasets: dict[tuple[int, int], tuple[str, object]] = {}

        def dataset_of(n: int, size: int, workers: int | None = 1):
            """Ingest each (count, size) sample once (one worker process: the small samples
            are quicker without a bigger cluster to start); ``--dataset`` replaces them all."""
            key = (0, 0) if args.dataset else (n, size)
            if key not in datasets:
                url = args.dataset or os.path.join(tmp, "datasets", f"sample-{n}-{size}px.zarr")
                if not args.dataset:
                    secs = ingest_sample(url, n, size, args.shard_size, workers)
                    print(
                        f"ingested {n} sample images of {size} px in shards of "
                        f"{args.shard_size} ({secs:.1f} s)"
                    )
                images, store = load_images(url)
                print(
                    f"dataset {url}: {len(images)} ok images of {images.shape[1]}x"
                    f"{images.shape[2]} px, {store.n_shards} shard(s) of {store.shard_size}"
                )
                datasets[key] = (url, images)
            return datasets[key]

        for encoder_id, n in plan:
            url, images = dataset_of(n, args.image_size)
            ratios[f"{encoder_id} ({args.device})"] = compare(
                url,
                images,
                tmp,
                encoder_id,
                args.device,
                args.batch_size,
                args.repeats,
                args.min_seconds,
            )

        print()
        if args.skip_gpu:
            print("GPU: skipped (--skip-gpu)")
        elif not torch.cuda.is_available():
            print(f"GPU: no CUDA device found; {GPU_ENCODER} on cuda not measured")
        else:
            print(f"GPU: {torch.cuda.get_device_name(0)}")
            url, images = dataset_of(args.gpu_n, 224, workers=None)  # all cores
            ratios[f"{GPU_ENCODER} (cuda)"] = compare(
                url,
                images,
                tmp,
                GPU_ENCODER,
                "cuda",
                args.gpu_batch_size,
                args.repeats,
                args.min_seconds,
            )

    print(f"\n{_load()} at the end")
    print("ratios pipeline / bare: " + ", ".join(f"{k} {v:.2f}" for k, v in ratios.items()))


if __name__ == "__main__":
    main()
