"""The options of each SPEC-align mode and their checks, importable without torch or Prefect
so a command refuses a bad mode, encoder or option in a second: :func:`check_options`.

* ``adapter``: the fields of :class:`speclens.spec.adapter_config.AdapterConfig` (and
  ``kind``); any stored embedding can be adapted.
* ``finetune``: the loop's ``steps``, ``batch_size``, ``checkpoint_every`` and the fields of
  :class:`speclens.encoders.finetune.FinetuneConfig`; the encoder must be an open_clip image
  tower.
"""

from __future__ import annotations

import dataclasses

from speclens.encoders import EncoderError, parse_encoder_id
from speclens.errors import InputError
from speclens.spec.adapter_config import check_adapter_options

MODES = ("adapter", "finetune")
#: the share of the samples both embed that trains; the rest measures
TRAIN_FRAC = 0.5


#: Settings of the training loop (the rest of the options are :class:`FinetuneConfig` fields).
LOOP_DEFAULTS = {"steps": 500, "batch_size": 64, "checkpoint_every": 100}
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


def check_adapter(encoder: str, options: dict) -> None:
    """One sentence for an adapter option :func:`fit_adapter` would refuse (any encoder's
    stored embedding can be adapted)."""
    try:
        check_adapter_options(options)
    except ValueError as exc:
        raise InputError(f"adapter option: {exc}") from None


def check_finetune(encoder: str, options: dict) -> None:
    """One sentence for an encoder that is not an open_clip image tower, or a bad option."""
    check_finetune_encoder(encoder)
    finetune_settings(options)


def check_options(mode: str, encoder: str, options: dict | None = None) -> None:
    """One sentence for an unknown mode, or an encoder or option the mode refuses."""
    if mode not in MODES:
        raise InputError(
            f"align mode {mode!r} is unknown; pass --mode adapter (an adapter on "
            f"the stored embeddings) or --mode finetune (fine-tune an open_clip "
            f"image tower)."
        )
    (check_adapter if mode == "adapter" else check_finetune)(encoder, options or {})
