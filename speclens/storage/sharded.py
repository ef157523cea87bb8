"""What the sharded Zarr stores share: shards, commit markers, the manifest.

A sharded store is one Zarr v3 group whose row arrays are chunked ``shard_size`` rows at a
time; the shard (rows ``i * shard_size`` up to the next multiple, or the end) is the unit of
work, writing and retry. Under the store URL::

    _shards/<shard>.json       commit marker of a shard, written last by the shard's only writer
    <folder>/<shard>.parquet   optional per-shard tables (captions of a dataset or a text tower)
    manifest.json              the store's state ("planned", then "complete") and counts

A shard counts as committed only when its marker records the store's current input hash
under ``input_hash`` (stores written before that key was shared recorded it under a
subclass's ``legacy_hash_keys``, and those markers are still read). Rows of a shard without
a valid marker are not committed, whatever their chunks hold.

:class:`~speclens.storage.dataset_store.DatasetStore` and
:class:`~speclens.storage.embedding_store.EmbeddingStore` build on :class:`ShardedStore`.
"""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import zarr

from speclens.storage import urls

MANIFEST_FILE = "manifest.json"
MARKER_FOLDER = "_shards"
#: the marker key that records the input hash the shard was written for
MARKER_HASH_KEY = "input_hash"
#: the in-memory dtype of string row arrays (``sample_id``, ...)
STRING_DTYPE = np.dtypes.StringDType()


def shard_name(shard_id: int) -> str:
    return f"{shard_id:05d}"


def table_bytes(table: pa.Table, row_group_size: int | None = None) -> bytes:
    """``table`` as Parquet file bytes."""
    sink = io.BytesIO()
    pq.write_table(table, sink, row_group_size=row_group_size)
    return sink.getvalue()


def create_row_array(
    group: zarr.Group,
    name: str,
    *,
    n_samples: int,
    shard_size: int,
    dtype,
    tail: tuple[int, ...] = (),
    dimension_names: tuple[str, ...] = ("sample",),
    **options,
) -> zarr.Array:
    """A row array of ``group``: ``(n_samples, *tail)``, one chunk per shard; ``options`` go
    to :meth:`zarr.Group.create_array` (fill value, codecs, attributes)."""
    return group.create_array(
        name,
        shape=(n_samples, *tail),
        chunks=(shard_size, *tail),
        dtype=dtype,
        dimension_names=dimension_names,
        **options,
    )


#: why a URL is not an openable store, by its :func:`store_state`
NOT_A_STORE = {
    "absent": "nothing is there",
    "foreign": "it holds other files",
    "incomplete": "its creation was interrupted",
}


def store_state(url: str) -> str:
    """``absent`` (nothing there), ``foreign`` (something that is not a speclens store),
    ``incomplete`` (a store whose creation did not finish) or ``planned`` (manifest written)."""
    if not urls.exists(url):
        return "absent"
    names = urls.list_names(url)
    if not names:
        return "absent"
    if "zarr.json" in names:
        try:
            meta = urls.read_json(urls.join(url, "zarr.json"))
        except (ValueError, OSError):
            meta = {}
        if "speclens" in meta.get("attributes", {}):
            return "planned" if MANIFEST_FILE in names else "incomplete"
    return "foreign"


