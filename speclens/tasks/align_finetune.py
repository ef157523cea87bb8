"""Prefect tasks of the align flow's encoder fine-tune mode (``--mode finetune``).

1. ``finetune-encoder``: the same seeded train / held-out split as the adapter mode
   (:func:`speclens.tasks.align.split_stores`); an open_clip image tower is fine-tuned with
   the contrastive image-caption loss plus the SPEC-align loss
   (:func:`speclens.encoders.finetune.finetune`) on batches of the train rows: images and
   captions from the dataset store, reference vectors from the reference's stored embedding
   of the same rows. Checkpoints go to ``<run>/checkpoints/step-NNNNNN/``; a rerun of the
   run id resumes from the latest one, and a finished run does not train again.
2. ``write-finetuned``: every sample the encoder's store embeds, embedded with the latest
   checkpoint, stored as the aligned encoder entry with the held-out views
   (:func:`speclens.tasks.align.store_aligned`, shared with the adapter mode); its attributes
   name the checkpoint, its step and its sha256.

Tasks pass URLs, paths and numbers; images and vectors stay in the stores.
"""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np
from prefect import get_run_logger, task

from speclens.encoders import EncoderError, parse_encoder_id
from speclens.errors import InputError
from speclens.storage import urls
from speclens.storage.dataset_store import DatasetStore
from speclens.storage.embedding_store import EmbeddingStore
from speclens.tasks.align import recorded_differences, save_split, split_stores, store_aligned

#: Settings of the training loop (the rest of the options are :class:`FinetuneConfig` fields).
LOOP_DEFAULTS = {"steps": 500, "batch_size": 64, "checkpoint_every": 100}
#: Train images are read into memory once when they take less than this; else per batch.
PRELOAD_BYTES = 1 << 30
_NOT_OPTIONS = ("encoder_id", "reference_id", "seed")


def check_finetune_encoder(encoder: str) -> None:
    """One sentence when ``encoder`` is not an open_clip image tower id."""
    try:
        family = parse_encoder_id(encoder).family
    except EncoderError:
        family = None
    if family != "open_clip":
        raise InputError(
            f"--mode finetune fine-tunes an open_clip image tower, and --encoder {encoder!r} "
            f"is not one; pass --encoder open_clip:<arch>@<tag> (e.g. "
            f"open_clip:ViT-B-32@openai) or use --mode adapter."
        )


def finetune_settings(options: dict) -> dict:
    """The loop defaults and :class:`FinetuneConfig` defaults, overridden by ``options``."""
    from speclens.encoders.finetune import FinetuneConfig

    fields = {
        f.name: f.default
        for f in dataclasses.fields(FinetuneConfig)
        if f.name not in _NOT_OPTIONS and f.default is not dataclasses.MISSING
    }
    known = {
        **LOOP_DEFAULTS,
        "lr": fields.pop("lr"),
        "spec_weight": fields.pop("spec_weight"),
        **fields,
    }
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise InputError(
            f"unknown fine-tune option(s) {', '.join(unknown)}; the options are {', '.join(known)}."
        )
    settings = {**known, **options}
    for name in LOOP_DEFAULTS:
        least = 2 if name == "batch_size" else 1  # contrastive loss: two images or more
        if int(settings[name]) < least:
            raise InputError(
                f"--{name.replace('_', '-')} {settings[name]} must be at least {least}."
            )
        settings[name] = int(settings[name])
    return settings


def _checkpoint_dir(run_url: str) -> str:
    url = urls.join(run_url, "checkpoints")
    if not urls.is_local(url):
        raise InputError(
            f"fine-tune checkpoints are written to a local folder, and {url} is "
            f"not local; pass a local --root."
        )
    return urls.fs_and_path(url)[1]


def _captions_of(dataset: DatasetStore, rows: np.ndarray) -> list[list[str]]:
    """Every non-empty caption of each row (COCO: several per image)."""
    table = dataset.captions()
    by_id: dict[str, list[str]] = {}
    for sid, text in zip(table["sample_id"].to_pylist(), table["caption"].to_pylist(), strict=True):
        if text and text.strip():
            by_id.setdefault(sid, []).append(text)
    ids = dataset.sample_ids()
    return [by_id.get(str(ids[r]), []) for r in rows]


