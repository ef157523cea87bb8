"""What a reader hands to the store: the planned rows of a dataset, sorted by sample_id.

A :class:`Plan` is the listing of a dataset, before any image is read: one row per sample
with its ``sample_id`` (the path relative to the dataset root, ``/``-separated; bytes that
are not UTF-8 written as ``\\xNN``), its source (raw bytes of the URL, so undecodable local
names still open), the file size, label, captions, a note of conversions made while listing,
and (generated data) its factors. Rows are sorted by ``sample_id``; shards are consecutive
runs of ``shard_size`` rows, so shard assignment is deterministic.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from speclens.errors import InputError
from speclens.storage import urls

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
NAME_ESCAPED = "file name not UTF-8 (escaped in sample_id)"


@dataclass
class FileEntry:
    rel: str  # path relative to the root, "/"-separated, may hold surrogate escapes
    url: str  # full URL, may hold surrogate escapes
    size: int


@dataclass
class Plan:
    table: pa.Table
    label_names: list[str]
    source: dict  # JSON description of the input (kind, paths, seed, ...)
    factor_names: dict[str, list[str] | None] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return self.table.num_rows


def is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def require_dir(url: str, what: str, fix: str) -> None:
    """One sentence when ``url`` is not an existing folder."""
    if not urls.exists(url):
        raise InputError(f"{what} {url} does not exist; {fix}.")
    if not urls.is_dir(url):
        raise InputError(f"{what} {url} is a file, not a folder; {fix}.")


def require_file(url: str, what: str, fix: str) -> None:
    if not urls.exists(url):
        raise InputError(f"{what} {url} does not exist; {fix}.")
    if urls.is_dir(url):
        raise InputError(f"{what} {url} is a folder, not a file; {fix}.")


def list_files(root: str) -> tuple[list[FileEntry], Counter]:
    """Every file under ``root`` with an image extension, and counts of what was skipped."""
    fs, base = urls.fs_and_path(root)
    base = base.rstrip("/")
    entries, skipped = [], Counter()
    for path, info in sorted(fs.find(base, detail=True, withdirs=False).items()):
        rel = path[len(base) :].lstrip("/")
        if info.get("type") == "directory":
            continue
        if not is_image_name(rel):
            skipped["file without an image extension"] += 1
            continue
        entries.append(FileEntry(rel, urls.full_url(fs, path), int(info.get("size") or 0)))
    return entries, skipped


def build_plan(
    *,
    rel_ids: list[str],
    sources: list[str],
    sizes: list[int],
    labels: list[int] | np.ndarray,
    captions: list[list[str]] | None = None,
    factors: dict[str, np.ndarray] | None = None,
) -> pa.Table:
    """The plan table, rows sorted by sample_id. ``rel_ids`` may hold surrogate escapes:
    they are escaped (and noted) here; ids that collide after escaping get ``#2``, ``#3``."""
    n = len(rel_ids)
    captions = captions if captions is not None else [[] for _ in range(n)]
    ids, notes = [], []
    for rel in rel_ids:
        text, escaped = urls.printable(rel)
        ids.append(text)
        notes.append(NAME_ESCAPED if escaped else "")
    seen: Counter = Counter()
    for i, sid in enumerate(ids):
        seen[sid] += 1
        if seen[sid] > 1:
            ids[i] = f"{sid}#{seen[sid]}"
    order = sorted(range(n), key=ids.__getitem__)
    columns = {
        "sample_id": pa.array([ids[i] for i in order], pa.string()),
        "source": pa.array([urls.to_bytes(sources[i]) for i in order], pa.binary()),
        "size": pa.array([int(sizes[i]) for i in order], pa.int64()),
        "label": pa.array(np.asarray(labels, dtype=np.int32)[order] if n else [], pa.int32()),
        "captions": pa.array([list(captions[i]) for i in order], pa.list_(pa.string())),
        "note": pa.array([notes[i] for i in order], pa.string()),
    }
    for name, values in (factors or {}).items():
        columns[f"factor_{name}"] = pa.array(np.asarray(values)[order])
    return pa.table(columns)


def require_rows(table: pa.Table, where: str, fix: str) -> None:
    if table.num_rows == 0:
        raise InputError(f"{where} holds no images; {fix}.")
