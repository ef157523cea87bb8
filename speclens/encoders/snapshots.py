"""Small JSON snapshots of what a model library knows (names, pretrained tags, where weights
live), kept in the user's cache folder so that checking an encoder id does not import the
library (which takes seconds). One file per library and installed version, written the first
time the library is imported for it (``make`` writes them at install time); a folder that
cannot be written just means the next check imports the library again.

Folder: ``$SPECLENS_CACHE_DIR``, else ``$XDG_CACHE_HOME/speclens`` or ``~/.cache/speclens``.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from importlib import metadata
from pathlib import Path


def cache_folder() -> Path:
    root = os.environ.get("SPECLENS_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "speclens"
    )
    return Path(root)


def snapshot_file(name: str, dist: str) -> Path:
    """``<cache folder>/<name>-<installed version of dist>.json``."""
    return cache_folder() / f"{name}-{metadata.version(dist)}.json"


def write(name: str, dist: str, build: Callable[[], dict]) -> Path | None:
    """Build the table (importing the library) and save it; the file, or None when the cache
    folder cannot be written."""
    target, table = snapshot_file(name, dist), build()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=target.parent, delete=False) as f:
            json.dump(table, f)
        os.replace(f.name, target)
    except OSError:
        return None
    return target


def read(name: str, dist: str, build: Callable[[], dict]) -> dict:
    """The saved table of the installed version, or a freshly built one (saved for next time)."""
    try:
        return json.loads(snapshot_file(name, dist).read_text())
    except (OSError, ValueError, metadata.PackageNotFoundError):
        pass
    write(name, dist, build)
    return build()
