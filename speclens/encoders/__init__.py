"""Embedding models behind string ids: open_clip image and text towers, timm, packaged models,
weight-free baselines.

``get_encoder("hue-hist")`` returns an encoder with ``prepare`` (CPU, loader threads) and
``embed`` (device) steps, its output ``dim``/``dtype``, and a ``provenance()`` dict for the
embedding array's attributes. ``check_encoder(id)`` finds the same id, tag and missing-weights
errors without building a model. See :mod:`speclens.encoders.registry` for the id grammar.
"""

from speclens.errors import EncoderError

from .base import Encoder
from .ids import EncoderSpec
from .registry import check_encoder, get_encoder, list_encoders, parse_encoder_id

__all__ = [
    "Encoder",
    "EncoderError",
    "EncoderSpec",
    "check_encoder",
    "get_encoder",
    "list_encoders",
    "parse_encoder_id",
]
