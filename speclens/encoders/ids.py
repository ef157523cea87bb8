"""Encoder ids as values: :class:`EncoderSpec`, the tag classes, and the grammar every family shares.

An id is either a bare family name (the weight-free encoders: ``hue-hist``) or
``<family>:<rest>``, where each family parses its own ``<rest>``; the model families share
``<family>:<arch>@<tag>`` (:func:`parse_model_id`). Which families exist is known only to
:mod:`speclens.encoders.registry`; this module imports no other encoder module, so every family
module can use it.
"""

from __future__ import annotations

from dataclasses import dataclass

from speclens.errors import EncoderError

CHECKPOINT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin", ".ckpt")


@dataclass(frozen=True)
class EncoderSpec:
    """A parsed encoder id: ``family`` alone for weight-free encoders, else ``family:arch@tag``.

    ``tag_kind`` is ``"none"`` (weight-free), ``"random"`` (seeded random weights), ``"path"``
    (a local checkpoint file), ``"pretrained"`` (a named tag resolved from the local cache) or
    ``"packaged"`` (weights inside an installed package; ``tag`` then names a layer, or is
    None for the model's default output, and the id prints as ``packaged:<model>``).
    """

    family: str
    arch: str | None = None
    tag: str | None = None
    tag_kind: str = "none"

    def __str__(self) -> str:
        if self.arch is None:
            return self.family
        if self.tag is None:
            return f"{self.family}:{self.arch}"
        return f"{self.family}:{self.arch}@{self.tag}"


def tag_kind(tag: str) -> str:
    """Classify a weights tag: ``random``, a checkpoint ``path``, or a ``pretrained`` name."""
    if tag == "random":
        return "random"
    if "/" in tag or "\\" in tag or tag.startswith(("~", ".")) or tag.endswith(CHECKPOINT_SUFFIXES):
        return "path"
    return "pretrained"


def split_id(encoder_id: object, known: str) -> tuple[str, str, bool]:
    """``(id, family, qualified)``: the stripped id, the family it names (the part before ``:``,
    or the whole id), and whether it has a ``:<rest>``. ``known`` lists the ids for the error
    an empty or non-string id gets."""
    if not isinstance(encoder_id, str) or not encoder_id.strip():
        raise EncoderError(
            f"encoder id must be a non-empty string, got {encoder_id!r}; known: {known}."
        )
    text = encoder_id.strip()
    family, sep, _ = text.partition(":")
    return text, family if sep else text, bool(sep)


def parse_bare(text: str) -> EncoderSpec:
    """A weight-free id: the family name alone."""
    return EncoderSpec(family=text)


def parse_model_id(text: str) -> EncoderSpec:
    """``<family>:<arch>@<tag>`` (the open_clip and timm families) -> EncoderSpec; checks the
    shape only (no imports, no files)."""
    family, _, rest = text.partition(":")
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
    return EncoderSpec(family=family, arch=arch, tag=tag, tag_kind=tag_kind(tag))
