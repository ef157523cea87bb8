"""What timm knows (model names, pretrained tags and where each tag's weights live), read from a
snapshot (:mod:`.snapshots`) instead of importing timm, whose model registry takes seconds to
build. When timm is already imported in this process it is asked directly (it may hold models
registered at run time)."""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass

from . import snapshots

DIST = "timm"


@dataclass(frozen=True)
class TagConfig:
    """The fields of timm's ``PretrainedCfg`` that locating a tag's weights needs."""

    tag: str
    hf_hub_id: str
    hf_hub_filename: str
    url: str
    has_weights: bool
    custom_load: bool


def _config(cfg) -> dict:
    return {
        "tag": cfg.tag or "",
        "hf_hub_id": cfg.hf_hub_id or "",
        "hf_hub_filename": cfg.hf_hub_filename or "",
        "url": cfg.url if isinstance(cfg.url, str) else "",
        "has_weights": bool(cfg.has_weights),
        "custom_load": bool(cfg.custom_load),
    }


@functools.cache  # the library's table does not change within a process
def _read_table() -> dict:
    """From timm itself (imports it): model names, ``model.tag`` -> config, model -> its
    default tag."""
    import timm
    from timm.models import get_pretrained_cfg

    tags = {name: _config(get_pretrained_cfg(name)) for name in timm.list_pretrained()}
    default = {}
    for name in {n.partition(".")[0] for n in tags}:
        cfg = get_pretrained_cfg(name)
        if cfg is not None:
            default[name] = cfg.tag or ""
    return {"models": timm.list_models(), "tags": tags, "default": default}


def write_snapshot():
    """Save the installed timm's table in the cache folder."""
    return snapshots.write("timm", DIST, _read_table)


def _table() -> dict:
    if "timm" in sys.modules:
        return _read_table()
    return snapshots.read("timm", DIST, _read_table)


def list_models() -> list[str]:
    return list(_table()["models"])


def is_model(arch: str) -> bool:
    return arch in set(_table()["models"])


def list_tags(arch: str) -> list[str]:
    """The pretrained tags of ``arch`` in timm's order."""
    return [n.partition(".")[2] for n in _table()["tags"] if n.partition(".")[0] == arch]


def pretrained_cfg(arch: str, tag: str | None) -> TagConfig | None:
    """The config of ``arch.tag`` (``tag`` None: the model's default tag), or None."""
    table = _table()
    if tag is None:
        tag = table["default"].get(arch)
        if tag is None:
            return None
    cfg = table["tags"].get(f"{arch}.{tag}" if tag else arch)
    return None if cfg is None else TagConfig(**cfg)
