"""The table of encoder families, and the three calls on it: ``parse_encoder_id``,
``check_encoder`` (everything but the model build) and ``get_encoder``.

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

This is the only module that knows every family; each family module parses its own ids and
checks and builds its own encoders. The family modules import torch, open_clip, timm and onnx
only inside functions, so importing this one stays cheap.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from speclens.errors import EncoderError

from . import openclip, timm_models
from .base import Encoder, numpy_device, resolve_device
from .classical import GradHistEncoder, HogEncoder, HueHistEncoder, PixelsEncoder
from .ids import EncoderSpec, parse_bare, parse_model_id, split_id
from .packaged import PACKAGED_IDS, build_packaged, check_packaged, parse_packaged


@dataclass(frozen=True)
class Family:
    """One encoder family: how its ids parse, check and build, and the ids it lists.

    ``parse(id) -> EncoderSpec`` (shape only); ``check(spec, *, allow_download)`` raises what
    building would, without building or downloading; ``build(spec, device, *, seed, amp,
    allow_download) -> Encoder``; ``ids`` are what :func:`list_encoders` shows. A
    ``weight_free`` family's id is its bare name (no ``:`` part).
    """

    name: str
    parse: Callable[[str], EncoderSpec]
    build: Callable[..., Encoder]
    check: Callable[..., None]
    ids: tuple[str, ...]
    weight_free: bool = False


def _no_check(spec: EncoderSpec, *, allow_download: bool = True) -> None:
    """Weight-free encoders need nothing installed or cached."""


def _weight_free(name: str, encoder: Callable[..., Encoder]) -> Family:
    def build(spec: EncoderSpec, device, **_options) -> Encoder:
        return encoder(spec, device)  # no weights: seed, amp and downloads do not apply

    return Family(name, parse_bare, build, _no_check, (name,), weight_free=True)


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        _weight_free("pixels", PixelsEncoder),
        _weight_free("hue-hist", HueHistEncoder),
        _weight_free("grad-hist", GradHistEncoder),
        _weight_free("hog", HogEncoder),
        Family(
            "open_clip",
            parse_model_id,
            openclip.OpenClipImageEncoder,
            openclip.check,
            ("open_clip:<arch>@<tag>",),
        ),
        Family(
            "open_clip-text",
            parse_model_id,
            openclip.OpenClipTextEncoder,
            openclip.check,
            ("open_clip-text:<arch>@<tag>",),
        ),
        Family(
            "timm",
            parse_model_id,
            timm_models.TimmEncoder,
            timm_models.check,
            ("timm:<model>@<tag>",),
        ),
        Family("packaged", parse_packaged, build_packaged, check_packaged, PACKAGED_IDS),
    )
}


def list_encoders() -> list[str]:
    """Every family's ids, in table order: the weight-free ids, the model families' id
    templates, then the packaged ids."""
    return [i for family in FAMILIES.values() for i in family.ids]


def _known() -> str:
    return ", ".join(list_encoders())


def parse_encoder_id(encoder_id: str) -> EncoderSpec:
    """Parse an id into an :class:`EncoderSpec`; checks its shape only (no imports, no files)."""
    text, name, qualified = split_id(encoder_id, _known())
    family = FAMILIES.get(name)
    if family is None or family.weight_free == qualified:
        bare = FAMILIES.get(name.split("@")[0])
        hint = " (weight-free encoders take no tag)" if bare and bare.weight_free else ""
        raise EncoderError(f"unknown encoder {text!r}{hint}; known ids are {_known()}.")
    return family.parse(text)


def check_encoder(encoder_id: str, *, allow_download: bool = True) -> EncoderSpec:
    """Check everything about ``encoder_id`` that needs no data and no model build: the id, the
    architecture and tag, and that the weights are on this machine (a checkpoint file exists, a
    pretrained tag is in the local caches, a packaged model is installed). Returns the parsed id,
    or raises the one-sentence :class:`EncoderError` that :func:`get_encoder` would.

    It never downloads: a pretrained tag that is not cached passes only when :func:`get_encoder`
    would download it (``allow_download``, ``HF_HUB_OFFLINE`` unset, the hub reachable).
    Weight-free ids import no model library.
    """
    spec = parse_encoder_id(encoder_id)
    FAMILIES[spec.family].check(spec, allow_download=allow_download)
    return spec


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
    family = FAMILIES[spec.family]
    # the weight-free encoders run numpy code on the CPU: no torch import for them there
    dev = (family.weight_free and numpy_device(device)) or resolve_device(device, str(spec))
    return family.build(spec, dev, seed=int(seed), amp=amp, allow_download=allow_download)
