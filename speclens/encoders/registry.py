"""String ids -> encoders: ``parse_encoder_id``, ``get_encoder``, ``list_encoders``.

Ids::

    pixels | hue-hist | grad-hist | hog     weight-free, no downloads
    open_clip:<arch>@<tag>                  open_clip image tower
    open_clip-text:<arch>@<tag>             open_clip text tower (captions)
    timm:<model>@<tag>                      timm backbone, pooled features
    packaged:<model>[@<layer>]              pretrained weights shipped inside an installed
                                            package (optional extra 'pretrained'):
                                            packaged:efficientnet-lite0,
                                            packaged:vit-s14-dinov2init[@final|@block<k>]

    <tag> = random                          seeded random weights (plumbing tests)
          | /path/to/model.safetensors      a local checkpoint (.safetensors/.pt/.pth/.bin/.ckpt,
                                            or anything containing '/')
          | <name>                          a pretrained tag from the local cache (open_clip's
                                            tags, timm's tags, or timm's 'pretrained')
"""

from __future__ import annotations

from .base import (
    MODEL_FAMILIES,
    PACKAGED_FAMILY,
    WEIGHT_FREE,
    Encoder,
    EncoderError,
    EncoderSpec,
    resolve_device,
)
from .base import tag_kind as _tag_kind

_TEMPLATES = (
    "open_clip:<arch>@<tag>",
    "open_clip-text:<arch>@<tag>",
    "timm:<model>@<tag>",
)


def list_encoders() -> list[str]:
    """The weight-free ids, the id templates of the model families, then the packaged ids."""
    from .packaged import PACKAGED_IDS

    return [*WEIGHT_FREE, *_TEMPLATES, *PACKAGED_IDS]


def _known() -> str:
    return ", ".join(list_encoders())


def parse_encoder_id(encoder_id: str) -> EncoderSpec:
    """Parse an id into an :class:`EncoderSpec`; checks its shape only (no imports, no files)."""
    if not isinstance(encoder_id, str) or not encoder_id.strip():
        raise EncoderError(
            f"encoder id must be a non-empty string, got {encoder_id!r}; known: {_known()}."
        )
    text = encoder_id.strip()
    if text in WEIGHT_FREE:
        return EncoderSpec(family=text)
    family, sep, rest = text.partition(":")
    if sep and family == PACKAGED_FAMILY:
        from .packaged import parse_packaged

        return parse_packaged(text, rest)
    if not sep or family not in MODEL_FAMILIES:
        name = family if sep else text
        hint = " (weight-free encoders take no tag)" if name.split("@")[0] in WEIGHT_FREE else ""
        raise EncoderError(f"unknown encoder {text!r}{hint}; known ids are {_known()}.")
    arch, at, tag = rest.partition("@")
    arch, tag = arch.strip(), tag.strip()
    if not arch:
        raise EncoderError(
            f"encoder id {text!r} names no architecture; write {family}:<arch>@<tag>."
        )
    if not at or not tag:
        raise EncoderError(
            f"encoder id {text!r} has no weights tag; write {family}:{arch}@<tag> with a "
            "pretrained tag, @random, or @/path/to/model.safetensors."
        )
    return EncoderSpec(family=family, arch=arch, tag=tag, tag_kind=_tag_kind(tag))


def get_encoder(
    encoder_id: str,
    device: str = "auto",
    seed: int = 0,
    *,
    amp: bool = True,
    allow_download: bool = True,
) -> Encoder:
    """Build the encoder named by ``encoder_id`` on ``device``.

    ``seed`` draws the weights of ``@random`` ids (and is recorded). ``amp`` enables autocast
    (bf16, or fp16 without bf16 support) on CUDA; it has no effect on CPU. Pretrained tags are
    looked up in the local caches first; when absent, a download is attempted only if
    ``allow_download`` is true, ``HF_HUB_OFFLINE`` is unset and the hub answers within seconds,
    otherwise an :class:`EncoderError` says how to supply the weights.
    """
    spec = parse_encoder_id(encoder_id)
    dev = resolve_device(device, str(spec))
    seed = int(seed)
    if spec.family in WEIGHT_FREE:
        from .classical import WEIGHT_FREE_ENCODERS

        return WEIGHT_FREE_ENCODERS[spec.family](spec, dev)
    if spec.family == PACKAGED_FAMILY:
        from .packaged import build_packaged

        return build_packaged(spec, dev)
    if spec.family == "open_clip":
        from .openclip import OpenClipImageEncoder

        return OpenClipImageEncoder(spec, dev, seed=seed, amp=amp, allow_download=allow_download)
    if spec.family == "open_clip-text":
        from .openclip import OpenClipTextEncoder

        return OpenClipTextEncoder(spec, dev, seed=seed, amp=amp, allow_download=allow_download)
    from .timm_models import TimmEncoder

    return TimmEncoder(spec, dev, seed=seed, amp=amp, allow_download=allow_download)