def _check_same_data(run_url: str, start_step: int | None, data: dict) -> None:
    """A resumed run must draw its batches as the run it continues did (the model settings
    are checked by the fine-tuner against the checkpoint's own configuration)."""
    url = urls.join(run_url, "finetune-data.json")
    differ = {} if start_step is None else recorded_differences(url, data)
    if differ:
        raise InputError(
            f"run {run_url} was fine-tuned with other data settings ({', '.join(differ)}: "
            f"{', '.join(str(v) for v in differ.values())}); resume with the same "
            f"--dataset, --batch-size and --train-frac (and the same stored embeddings) or "
            f"pass a new --run-id."
        )
    urls.write_json(url, data)


class TrainBatches:
    """``batches(step)`` for :func:`finetune`: a seeded permutation of the train rows per
    epoch, cut into batches (the last, short one dropped), so a resumed run sees the batches
    the uninterrupted run would have."""

    def __init__(
        self,
        dataset: DatasetStore,
        rows: np.ndarray,
        captions: list[list[str]],
        reference: np.ndarray,
        batch_size: int,
        seed: int,
    ):
        self.dataset, self.rows, self.captions = dataset, rows, captions
        self.reference, self.seed = reference, seed
        self.batch_size = min(batch_size, rows.size)
        self.per_epoch = rows.size // self.batch_size
        images = dataset.array("images")
        row_bytes = int(np.prod(images.shape[1:]))
        self.images = self._read(rows) if rows.size * row_bytes <= PRELOAD_BYTES else None

    def _read(self, rows: np.ndarray) -> np.ndarray:
        return self.dataset.array("images").get_orthogonal_selection(
            (rows, slice(None), slice(None), slice(None))
        )

    def __call__(self, step: int):
        epoch, b = divmod(step, self.per_epoch)
        perm = np.random.default_rng([self.seed, epoch]).permutation(self.rows.size)
        pos = np.sort(perm[b * self.batch_size : (b + 1) * self.batch_size])
        images = self.images[pos] if self.images is not None else self._read(self.rows[pos])
        return images, [self.captions[p] for p in pos], self.reference[pos]


def _captioned(dataset: DatasetStore, train: np.ndarray) -> tuple[np.ndarray, list[list[str]]]:
    """The train rows that have captions, and their captions; one sentence when none has."""
    captions = _captions_of(dataset, train)
    keep = [i for i, c in enumerate(captions) if c]
    if not keep:
        raise InputError(
            f"{dataset.url} has no captions for its {train.size} training samples; --mode "
            f"finetune needs captioned images (ingest a COCO-format dataset or the embedded "
            f"sample), or use --mode adapter."
        )
    return train[keep], [captions[i] for i in keep]


