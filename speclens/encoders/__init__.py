"""Registry of embedding models: open_clip image and text towers, timm, weight-free baselines.

``get_encoder("hue-hist")`` returns an encoder with ``prepare`` (CPU, loader threads) and
``embed`` (device) steps, its output ``dim``/``dtype``, and a ``provenance()`` dict for the
embedding array's attributes. See :mod:`speclens.encoders.registry` for the id grammar.
"""

from .base import Encoder, EncoderError, EncoderSpec
from .registry import get_encoder, list_encoders, parse_encoder_id

__all__ = [
    "Encoder",
    "EncoderError",
    "EncoderSpec",
    "get_encoder",
    "list_encoders",
    "parse_encoder_id",
]
