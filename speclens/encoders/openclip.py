"""open_clip towers: ``open_clip:<arch>@<tag>`` (image) and ``open_clip-text:<arch>@<tag>`` (text).

Weights come from a pretrained tag resolved in the local cache (see :mod:`.weights`), a local
checkpoint file, or ``random`` (the architecture with weights drawn from a seeded generator).
open_clip is always handed a local file, never a tag, so it never starts a download itself.

The image tower's preprocessing is open_clip's own eval transform for that tag (size, mean/std,
interpolation, resize mode), done batched on uint8 tensors by :mod:`.preprocess`. The unused tower
is dropped after loading to save device memory.
"""

from __future__ import annotations

import difflib
import importlib.util
import os
import posixpath
import threading
from typing import Any

from speclens.errors import EncoderError

from . import openclip_catalogue as catalogue
from .base import Encoder, as_image_batch, conv_dominated
from .ids import EncoderSpec
from .preprocess import open_clip_preprocess
from .weights import (
    PretrainedSource,
    check_pretrained,
    check_weights,
    locate_pretrained,
    resolve_weights,
)

_PREPROCESS_KEYS = ("mean", "std", "interpolation", "resize_mode", "fill_color")


#: Architectures shipped with speclens (``configs/*.json``): ``speclens-tiny-vit`` is a
#: 2-layer ViT/text transformer that builds almost at once, for demos and plumbing tests;
#: ``speclens-tiny`` (1 layer each) is smaller still, for the fine-tuning tests (build times in
#: docs/benchmarks.md, "Tiny open_clip architectures").
CONFIG_DIR = posixpath.join(posixpath.dirname(__file__), "configs")
SHIPPED_ARCHS = tuple(
    sorted(name[:-5] for name in os.listdir(CONFIG_DIR) if name.endswith(".json"))
)
_registered = threading.Lock()


def register_configs() -> None:
    """Register speclens' own open_clip architectures (idempotent); every process does this
    before it builds an open_clip model, so ``open_clip:speclens-tiny...`` ids resolve in any
    process (flows, Dask workers), not only where a test registered them."""
    import open_clip

    with _registered:
        known = set(open_clip.list_models())
        for name in SHIPPED_ARCHS:  # one file each: never override a config registered by name
            if name not in known:
                open_clip.add_model_config(posixpath.join(CONFIG_DIR, f"{name}.json"))


def _check_arch(spec: EncoderSpec) -> dict:
    """The architecture's config, or the error naming close matches (open_clip need not be
    imported: :mod:`.openclip_catalogue`)."""
    models = catalogue.architectures()
    if spec.arch not in models:
        close = difflib.get_close_matches(spec.arch, models, n=6, cutoff=0.5)
        hint = f"close matches: {', '.join(close)}" if close else f"e.g. {', '.join(models[:6])}"
        raise EncoderError(
            f"{spec}: open_clip has no architecture {spec.arch!r} ({hint}; all "
            f"{len(models)} are listed by open_clip.list_models())."
        )
    cfg = catalogue.model_config(spec.arch)
    text_cfg = cfg.get("text_cfg", {})
    needs_hf = "hf_model_name" in text_cfg or "hf_tokenizer_name" in text_cfg
    if needs_hf and importlib.util.find_spec("transformers") is None:
        raise EncoderError(
            f"{spec}: open_clip architecture {spec.arch} uses a Hugging Face text model, "
            "which needs the 'transformers' package; install it or pick a CLIP-style "
            "architecture such as ViT-B-32."
        )
    return cfg


def _tag_location(spec: EncoderSpec) -> dict[str, Any]:
    """Where a pretrained tag's weights live ({} for @random and checkpoint files), or the
    error listing the architecture's tags."""
    if spec.tag_kind != "pretrained":
        return {}
    location = catalogue.tag_locations(spec.arch, spec.tag)
    if location is None:
        listed = ", ".join(catalogue.tags(spec.arch)) or "none"
        raise EncoderError(
            f"{spec}: open_clip has no pretrained tag {spec.tag!r} for {spec.arch} "
            f"(known tags: {listed}; or use @random or @/path/to/model.safetensors)."
        )
    return location


def _pretrained_source(spec: EncoderSpec, pcfg: dict[str, Any]) -> PretrainedSource:
    hf_repo, filenames = _hf_location(pcfg.get("hf_hub", ""))
    return PretrainedSource(
        str(spec),
        spec.arch,
        spec.tag,
        hf_repo=hf_repo,
        hf_filenames=tuple(filenames),
        url=pcfg.get("url") or None,
        url_cache_dir="~/.cache/clip",
    )


def check(spec: EncoderSpec, *, allow_download: bool = True) -> None:
    """Everything :func:`build_model` would refuse, without building (and, once open_clip's
    table is cached, without importing open_clip): the architecture, the tag, and the weights
    being on this machine (or about to be downloaded)."""
    _check_arch(spec)
    where = _tag_location(spec)
    check_weights(spec, lambda: check_pretrained(_pretrained_source(spec, where), allow_download))


