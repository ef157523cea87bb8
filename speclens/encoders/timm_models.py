"""timm image models: ``timm:<model>@<tag>``, pooled features (``num_classes=0``).

Tags: ``random`` (seeded random init), a local checkpoint path, ``pretrained`` (timm's default
pretrained tag for the model), or one of timm's own pretrained tags, e.g.
``timm:vit_small_patch14_dinov2@lvd142m``. A full timm name with its tag
(``timm:vit_small_patch14_dinov2.lvd142m@pretrained``) is accepted too.

Weights are always loaded by us from a local file with ``strict=True`` (after dropping the
classifier, and applying the model's own checkpoint filter when the file is in a foreign layout),
so a checkpoint that does not fit the architecture is an error, never a silent partial load.
Preprocessing follows timm's eval transform for the model's data config (resize to
``size / crop_pct``, centre crop ``size``, mean/std), batched on uint8 tensors.
"""

from __future__ import annotations

import difflib
import sys
from dataclasses import dataclass
from typing import Any

from speclens.errors import EncoderError

from . import timm_catalogue as catalogue
from .base import Encoder, as_image_batch, conv_dominated
from .ids import EncoderSpec
from .preprocess import timm_preprocess
from .weights import (
    PretrainedSource,
    check_pretrained,
    check_weights,
    load_state_dict,
    locate_pretrained,
    resolve_weights,
)

DEFAULT_TAGS = ("pretrained", "default")


def _split(spec: EncoderSpec) -> tuple[str, str | None]:
    """The architecture and the timm pretrained tag the id asks for (None for random/path)."""
    arch, _, name_tag = spec.arch.partition(".")
    if not catalogue.is_model(arch):
        models = catalogue.list_models()
        close = difflib.get_close_matches(arch, models, n=6, cutoff=0.6)
        hint = f"close matches: {', '.join(close)}" if close else "see timm.list_models()"
        raise EncoderError(f"{spec}: timm has no model {arch!r} ({hint}).")
    if spec.tag_kind != "pretrained":
        return arch, name_tag or None
    if spec.tag in DEFAULT_TAGS:
        return arch, name_tag or None
    if name_tag and name_tag != spec.tag:
        raise EncoderError(
            f"{spec}: the id names two timm tags ({name_tag!r} and {spec.tag!r}); "
            f"use timm:{arch}@{spec.tag}."
        )
    return arch, spec.tag


def _timm_cfg(arch: str, tag: str | None):
    """timm's pretrained config of ``arch`` (its default tag, or ``tag``); None if unknown."""
    return catalogue.pretrained_cfg(arch, tag)


def _listed_tags(arch: str) -> str:
    return ", ".join(t for t in catalogue.list_tags(arch) if t) or "none"


def _pretrained_cfg(spec: EncoderSpec, arch: str, tag: str | None):
    full = f"{arch}.{tag}" if tag else arch
    cfg = _timm_cfg(arch, tag)
    if cfg is None or not cfg.has_weights:
        raise EncoderError(
            f"{spec}: timm has no pretrained weights {full!r} (tags for {arch}: "
            f"{_listed_tags(arch)}; or use @pretrained, @random or @/path/to/model.safetensors)."
        )
    return full, cfg


@dataclass(frozen=True)
class _Plan:
    """What an id asks timm for: the architecture, the timm name whose data config applies
    (with its tag), the tag, and timm's pretrained config (pretrained tags only)."""

    arch: str
    name: str
    tag: str | None
    cfg: Any = None

    def source(self, spec: EncoderSpec) -> PretrainedSource:
        """Where the pretrained tag's weights live (HF hub repo, else timm's URL cache)."""
        cfg = self.cfg
        if cfg.hf_hub_filename:
            filenames = (cfg.hf_hub_filename,)
        else:
            filenames = ("model.safetensors", "pytorch_model.bin")  # timm prefers safetensors
        hub_id, _, revision = (cfg.hf_hub_id or "").partition("@")
        return PretrainedSource(
            str(spec),
            self.name,
            self.tag or cfg.tag or "pretrained",
            hf_repo=hub_id or None,
            hf_filenames=filenames,
            url=cfg.url if isinstance(cfg.url, str) else None,
            url_cache_dir=_torch_hub_checkpoints(),
            hf_revision=revision or None,
        )


def _plan(spec: EncoderSpec) -> _Plan:
    arch, tag = _split(spec)
    if spec.tag_kind == "pretrained":
        name, cfg = _pretrained_cfg(spec, arch, tag)
        return _Plan(arch, name, tag, cfg)
    # random or a checkpoint file: the data config of a named tag, the weights from elsewhere
    if tag and _timm_cfg(arch, tag) is None:
        raise EncoderError(
            f"{spec}: timm has no tag {tag!r} for {arch} (tags: {_listed_tags(arch)}); name one "
            f"of those, or drop '.{tag}' for the default data config."
        )
    return _Plan(arch, f"{arch}.{tag}" if tag else arch, tag)


