"""SPEC-align fine-tuning of an open_clip image tower on COCO-format batches.

loss = open_clip's contrastive image-caption loss (``ClipLoss``)
       + ``spec_weight`` * mini-batch SPEC-diff of the image embeddings against a reference
         embedding of the same images (:func:`speclens.spec.align.spec_diff_loss`).

The image tower and the logit scale are trained; the text tower is frozen by default
(``train_text=False``): the captions' embedding space stays fixed, so the aligned image tower
remains usable with text embeddings computed before fine-tuning, and the step is cheaper.
The SPEC term uses the L2-normalised image features (the space the contrastive loss shapes)
and, by default, ``which='y_over_x'``: the groups the reference ties together that the image
tower does not, i.e. the reference's clusters the model must learn to capture.

Data come in as arrays so the loop is testable without the store: ``batches(step)`` returns
``(images uint8 (B, H, W, 3), captions, reference (B, d_ref))`` where ``captions`` holds one
string or a list of strings (COCO: several per image) per image; with several, the caption
used at a step is drawn from ``(seed, step)``, so a resumed run sees the same data.

Checkpoints: ``<dir>/step-<NNNNNN>/`` with ``model.safetensors`` (the full open_clip state
dict: ``get_encoder('open_clip:<arch>@<dir>/step-.../model.safetensors')`` embeds with it),
``trainer.pt`` (optimizer state, the SPEC loss's warm-start vectors, RNG state) and
``provenance.json`` (encoder id, step, seed, configuration, loss history, library versions).
A checkpoint is written to a temporary folder and renamed into place, so a crash never leaves
a partial one; :class:`FineTuner` resumes from the latest complete checkpoint in its folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from speclens.errors import EncoderError

from .base import as_image_batch, library_versions, resolve_device
from .ids import EncoderSpec, parse_model_id

#: A tiny CLIP architecture (ViT image tower, 1-layer text transformer) for tests; it builds
#: almost at once (docs/benchmarks.md, "Tiny open_clip architectures"). It ships as
#: ``configs/speclens-tiny.json``, registered in every process that builds an open_clip model,
#: so ``open_clip:speclens-tiny@random`` resolves in flows and Dask workers as well as here.
TINY_ARCH = "speclens-tiny"
TINY_CONFIG = json.loads((Path(__file__).parent / "configs" / f"{TINY_ARCH}.json").read_text())
CHECKPOINT_PREFIX = "step-"


def register_tiny_config() -> str:
    """Register speclens' shipped open_clip architectures (idempotent); returns the tiny one's name."""
    from .openclip import register_configs

    register_configs()
    return TINY_ARCH


@dataclass
class FinetuneConfig:
    """Everything that defines a fine-tuning run besides its data (JSON-serialisable)."""

    encoder_id: str
    reference_id: str = "reference"
    spec_weight: float = 1.0
    which: str = "y_over_x"
    kernel_x: str = "gaussian"
    kernel_y: str = "gaussian"
    sigma_y: float | None = None
    eta: float = 1.0
    method: str = "power"
    rff_dim: int = 256
    n_iter: int = 20
    lr: float = 1e-5
    weight_decay: float = 0.0
    train_text: bool = False
    seed: int = 0
    amp: bool = True


def _open_clip_spec(encoder_id: str) -> EncoderSpec:
    """The parsed id of an open_clip image tower, the only kind of encoder fine-tuning trains."""
    text = str(encoder_id).strip()
    if not text.startswith("open_clip:"):
        raise EncoderError(
            f"{encoder_id}: fine-tuning needs an open_clip image tower (open_clip:<arch>@<tag>)."
        )
    return parse_model_id(text)


class FineTuner:
    """One fine-tuning run bound to a checkpoint folder; resumes from its latest checkpoint."""

    def __init__(
        self,
        config: FinetuneConfig,
        checkpoint_dir: str | os.PathLike,
        device: str = "auto",
        allow_download: bool = True,
    ):
        import open_clip
        import torch

        from speclens.spec.align import SpecDiffLoss

        from .openclip import build_model
        from .preprocess import open_clip_preprocess

        self.config = config
        self.spec = _open_clip_spec(config.encoder_id)
        self.checkpoint_dir = Path(checkpoint_dir)
        self.device = resolve_device(device, config.encoder_id)
        model, self.weights_info, _ = build_model(self.spec, config.seed, allow_download)
        self.model = model.to(self.device)
        self.transform = open_clip_preprocess(open_clip.get_model_preprocess_cfg(model))
        self.tokenizer = open_clip.get_tokenizer(self.spec.arch)
        self.clip_loss = open_clip.ClipLoss()
        self.spec_loss = SpecDiffLoss(
            kernel_x=config.kernel_x,
            kernel_y=config.kernel_y,
            sigma_x=None,
            sigma_y=config.sigma_y,
            eta=config.eta,
            which=config.which,
            method=config.method,
            n_iter=config.n_iter,
            rff_dim=config.rff_dim,
            random_state=config.seed,
        )
        self.model.requires_grad_(False)
        self.model.visual.requires_grad_(True)
        self.model.logit_scale.requires_grad_(True)
        if config.train_text:
            for name, module in self.model.named_children():
                if name != "visual":
                    module.requires_grad_(True)
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
        self.step = 0
        self.history: list[dict] = []
        self.autocast = None
        if config.amp and self.device.type == "cuda":
            self.autocast = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        latest = latest_checkpoint(self.checkpoint_dir)
        if latest is not None:
            self._load(latest)

    # ---- training -------------------------------------------------------------------------
    def _captions(self, captions) -> list[str]:
        rng = np.random.default_rng([self.config.seed, self.step])
        out = []
        for c in captions:
            if isinstance(c, str):
                out.append(c)
            elif len(c) == 0:
                out.append("")
            else:
                out.append(c[int(rng.integers(len(c)))])
        return out

    def train_step(self, images, captions, reference) -> dict:
        """One optimiser step on a batch; returns (and records) its losses."""
        import torch

        x = as_image_batch(images, self.config.encoder_id)
        if len(captions) != x.shape[0] or np.shape(reference)[0] != x.shape[0]:
            raise EncoderError(
                f"{self.config.encoder_id}: a batch of {x.shape[0]} images needs as many "
                f"captions ({len(captions)}) and reference rows ({np.shape(reference)[0]})."
            )
        pixels = self.transform.normalize(self.transform.resize_crop(x).to(self.device))
        tokens = self.tokenizer(self._captions(captions)).to(self.device)
        ref = torch.as_tensor(np.asarray(reference), dtype=torch.float32, device=self.device)
        self.model.visual.train()
        ctx = (
            torch.autocast(self.device.type, dtype=self.autocast)
            if self.autocast
            else contextlib.nullcontext()
        )
        with ctx:
            img = self.model.encode_image(pixels, normalize=True)
            with contextlib.nullcontext() if self.config.train_text else torch.no_grad():
                txt = self.model.encode_text(tokens, normalize=True)
        img, txt = img.float(), txt.float()
        contrastive = self.clip_loss(img, txt, self.model.logit_scale.exp())
        align = self.spec_loss(img, ref)
        loss = contrastive + self.config.spec_weight * align
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        with torch.no_grad():
            self.model.logit_scale.clamp_(0, np.log(100.0))  # as open_clip's training loop
        self.step += 1
        record = {
            "step": self.step,
            "loss": float(loss.detach()),
            "contrastive": float(contrastive.detach()),
            "spec_diff": float(align.detach()),
        }
        self.history.append(record)
        return record

    def encode_images(self, images) -> np.ndarray:
        """Raw (unnormalised) image embeddings with the current weights, float32 numpy."""
        import torch

        x = as_image_batch(images, self.config.encoder_id)
        self.model.eval()
        with torch.inference_mode():
            pixels = self.transform.normalize(self.transform.resize_crop(x).to(self.device))
            out = self.model.encode_image(pixels, normalize=False).float().cpu().numpy()
        return out

    # ---- checkpoints ----------------------------------------------------------------------
    def provenance(self) -> dict[str, Any]:
        return {
            "encoder_id": self.config.encoder_id,
            "arch": self.spec.arch,
            "base_weights": {k: v for k, v in self.weights_info.items()},
            "step": self.step,
            "seed": self.config.seed,
            "config": asdict(self.config),
            "trained": "image tower + logit scale"
            + (" + text tower" if self.config.train_text else " (text tower frozen)"),
            "loss_history": list(self.history),
            "device": str(self.device),
            "libraries": library_versions(),
            "written_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }

    def save_checkpoint(self) -> Path:
        """Write ``<dir>/step-<NNNNNN>/`` atomically (temporary folder, then rename)."""
        import torch
        from safetensors.torch import save_file

        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        final = self.checkpoint_dir / f"{CHECKPOINT_PREFIX}{self.step:06d}"
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=self.checkpoint_dir))
        weights = {k: v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}
        save_file(weights, str(tmp / "model.safetensors"))
        state = self.spec_loss.state
        torch.save(
            {
                "optimizer": self.optimizer.state_dict(),
                "spec_state": None
                if state is None
                else {k: getattr(state, k) for k in ("w_top", "w_bottom", "omega_x", "omega_y")},
                "torch_rng": torch.get_rng_state(),
            },
            tmp / "trainer.pt",
        )
        (tmp / "provenance.json").write_text(json.dumps(self.provenance(), indent=2, default=str))
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        return final

    def _load(self, path: Path) -> None:
        import torch
        from safetensors.torch import load_file

        from speclens.spec.align import SpecDiffState

        prov = json.loads((path / "provenance.json").read_text())
        saved, now = prov["config"], asdict(self.config)
        differ = sorted(k for k in now if saved.get(k) != now[k])
        if differ:
            raise EncoderError(
                f"checkpoint {path} was written with a different configuration ({', '.join(differ)}"
                f"); resume with the same settings or use a new checkpoint folder."
            )
        self.model.load_state_dict(load_file(str(path / "model.safetensors"), device="cpu"))
        self.model.to(self.device)
        trainer = torch.load(path / "trainer.pt", map_location=self.device, weights_only=True)
        self.optimizer.load_state_dict(trainer["optimizer"])
        if trainer["spec_state"] is not None:
            self.spec_loss.state = SpecDiffState(**trainer["spec_state"])
        torch.set_rng_state(trainer["torch_rng"].cpu())
        self.step = int(prov["step"])
        self.history = list(prov["loss_history"])


def latest_checkpoint(checkpoint_dir: str | os.PathLike) -> Path | None:
    """The complete checkpoint with the highest step in ``checkpoint_dir`` (None if none)."""
    root = Path(checkpoint_dir)
    if not root.is_dir():
        return None
    done = [
        p
        for p in root.iterdir()
        if p.is_dir() and p.name.startswith(CHECKPOINT_PREFIX) and (p / "provenance.json").is_file()
    ]
    return max(done, key=lambda p: int(p.name[len(CHECKPOINT_PREFIX) :]), default=None)


def finetune(
    config: FinetuneConfig,
    batches,
    steps: int,
    checkpoint_dir: str | os.PathLike,
    checkpoint_every: int = 100,
    device: str = "auto",
    allow_download: bool = True,
    on_step: Callable[[dict], None] | None = None,
) -> FineTuner:
    """Train until ``steps`` steps are done, resuming from the latest checkpoint in
    ``checkpoint_dir``; ``batches(step)`` (or ``batches[step]``) gives the batch of a step.
    A checkpoint is written every ``checkpoint_every`` steps and after the last one.
    ``on_step(record)`` is called after each step with its losses (for progress logs)."""
    tuner = FineTuner(config, checkpoint_dir, device, allow_download)
    get = batches if callable(batches) else batches.__getitem__
    while tuner.step < steps:
        images, captions, reference = get(tuner.step)
        record = tuner.train_step(images, captions, reference)
        if tuner.step % checkpoint_every == 0 or tuner.step == steps:
            tuner.save_checkpoint()
        if on_step is not None:
            on_step(record)
    return tuner


def checkpoint_info(path: str | os.PathLike) -> dict[str, Any]:
    """What identifies a checkpoint folder: its path, step, and the sha256 of its weights."""
    from .weights import sha256_file

    folder = Path(path)
    prov = json.loads((folder / "provenance.json").read_text())
    weights = folder / "model.safetensors"
    return {
        "path": str(folder),
        "weights": str(weights),
        "step": int(prov["step"]),
        "sha256": sha256_file(str(weights)),
    }
