"""The fine-tune mode of SPEC-align (``--mode finetune``): an open_clip image tower trained with
its contrastive image-caption loss plus the SPEC-align loss against the reference's stored
vectors of the same images (:func:`speclens.encoders.finetune.finetune`), on batches of the
train rows. Checkpoints go to ``<run>/checkpoints/step-NNNNNN/``; a rerun of the run id resumes
from the latest one, and a finished run does not train again.

The aligned entry is then written by the embed pipeline itself: the flow embeds the dataset
with the latest checkpoint (``open_clip:<arch>@<checkpoint>``) into the aligned store, whose
attributes name the checkpoint, its step and its sha256 (:func:`finetuned_entry`).
"""

from __future__ import annotations

import hashlib

import numpy as np
from prefect import get_run_logger, task

from speclens.encoders import EncoderError, parse_encoder_id
from speclens.errors import InputError
from speclens.storage import urls
from speclens.storage.dataset_store import DatasetStore
from speclens.storage.embedding_store import EmbeddingStore
from speclens.tasks.align.options import LOOP_DEFAULTS, check_finetune_encoder, finetune_settings
from speclens.tasks.align.run import (
    AlignRun,
    recorded_differences,
    save_split,
    split_stores,
)


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


#: Train images are read into memory once when they take less than this; else per batch.
PRELOAD_BYTES = 1 << 30


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
def finetune_encoder(run: AlignRun) -> dict:
    """Fine-tune the encoder's image tower on the train rows (resuming from the run's latest
    checkpoint); returns the split, the settings and the latest checkpoint."""
    from speclens.encoders.finetune import checkpoint_info, finetune
    from speclens.encoders.finetune import latest_checkpoint as latest

    settings, loop, config = _configure(run)
    sx, sy, train, held = split_stores(run.x_url, run.y_url, run.train_frac, run.seed)
    _check_seed(run, sx)
    dataset = DatasetStore.open(run.dataset)
    rows, captions = _captioned(dataset, train)
    folder = _checkpoint_dir(run.run_url)
    start_step = _start_step(folder, loop["steps"])
    _check_same_data(run.run_url, start_step, _data_identity(run, dataset, rows, loop))
    split_url = save_split(run.run_url, train, held)
    batches = TrainBatches(dataset, rows, captions, sy.take(rows), loop["batch_size"], run.seed)
    get_run_logger().info(
        "fine-tuning %s on %d captioned train samples, batch %d, %d steps%s",
        *(run.encoder, rows.size, batches.batch_size, loop["steps"]),
        f" (resuming from step {start_step})" if start_step else "",
    )
    try:
        tuner = finetune(
            config,
            batches,
            loop["steps"],
            folder,
            loop["checkpoint_every"],
            device=run.device,
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


def _configure(run: AlignRun):
    """(every setting, the loop's settings, the FinetuneConfig) from the run's options."""
    from speclens.encoders.finetune import FinetuneConfig

    check_finetune_encoder(run.encoder)
    settings = finetune_settings(run.options)
    loop = {k: settings[k] for k in LOOP_DEFAULTS}
    config = FinetuneConfig(
        encoder_id=run.encoder,
        reference_id=run.reference,
        seed=run.seed,
        **{k: v for k, v in settings.items() if k not in LOOP_DEFAULTS},
    )
    return settings, loop, config


def _check_seed(run: AlignRun, sx: EmbeddingStore) -> None:
    """A ``@random`` encoder must be fine-tuned from the weights its stored embedding has."""
    if parse_encoder_id(run.encoder).tag_kind == "random" and sx.meta.get("seed") != run.seed:
        raise InputError(
            f"{run.x_url} holds {run.encoder} drawn with seed {sx.meta.get('seed')}, but the "
            f"fine-tune starts from seed {run.seed}; pass --seed {sx.meta.get('seed')} so that "
            f"the before comparison measures the model that is fine-tuned."
        )


def _start_step(folder: str, steps: int) -> int | None:
    """The step of the latest checkpoint in ``folder`` (None: none), refused past ``steps``."""
    from speclens.encoders.finetune import checkpoint_info, latest_checkpoint

    start = latest_checkpoint(folder)
    step = None if start is None else checkpoint_info(start)["step"]
    if step is not None and step > steps:
        raise InputError(
            f"{folder} already holds a checkpoint at step {step}, past --steps "
            f"{steps}; pass --steps {step} or more, or a new --run-id."
        )
    return step


def _data_identity(run: AlignRun, dataset: DatasetStore, rows: np.ndarray, loop: dict) -> dict:
    """What a resumed run must draw its batches from, as the run it continues did."""
    return {
        "batch_size": loop["batch_size"],
        "train_frac": run.train_frac,
        "train_rows": rows.size,
        "dataset_hash": dataset.input_hash,
        "train_rows_sha256": hashlib.sha256(np.ascontiguousarray(rows, np.int64)).hexdigest(),
    }


def finetuned_entry(run: AlignRun, trained: dict) -> dict:
    """How the flow embeds the aligned entry with the fine-tuned checkpoint: the checkpoint's
    encoder id, the embed settings of the encoder's own store (normalisation, batch) and the
    provenance the entry records about the checkpoint."""
    from speclens.encoders.finetune import checkpoint_info

    info = checkpoint_info(trained["checkpoint"])
    checkpoint_id = f"open_clip:{parse_encoder_id(run.encoder).arch}@{info['weights']}"
    sx = EmbeddingStore.open(run.x_url)
    return {
        "encoder_id": checkpoint_id,
        "normalize": sx.meta.get("normalisation", "none") == "l2",
        "batch_size": trained["settings"]["batch_size"],
        "provenance": {
            "align_mode": "finetune",
            "checkpoint_encoder_id": checkpoint_id,
            "checkpoint": info["path"],
            "checkpoint_step": info["step"],
            "checkpoint_sha256": info["sha256"],
        },
    }


def check_finite(run: AlignRun, aligned_url: str, checkpoint: str) -> None:
    """The aligned entry must embed every row the encoder's store does."""
    aligned, sx = EmbeddingStore.open(aligned_url), EmbeddingStore.open(run.x_url)
    if (sx.valid() & ~aligned.valid()).any():
        raise InputError(
            f"the fine-tuned checkpoint {checkpoint} gives non-finite embeddings; "
            f"lower --lr and pass a new --run-id."
        )


def settings(run: AlignRun, trained: dict) -> dict:
    """What align.json records about the fine-tune (everything but the split)."""
    return {k: v for k, v in trained.items() if k not in ("train", "held_out", "split_url")}
