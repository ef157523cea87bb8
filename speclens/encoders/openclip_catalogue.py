"""What open_clip knows (architectures, pretrained tags, where each tag's weights live), read
without importing open_clip where that is possible.

Importing open_clip takes seconds (torch, torchvision and torch's compiler come with it): longer
than a user should wait to hear that an encoder id is mistyped or its weights are missing, which
:func:`speclens.encoders.check_encoder` says before any server starts. So:

* **Architectures** are the JSON files of open_clip's ``model_configs`` folder and speclens' own
  ``configs`` folder, found with ``importlib.util.find_spec`` (nothing is imported). When
  open_clip is already imported in this process it is asked instead: it may hold configs
  registered at run time.
* **Pretrained tags** are data inside open_clip's code. The first time open_clip is imported
  for them on a machine, the table is written to the user's cache folder
  (``$SPECLENS_CACHE_DIR``, else ``$XDG_CACHE_HOME/speclens`` or ``~/.cache/speclens``) as
  ``open_clip-<version>.json``; later checks read that file, which the installed version names.
  ``python -m speclens.encoders.openclip_catalogue`` writes it ahead of time (``make`` does).
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import tempfile
from importlib import metadata
from pathlib import Path

#: speclens' own architectures (see :mod:`speclens.encoders.openclip`).
SHIPPED_CONFIGS = Path(__file__).with_name("configs")
#: What the pretrained table keeps of each tag: where its weights are.
TAG_KEYS = ("hf_hub", "url")


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


def _cache_file(version: str) -> Path:
    root = os.environ.get("SPECLENS_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "speclens"
    )
    return Path(root) / f"open_clip-{version}.json"


def _read_table() -> dict[str, dict[str, dict]]:
    """The table from open_clip itself (imports it): arch -> tag -> weight locations."""
    import open_clip

    table: dict[str, dict[str, dict]] = {}
    for arch, tag in open_clip.list_pretrained():
        cfg = open_clip.get_pretrained_cfg(arch, tag) or {}
        table.setdefault(arch, {})[tag] = {k: cfg.get(k) or "" for k in TAG_KEYS}
    return table


def write_snapshot() -> Path | None:
    """Write the pretrained table for the installed open_clip to the cache folder; the file,
    or None when the folder cannot be written (checks then import open_clip each time)."""
    target = _cache_file(metadata.version("open_clip_torch"))
    table = _read_table()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=target.parent, delete=False) as f:
            json.dump(table, f)
        os.replace(f.name, target)
    except OSError:
        return None
    return target


def pretrained_table() -> dict[str, dict[str, dict]]:
    """arch -> tag -> ``{"hf_hub": ..., "url": ...}`` for the installed open_clip."""
    if "open_clip" in sys.modules:
        return _read_table()
    try:
        path = _cache_file(metadata.version("open_clip_torch"))
        return json.loads(path.read_text())
    except (OSError, ValueError, metadata.PackageNotFoundError):
        pass
    write_snapshot()
    return _read_table()


def tag_locations(arch: str, tag: str) -> dict | None:
    """Where the weights of ``arch@tag`` live, or None when open_clip has no such tag."""
    return pretrained_table().get(arch, {}).get(tag)


def tags(arch: str) -> list[str]:
    """The pretrained tags of an architecture, in open_clip's order."""
    return list(pretrained_table().get(arch, {}))


if __name__ == "__main__":
    print(write_snapshot() or "the cache folder cannot be written; nothing saved")