def build_model(spec: EncoderSpec, seed: int, allow_download: bool):
    """The full open_clip model (both towers) on the CPU in eval mode with gradients off, its
    weight provenance (``weights_sha256`` or ``weights_file``, ``weights_source``) and its
    architecture config. The image and text encoders and the fine-tuner all build with it."""
    import open_clip
    import torch

    register_configs()
    model_cfg = _check_arch(spec)
    _tag_location(spec)
    pcfg = (
        open_clip.get_pretrained_cfg(spec.arch, spec.tag) if spec.tag_kind == "pretrained" else {}
    )
    weights = resolve_weights(
        spec, seed, lambda: locate_pretrained(_pretrained_source(spec, pcfg), allow_download)
    )
    kwargs: dict[str, Any] = {"pretrained_image": False, "pretrained_text": False}
    if pcfg:
        kwargs["force_quick_gelu"] = bool(pcfg.get("quick_gelu", False))
        kwargs["force_preprocess_cfg"] = {k: pcfg[k] for k in _PREPROCESS_KEYS if k in pcfg}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        try:
            model = open_clip.create_model(spec.arch, pretrained=weights.path, **kwargs)
        except Exception as exc:  # unreadable file, missing or unexpected keys, shape mismatch
            if weights.path is None:
                raise
            first = (str(exc).splitlines() or [""])[0][:200]
            raise EncoderError(
                f"{spec}: the checkpoint {weights.path} could not be loaded into open_clip "
                f"architecture {spec.arch} ({type(exc).__name__}: {first}); pass a checkpoint "
                "saved from this architecture."
            ) from exc
    model.eval().requires_grad_(False)
    return model, weights.provenance(), model_cfg


def _hf_location(hf_hub: str) -> tuple[str | None, list[str]]:
    """open_clip's ``org/repo/[filename]`` hub entry -> repo id and the filenames to look for."""
    if not hf_hub:
        return None, []
    repo, filename = posixpath.split(hf_hub)
    if not filename:
        # open_clip's default file, and the safetensors twin it prefers
        return repo, ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
    stem, ext = posixpath.splitext(filename)
    if ext in (".bin", ".pth", ".pt"):
        return repo, [stem + ".safetensors", filename]
    return repo, [filename]


class _OpenClipEncoder(Encoder):
    def __init__(self, spec, device, seed: int, amp: bool, allow_download: bool):
        super().__init__(spec, device, amp)
        self.seed = seed
        model, self._weights, model_cfg = build_model(spec, seed, allow_download)
        model = self._keep_tower(model)
        # per architecture: channels_last for a convolutional image tower (RN50's
        # ModifiedResNet, ConvNeXt), never for ViTs or the text tower (base.conv_dominated)
        visual = getattr(model, "visual", None)
        self.model = self._placed(
            model, channels_last=visual is not None and conv_dominated(visual)
        )
        self.dim = int(model_cfg["embed_dim"])

    def _keep_tower(self, model):  # pragma: no cover - abstract
        raise NotImplementedError

    def _provenance_extra(self) -> dict[str, Any]:
        extra = {k: v for k, v in self._weights.items() if k != "weights_sha256"}
        if self.spec.tag_kind == "random":
            extra["seed"] = self.seed
        return extra


class OpenClipImageEncoder(_OpenClipEncoder):
    """The image tower: ``model.encode_image`` on open_clip-preprocessed images."""

    modality = "image"

    def __init__(self, spec, device, seed=0, amp=True, allow_download=True):
        super().__init__(spec, device, seed, amp, allow_download)

    def _keep_tower(self, model):
        import open_clip
        import torch

        try:
            self.transform = open_clip_preprocess(open_clip.get_model_preprocess_cfg(model))
        except ValueError as exc:
            raise EncoderError(f"{self.spec}: {exc}; pick another architecture.") from exc
        self.input_size = self.transform.size
        # encode_image only touches `visual`: free the text tower
        for name in ("transformer", "token_embedding", "ln_final", "text"):
            if isinstance(getattr(model, name, None), torch.nn.Module):
                setattr(model, name, None)
        return model

    def prepare(self, inputs):
        batch = as_image_batch(inputs, self.id)
        return self._staged(self.transform.resize_crop(batch, self._memory_format()))

    def _forward(self, x):
        return self.model.encode_image(self.transform.normalize(x), normalize=False)

    def preprocessing(self) -> dict[str, Any]:
        return self.transform.describe()


class OpenClipTextEncoder(_OpenClipEncoder):
    """The text tower: open_clip's tokenizer, then ``model.encode_text``."""

    modality = "text"
    input_size = None

    def __init__(self, spec, device, seed=0, amp=True, allow_download=True):
        super().__init__(spec, device, seed, amp, allow_download)

    def _keep_tower(self, model):
        import open_clip
        import torch

        try:
            self.tokenizer = open_clip.get_tokenizer(self.spec.arch)
        except Exception as exc:  # a HF tokenizer that is not cached, typically
            raise EncoderError(
                f"{self.spec}: the tokenizer for {self.spec.arch} could not be loaded "
                f"({type(exc).__name__}); make it available in the local Hugging Face cache "
                "or pick a CLIP-style architecture."
            ) from exc
        self._tok_lock = threading.Lock()
        self.context_length = int(getattr(self.tokenizer, "context_length", 77))
        if isinstance(getattr(model, "visual", None), torch.nn.Module):
            model.visual = None  # encode_text never touches the image tower
        return model

    def prepare(self, inputs):
        if isinstance(inputs, str) or not all(isinstance(t, str) for t in inputs):
            raise EncoderError(
                f"{self.id}: texts must be a list of strings (use '' for a missing caption)."
            )
        if len(inputs) == 0:
            raise EncoderError(f"{self.id}: texts must hold at least one string.")
        with self._tok_lock:
            tokens = self.tokenizer(list(inputs))
        return self._staged(tokens)

    def _forward(self, tokens):
        return self.model.encode_text(tokens, normalize=False)

    def preprocessing(self) -> dict[str, Any]:
        return {
            "input": "list[str]",
            "tokenizer": type(self.tokenizer).__name__,
            "context_length": self.context_length,
            "truncation": "longer texts are truncated to context_length tokens",
            "follows": "open_clip.get_tokenizer",
        }
