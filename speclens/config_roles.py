"""The audit config's roles and alerts: a baseline encoder, the candidates compared with it
(each with the stable name its series uses) and the thresholds that make a run alert."""

from __future__ import annotations

import os
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

SAFE_NAME = r"^[A-Za-z0-9._-]+$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def local_path(url: str) -> str | None:
    """The local path of ``url`` (plain or file://), or None for other file systems."""
    if url.startswith("file://"):
        return url[len("file://") :]
    return None if "://" in url else os.path.expanduser(url)


def is_store(value: str) -> bool:
    """An embedding store URL rather than an encoder id."""
    return value.rstrip("/").endswith(".zarr") or "://" in value


def _check_role(value: str) -> str:
    """An encoder id, or the URL of an existing embedding store."""
    from speclens.encoders import EncoderError, parse_encoder_id

    value = value.strip()
    if is_store(value):
        path = local_path(value)
        if path is not None and not os.path.isdir(path):
            raise ValueError(
                f"no embedding store at {value}; pass an existing store or an encoder id"
            )
        return value
    try:
        parse_encoder_id(value)
    except EncoderError as exc:
        raise ValueError(str(exc).rstrip(".")) from None
    return value


Role = Annotated[str, AfterValidator(_check_role)]


class Candidate(_Strict):
    """A candidate encoder (id or embedding store URL) and the stable name its series uses
    (a checkpoint path that changes every night keeps one name)."""

    encoder: Role
    name: Annotated[str, Field(pattern=SAFE_NAME)] | None = None


class AlertRules(_Strict):
    """When an audit run alerts: its held-out SPEC-diff (either direction) above ``spec_diff``
    with p below ``p_value``, or (``new_mode``) a significant mode with no match in the
    previous run of its series; two runs' modes match at ``jaccard`` member overlap."""

    spec_diff: Annotated[float, Field(ge=0)] = 0.02
    p_value: Annotated[float, Field(gt=0, lt=1)] = 0.01
    new_mode: bool = True
    jaccard: Annotated[float, Field(gt=0, le=1)] = 0.5


def _as_candidates(value):
    """A plain id or URL in ``candidates`` is ``{encoder: <it>}`` (its series name: itself)."""
    if isinstance(value, list):
        return [{"encoder": v} if isinstance(v, str) else v for v in value]
    return value
