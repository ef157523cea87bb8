"""What open_clip knows (architectures, pretrained tags, where each tag's weights live), read
without importing open_clip where that is possible.

Importing open_clip takes seconds (torch, torchvision and torch's compiler come with it): longer
than a user should wait to hear that an encoder id is mistyped or its weights are missing, which
:func:`speclens.encoders.check_encoder` says before any server starts. So:

* **Architectures** are the JSON files of open_clip's ``model_configs`` folder and speclens' own
  ``configs`` folder, found with ``importlib.util.find_spec`` (nothing is imported). When
  open_clip is already imported in this process it is asked instead: it may hold configs
  registered at run time.
* **Pretrained tags** are data inside open_clip's code: kept as a snapshot per installed
  version (:mod:`.snapshots`). ``python -m speclens.encoders.write_snapshots`` writes the
  open_clip and timm snapshots ahead of time (``make`` does).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

from . import snapshots

#: speclens' own architectures (see :mod:`speclens.encoders.openclip`).
SHIPPED_CONFIGS = Path(__file__).with_name("configs")
#: What the pretrained table keeps of each tag: where its weights are.
TAG_KEYS = ("hf_hub", "url")
DIST = "open_clip_torch"


def config_files() -> dict[str, Path]:
    """Architecture name -> its config file: open_clip's shipped configs, then speclens' own."""
    found: dict[str, Path] = {}
    spec = importlib.util.find_spec("open_clip")
    if spec is not None and spec.submodule_search_locations:
        folder = Path(next(iter(spec.submodule_search_locations))) / "model_configs"
        found.update({p.stem: p for p in sorted(folder.glob("*.json"))})
    for path in sorted(SHIPPED_CONFIGS.glob("*.json")):
        found.setdefault(path.stem, path)
    return found


def architectures() -> list[str]:
    """Every architecture name open_clip accepts here once speclens' configs are registered."""
    names = set(config_files())
    if "open_clip" in sys.modules:
        names |= set(sys.modules["open_clip"].list_models())
    return sorted(names)


def model_config(arch: str) -> dict:
    """The architecture's config (``embed_dim``, ``vision_cfg``, ``text_cfg``)."""
    if "open_clip" in sys.modules and arch in sys.modules["open_clip"].list_models():
        return sys.modules["open_clip"].get_model_config(arch) or {}
    return json.loads(config_files()[arch].read_text())


def _read_table() -> dict[str, dict[str, dict]]:
    """The table from open_clip itself (imports it): arch -> tag -> weight locations."""
    import open_clip

    table: dict[str, dict[str, dict]] = {}
    for arch, tag in open_clip.list_pretrained():
        cfg = open_clip.get_pretrained_cfg(arch, tag) or {}
        table.setdefault(arch, {})[tag] = {k: cfg.get(k) or "" for k in TAG_KEYS}
    return table


def write_snapshot() -> Path | None:
    """Save the pretrained table of the installed open_clip in the cache folder."""
    return snapshots.write("open_clip", DIST, _read_table)


def pretrained_table() -> dict[str, dict[str, dict]]:
    """arch -> tag -> ``{"hf_hub": ..., "url": ...}`` for the installed open_clip."""
    if "open_clip" in sys.modules:
        return _read_table()
    return snapshots.read("open_clip", DIST, _read_table)


def tag_locations(arch: str, tag: str) -> dict | None:
    """Where the weights of ``arch@tag`` live, or None when open_clip has no such tag."""
    return pretrained_table().get(arch, {}).get(tag)


def tags(arch: str) -> list[str]:
    """The pretrained tags of an architecture, in open_clip's order."""
    return list(pretrained_table().get(arch, {}))