def check(spec: EncoderSpec, *, allow_download: bool = True) -> None:
    """Everything :class:`TimmEncoder` would refuse, without building: the model, the tag, and
    the weights being on this machine (or about to be downloaded)."""
    plan = _plan(spec)
    check_weights(spec, lambda: check_pretrained(plan.source(spec), allow_download))


def _strict_load(spec: EncoderSpec, model, arch: str, state_dict: dict, source: str):
    """Load ``state_dict`` minus the classifier with strict key matching, or raise."""
    import timm

    own = model.state_dict()

    def without_head(sd):
        # the pooled-feature model has no classifier: drop head keys it does not own
        return {k: v for k, v in sd.items() if k in own or not _is_head_key(model, k)}

    attempts = [state_dict]
    module = sys.modules.get(timm.models.model_entrypoint(arch).__module__)
    filter_fn = getattr(module, "checkpoint_filter_fn", None)
    if filter_fn is not None:
        attempts.append(None)  # computed lazily, only if the plain load fails
    last: Exception | None = None
    for sd in attempts:
        if sd is None:
            try:
                sd = filter_fn(dict(state_dict), model)
            except Exception as exc:  # a filter that does not apply to this layout
                last = exc
                continue
        try:
            model.load_state_dict(without_head(sd), strict=True)
            return
        except RuntimeError as exc:
            last = exc
    first = str(last).splitlines()[0][:200] if last else ""
    raise EncoderError(
        f"{spec}: the checkpoint {source} does not fit timm model {arch} ({first}); pass a "
        "checkpoint saved from this architecture."
    )


def _is_head_key(model, key: str) -> bool:
    heads = model.pretrained_cfg.get("classifier") or "head"
    heads = (heads,) if isinstance(heads, str) else tuple(heads)
    return any(key == h or key.startswith(h + ".") for h in heads)


class TimmEncoder(Encoder):
    """A timm backbone with the classifier removed; output is its pooled feature vector."""

    modality = "image"

    def __init__(self, spec, device, seed=0, amp=True, allow_download=True):
        import timm
        import torch

        super().__init__(spec, device, amp)
        self.seed = seed
        plan = _plan(spec)
        # find the weights before building: a missing file must fail in milliseconds, not after
        # a large model's random init
        weights = resolve_weights(
            spec, seed, lambda: locate_pretrained(plan.source(spec), allow_download)
        )
        self._weights: dict[str, Any] = weights.provenance()
        name, path = plan.name, weights.path
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = timm.create_model(name, pretrained=False, num_classes=0)
        if path is not None:
            if plan.cfg is not None and plan.cfg.custom_load:
                model.load_pretrained(path)
            else:
                _strict_load(spec, model, plan.arch, load_state_dict(path, str(spec)), path)
        self.timm_name = name
        model.eval().requires_grad_(False)
        # per architecture: channels_last for convolutional networks (ResNets, EfficientNets,
        # ...), not for ViTs (base.conv_dominated)
        self.model = self._placed(model, channels_last=conv_dominated(model))
        data_cfg = timm.data.resolve_model_data_config(model)
        try:
            self.transform = timm_preprocess(data_cfg)
        except ValueError as exc:
            raise EncoderError(f"{spec}: {exc}; pick another model.") from exc
        self.input_size = self.transform.size
        self.dim = int(getattr(model, "head_hidden_size", None) or model.num_features)

    def prepare(self, inputs):
        batch = as_image_batch(inputs, self.id)
        return self._staged(self.transform.resize_crop(batch, self._memory_format()))

    def _forward(self, x):
        return self.model(self.transform.normalize(x))

    def preprocessing(self) -> dict[str, Any]:
        return self.transform.describe()

    def _provenance_extra(self) -> dict[str, Any]:
        extra = {k: v for k, v in self._weights.items() if k != "weights_sha256"}
        extra["timm_name"] = self.timm_name
        extra["pooling"] = "timm forward with num_classes=0 (model's own global pool)"
        if self.spec.tag_kind == "random":
            extra["seed"] = self.seed
        return extra


def _torch_hub_checkpoints() -> str:
    """torch hub's checkpoint folder, found as torch finds it (``$TORCH_HOME``, else
    ``$XDG_CACHE_HOME/torch`` or ``~/.cache/torch``) without importing torch to ask."""
    import os
    import sys

    if "torch" in sys.modules:  # it may have been moved with torch.hub.set_dir
        return os.path.join(sys.modules["torch"].hub.get_dir(), "checkpoints")
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    home = os.path.expanduser(os.environ.get("TORCH_HOME") or os.path.join(cache, "torch"))
    return os.path.join(home, "hub", "checkpoints")