class ShardedStore:
    """A store at ``url`` whose Zarr group's ``attrs["speclens"]`` (``meta``) holds
    ``n_samples``; subclasses say where the shard size and the input hash come from."""

    #: marker keys that recorded the input hash before :data:`MARKER_HASH_KEY` (read only)
    legacy_hash_keys: tuple[str, ...] = ()

    def __init__(self, url: str, group: zarr.Group):
        self.url = str(url)
        self.group = group
        self.meta: dict = dict(group.attrs["speclens"])

    # ------------------------------------------------------------------ shards
    @property
    def n_samples(self) -> int:
        return int(self.meta["n_samples"])

    @property
    def shard_size(self) -> int:
        raise NotImplementedError

    @property
    def input_hash(self) -> str:
        """The hash of what the store is built from; a marker is valid only if it records it."""
        raise NotImplementedError

    @property
    def n_shards(self) -> int:
        return -(-self.n_samples // self.shard_size)

    def shard_range(self, shard_id: int) -> tuple[int, int]:
        """Rows ``(start, stop)`` of a shard; IndexError for a shard the store does not have."""
        if not 0 <= shard_id < self.n_shards:
            raise IndexError(f"shard {shard_id} out of range 0..{self.n_shards - 1}")
        start = shard_id * self.shard_size
        return start, min(start + self.shard_size, self.n_samples)

    def shard_url(self, folder: str, shard_id: int, suffix: str) -> str:
        """``<url>/<folder>/<shard>.<suffix>``: a per-shard file."""
        return urls.join(self.url, folder, shard_name(shard_id) + suffix)

    # ----------------------------------------------------------------- markers
    def marker_url(self, shard_id: int) -> str:
        return self.shard_url(MARKER_FOLDER, shard_id, ".json")

    def marker(self, shard_id: int) -> dict | None:
        """The commit marker of a shard, or None when the shard is not committed (no marker,
        an unreadable one, or one written for another input)."""
        try:
            marker = urls.read_json(self.marker_url(shard_id))
        except (FileNotFoundError, ValueError):
            return None
        if not isinstance(marker, dict):
            return None
        for key in (MARKER_HASH_KEY, *self.legacy_hash_keys):
            if key in marker:
                return marker if marker[key] == self.input_hash else None
        return None

    def markers(self) -> dict[int, dict]:
        """``{shard_id: marker}`` of every committed shard."""
        out = {}
        for name in urls.list_names(urls.join(self.url, MARKER_FOLDER)):
            stem = name[:-5]
            if name.endswith(".json") and stem.isdigit() and int(stem) < self.n_shards:
                marker = self.marker(int(stem))
                if marker is not None:
                    out[int(stem)] = marker
        return out

    def committed(self) -> list[int]:
        return sorted(self.markers())

    def pending(self) -> list[int]:
        done = set(self.markers())
        return [i for i in range(self.n_shards) if i not in done]

    def committed_rows(self) -> np.ndarray:
        """True for every row of a committed shard."""
        done = np.zeros(self.n_samples, dtype=bool)
        for shard_id in self.committed():
            start, stop = self.shard_range(shard_id)
            done[start:stop] = True
        return done

    def commit_shard(self, shard_id: int, fields: dict) -> dict:
        """Write the shard's marker (call it after everything else the shard writes): its
        range, the input hash, and ``fields``. Returns the marker."""
        start, stop = self.shard_range(shard_id)
        marker = {
            "shard": shard_id,
            "start": start,
            "stop": stop,
            MARKER_HASH_KEY: self.input_hash,
            **fields,
        }
        urls.write_json(self.marker_url(shard_id), marker)
        return marker

    # ------------------------------------------------------- per-shard tables
    def write_shard_table(self, folder: str, shard_id: int, table: pa.Table) -> None:
        urls.write_bytes(self.shard_url(folder, shard_id, ".parquet"), table_bytes(table))

    def read_shard_tables(self, folder: str, missing_ok: bool = False) -> list[pa.Table]:
        """The per-shard tables of ``folder`` of committed shards, in shard order."""
        tables = []
        for shard_id in self.committed():
            url = self.shard_url(folder, shard_id, ".parquet")
            if missing_ok and not urls.exists(url):
                continue
            tables.append(pq.read_table(pa.BufferReader(urls.read_bytes(url))))
        return tables

    # ------------------------------------------------------------------- reads
    def array(self, name: str) -> zarr.Array:
        """A row array of the store (``sample_id``, ``images``, ``embedding``, ...)."""
        return self.group[name]

    def sample_ids(self) -> np.ndarray:
        """The ``sample_id`` row array: the join key between a dataset and its embeddings."""
        return self.group["sample_id"][:]

    # ---------------------------------------------------------------- manifest
    def manifest_fields(self) -> dict:
        """What every manifest of this store records besides the caller's ``extra``."""
        return {"n_samples": self.n_samples}

    def manifest(self) -> dict:
        """The manifest, or {} when none is written."""
        try:
            return urls.read_json(urls.join(self.url, MANIFEST_FILE))
        except FileNotFoundError:
            return {}

    @property
    def complete(self) -> bool:
        """The manifest says "complete" and every shard is committed."""
        return self.manifest().get("state") == "complete" and not self.pending()

    def write_manifest(self, extra: dict) -> dict:
        """Write ``manifest.json``: :meth:`manifest_fields` and ``extra`` (which wins)."""
        manifest = {**self.manifest_fields(), **extra}
        urls.write_json(urls.join(self.url, MANIFEST_FILE), manifest)
        return manifest