def _step_logger(steps: int):
    logger, every = get_run_logger(), max(1, steps // 20)

    def log(record: dict) -> None:
        if record["step"] % every == 0 or record["step"] == steps:
            logger.info(
                "step %d/%d: loss %.4f (contrastive %.4f, SPEC-diff %.4f)",
                record["step"],
                steps,
                record["loss"],
                record["contrastive"],
                record["spec_diff"],
            )

    return log


@task(name="finetune-encoder")
def finetune_encoder(
    dataset_url: str,
    encoder: str,
    reference: str,
    x_url: str,
    y_url: str,
    run_url: str,
    train_frac: float,
    seed: int,
    options: dict,
    device: str,
) -> dict:
    """Fine-tune ``encoder``'s image tower on the train rows (resuming from the run's latest
    checkpoint); returns the split, the settings and the latest checkpoint."""
    from speclens.encoders.finetune import FinetuneConfig, checkpoint_info, finetune
    from speclens.encoders.finetune import latest_checkpoint as latest

    check_finetune_encoder(encoder)
    settings = finetune_settings(options)
    loop = {k: settings[k] for k in LOOP_DEFAULTS}
    config = FinetuneConfig(
        encoder_id=encoder,
        reference_id=reference,
        seed=seed,
        **{k: v for k, v in settings.items() if k not in LOOP_DEFAULTS},
    )
    sx, sy, train, held = split_stores(x_url, y_url, train_frac, seed)
    if parse_encoder_id(encoder).tag_kind == "random" and sx.meta.get("seed") != seed:
        raise InputError(
            f"{x_url} holds {encoder} drawn with seed {sx.meta.get('seed')}, but the fine-tune "
            f"starts from seed {seed}; pass --seed {sx.meta.get('seed')} so that the before "
            f"comparison measures the model that is fine-tuned."
        )
    dataset = DatasetStore.open(dataset_url)
    rows, captions = _captioned(dataset, train)
    folder = _checkpoint_dir(run_url)
    start = latest(folder)
    start_step = None if start is None else checkpoint_info(start)["step"]
    if start_step is not None and start_step > loop["steps"]:
        raise InputError(
            f"{folder} already holds a checkpoint at step {start_step}, past --steps "
            f"{loop['steps']}; pass --steps {start_step} or more, or a new --run-id."
        )
    data = {
        "batch_size": loop["batch_size"],
        "train_frac": train_frac,
        "train_rows": rows.size,
        "dataset_hash": dataset.input_hash,
        "train_rows_sha256": hashlib.sha256(np.ascontiguousarray(rows, np.int64)).hexdigest(),
    }
    _check_same_data(run_url, start_step, data)
    split_url = save_split(run_url, train, held)
    reference_rows = sy.take(rows)
    batches = TrainBatches(dataset, rows, captions, reference_rows, loop["batch_size"], seed)
    get_run_logger().info(
        "fine-tuning %s on %d captioned train samples, batch %d, %d steps%s",
        encoder,
        rows.size,
        batches.batch_size,
        loop["steps"],
        f" (resuming from step {start_step})" if start_step else "",
    )
    try:
        tuner = finetune(
            config,
            batches,
            loop["steps"],
            folder,
            loop["checkpoint_every"],
            device=device,
            on_step=_step_logger(loop["steps"]),
        )
    except EncoderError as exc:  # e.g. a resume with another configuration
        message = str(exc).replace("use a new checkpoint folder", "pass a new --run-id")
        raise InputError(message) from None
    info = checkpoint_info(latest(folder))
    losses = tuner.history[-1] if tuner.history else {}
    if not all(np.isfinite(v) for v in losses.values()):
        raise InputError(
            f"fine-tuning diverged (loss {losses}); lower --lr and pass a new --run-id."
        )
    return {
        "train": int(train.size),
        "held_out": int(held.size),
        "split_url": split_url,
        "trained_on": int(rows.size),
        "settings": settings,
        "checkpoint": info["path"],
        "checkpoint_step": info["step"],
        "checkpoint_sha256": info["sha256"],
        "resumed_from": start_step,
        "steps_run": info["step"] - (start_step or 0),
        "device": str(tuner.device),
        "final_loss": losses,
    }


@task(name="write-finetuned")
def write_finetuned(
    dataset_url: str,
    encoder: str,
    x_url: str,
    y_url: str,
    run_id: str,
    run_url: str,
    checkpoint: str,
    split_url: str,
    device: str,
    batch_size: int,
) -> dict:
    """Every sample the encoder's store embeds, embedded with the fine-tuned ``checkpoint``,
    as the aligned encoder entry (with the held-out views for compare)."""
    from speclens.encoders import get_encoder
    from speclens.encoders.finetune import checkpoint_info

    info = checkpoint_info(checkpoint)
    enc = get_encoder(
        f"open_clip:{parse_encoder_id(encoder).arch}@{info['weights']}", device=device
    )
    sx = EmbeddingStore.open(x_url)
    dataset = DatasetStore.open(dataset_url)
    rows = np.flatnonzero(sx.valid())
    aligned = np.empty((rows.size, enc.dim), dtype=np.float32)
    logger = get_run_logger()
    for shard in range(dataset.n_shards):
        a, b = dataset.shard_range(shard)
        lo, hi = np.searchsorted(rows, [a, b])
        if lo == hi:
            continue
        images = dataset.images(a, b)
        for i in range(lo, hi, batch_size):
            j = min(i + batch_size, hi)
            aligned[i:j] = enc.encode(images[rows[i:j] - a])
        logger.info(
            "embedded %d/%d samples with the fine-tuned checkpoint (shard %d/%d)",
            hi,
            rows.size,
            shard + 1,
            dataset.n_shards,
        )
    normalisation = sx.meta.get("normalisation", "none")
    if normalisation == "l2":
        aligned /= np.linalg.norm(aligned, axis=1, keepdims=True)
    if not np.isfinite(aligned).all():
        raise InputError(
            f"the fine-tuned checkpoint {info['path']} gives non-finite embeddings; "
            f"lower --lr and pass a new --run-id."
        )
    provenance = {
        **enc.provenance(),
        "normalisation": normalisation,
        "batch_size": batch_size,
        "align_mode": "finetune",
        "checkpoint_encoder_id": enc.id,
        "checkpoint": info["path"],
        "checkpoint_step": info["step"],
        "checkpoint_sha256": info["sha256"],
    }
    return store_aligned(
        dataset_url, x_url, y_url, run_id, run_url, aligned, rows, split_url, provenance
    )
