"""Dataset store: one Zarr v3 group per dataset, written shard by shard.

Layout under the store URL (any fsspec URL)::

    zarr.json                  group; attrs["speclens"]: config, input hash, label names, versions
    images                     uint8 (N, S, S, 3), one chunk per shard
    sample_id                  str (N,)  stable id (path relative to the dataset root); join key
    source_uri                 str (N,)  where the bytes came from
    label                      int32 (N,) class index into attrs label_names; -1 = no label
    caption                    str (N,)  first caption ("" when none); all of them in captions/
    sha256                     str (N,)  hex sha256 of the source bytes ("" when unreadable)
    status                     str (N,)  "ok" | "quarantined"
    reason                     str (N,)  why a row is quarantined, "category: detail" ("" when ok)
    conversion                 str (N,)  what was converted to make an ok row ("; "-joined)
    duplicate_of               int64 (N,) row of the first row with the same sha256; -1 = none
    factors/<name>             (N,) ground-truth factors of generated data; attrs["names"] for codes
    captions/<shard>.parquet   sample_id, caption_index, caption: every caption, one file per shard
    _plan.parquet              the planned rows, one row group per shard: what each shard reads
    _shards/<shard>.json       commit marker of a shard, written last by the shard's only writer
    manifest.json              counts and input hash; state "planned", then "complete"

Rows are in sorted ``sample_id`` order; shards, markers and the manifest follow
:mod:`speclens.storage.sharded`. Only the finalize step touches rows across shards
(``duplicate_of``, and status/reason of later copies of a duplicate), after every shard is
committed; it is idempotent.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import zarr
from zarr.codecs import ZstdCodec

from speclens.errors import InputError
from speclens.storage import urls
from speclens.storage.sharded import (
    NOT_A_STORE,
    STRING_DTYPE,
    ShardedStore,
    create_row_array,
    store_state,
    table_bytes,
)

LAYOUT_VERSION = 1
STATUS_OK = "ok"
STATUS_QUARANTINED = "quarantined"
STRING_ROWS = ("sample_id", "source_uri", "caption", "sha256", "status", "reason", "conversion")
PLAN_FILE = "_plan.parquet"
#: zstd level 1: about the ratio of the default level in far less time (measured in
#: docs/benchmarks.md, "Zarr image writes").
IMAGE_CODEC = ZstdCodec(level=1)
#: Every write covers whole chunks, so skip Zarr's scan for all-fill chunks: on a shard of
#: 224 px images that scan cost more than the compression itself (measured in
#: docs/benchmarks.md, "Zarr image writes").
WHOLE_CHUNKS = {"write_empty_chunks": True}

CAPTIONS_SCHEMA = pa.schema(
    [("sample_id", pa.string()), ("caption_index", pa.int32()), ("caption", pa.string())]
)


def reason_category(reason: str) -> str:
    """The counted part of a reason: the text before the first colon."""
    return reason.split(":", 1)[0].strip()


@dataclass
class ShardRows:
    """Everything one shard writes, row-aligned (rows ``start:stop`` of the store)."""

    images: np.ndarray
    sample_id: list[str]
    source_uri: list[str]
    label: np.ndarray
    caption: list[str]
    sha256: list[str]
    status: list[str]
    reason: list[str]
    conversion: list[str]
    captions: pa.Table
    factors: dict[str, np.ndarray] = field(default_factory=dict)


def input_hash(plan: pa.Table, config: dict) -> str:
    """sha256 of the planned rows (ids, sources, sizes, labels, captions) and the config."""
    h = hashlib.sha256()
    h.update(repr(sorted(config.items())).encode())
    for name in sorted(plan.column_names):
        h.update(b"\x00column\x00" + name.encode())
        for value in plan.column(name).to_pylist():
            item = (
                value if isinstance(value, bytes) else repr(value).encode("utf-8", "surrogatepass")
            )
            h.update(len(item).to_bytes(8, "little") + item)
    return h.hexdigest()


def _versions() -> dict:
    import PIL

    return {
        "zarr": zarr.__version__,
        "numpy": np.__version__,
        "pillow": PIL.__version__,
        "pyarrow": pa.__version__,
    }


def _create_arrays(
    group: zarr.Group, plan: pa.Table, config: dict, factor_names: dict[str, list[str] | None]
) -> None:
    """Every row array of a new store, unfilled."""
    size = int(config["image_size"])
    rows = {"n_samples": plan.num_rows, "shard_size": int(config["shard_size"])}
    create_row_array(
        group,
        "images",
        **rows,
        dtype="uint8",
        tail=(size, size, 3),
        dimension_names=("sample", "y", "x", "channel"),
        compressors=[IMAGE_CODEC],
        attributes={"resize_policy": config.get("resize_policy"), "colour": "RGB"},
    )
    for name in STRING_ROWS:
        create_row_array(group, name, **rows, dtype=str, fill_value="")
    create_row_array(group, "label", **rows, dtype="int32", fill_value=-1)
    create_row_array(group, "duplicate_of", **rows, dtype="int64", fill_value=-1)
    if factor_names:
        factors = group.create_group("factors")
        for name, names in factor_names.items():
            dtype = plan.column(f"factor_{name}").type.to_pandas_dtype()
            attributes = {"names": names} if names else {}
            create_row_array(factors, name, **rows, dtype=dtype, attributes=attributes)


class DatasetStore(ShardedStore):
    """A dataset store at ``url``; create it with :meth:`create`, open it with :meth:`open`."""

    # ----------------------------------------------------------------- create / open
    @classmethod
    def create(
        cls,
        url: str,
        *,
        plan: pa.Table,
        config: dict,
        source: dict,
        label_names: list[str],
        factor_names: dict[str, list[str] | None] | None = None,
        dropped: dict[str, int] | None = None,
    ) -> DatasetStore:
        """Create an empty store for the planned rows ``plan`` (sorted by sample_id).

        Writes arrays (unfilled), the plan, then the manifest last: a store without a
        manifest is an interrupted creation and is rebuilt by the next run. Replaces a
        store already at ``url``; refuses a location holding anything else.
        """
        if store_state(url) == "foreign":
            raise InputError(
                f"{url} already holds files that are not a speclens dataset store; "
                "choose an empty or new location."
            )
        n, shard = plan.num_rows, int(config["shard_size"])
        attrs = {
            "layout_version": LAYOUT_VERSION,
            "kind": "dataset",
            "config": config,
            "source": source,
            "input_hash": input_hash(plan, config),
            "n_samples": n,
            "n_shards": -(-n // shard),
            "label_names": list(label_names),
            "versions": _versions(),
        }
        urls.remove(url)
        group = zarr.open_group(url, mode="w", attributes={"speclens": attrs})
        _create_arrays(group, plan, config, factor_names or {})
        urls.write_bytes(urls.join(url, PLAN_FILE), table_bytes(plan, row_group_size=shard))
        store = cls(url, group)
        store.write_manifest({"state": "planned", "dropped": dict(dropped or {})})
        return store

    @classmethod
    def open(cls, url: str, mode: str = "r") -> DatasetStore:
        """Open a planned store; ``mode="r+"`` for the ingest tasks that write into it."""
        state = store_state(url)
        if state != "planned":
            raise InputError(
                f"{url} is not a speclens dataset store ({NOT_A_STORE[state]}); "
                f"create it with `speclens ingest ... --out {url}`."
            )
        return cls(url, zarr.open_group(url, mode=mode))

    # ------------------------------------------------------------------ properties
    @property
    def config(self) -> dict:
        return dict(self.meta["config"])

    @property
    def shard_size(self) -> int:
        return int(self.meta["config"]["shard_size"])

    @property
    def image_size(self) -> int:
        return int(self.meta["config"]["image_size"])

    @property
    def input_hash(self) -> str:
        return self.meta["input_hash"]

    @property
    def label_names(self) -> list[str]:
        return list(self.meta["label_names"])

    # ---------------------------------------------------------------------- plan
    def plan_rows(self, shard_id: int) -> pa.Table:
        """The planned rows of one shard (one row group of ``_plan.parquet``)."""
        fs, path = urls.fs_and_path(urls.join(self.url, PLAN_FILE))
        with fs.open(path, "rb") as f:
            table = pq.ParquetFile(f).read_row_group(shard_id)
        start, stop = self.shard_range(shard_id)
        if table.num_rows != stop - start:
            raise RuntimeError(
                f"plan row group {shard_id} has {table.num_rows} rows, expected {stop - start}"
            )
        return table

    # -------------------------------------------------------------------- writes
    def write_shard(self, shard_id: int, rows: ShardRows, stats: dict | None = None) -> dict:
        """Write one shard's rows, its captions, then its marker (last). Returns the marker."""
        start, stop = self.shard_range(shard_id)
        k = stop - start
        if rows.images.shape != (k, self.image_size, self.image_size, 3):
            raise ValueError(f"shard {shard_id}: images shape {rows.images.shape} does not match")

        def put(name: str, values) -> None:
            self.group[name].with_config(WHOLE_CHUNKS)[start:stop] = values

        put("images", rows.images)
        for name in STRING_ROWS:
            values = getattr(rows, name)
            if len(values) != k:
                raise ValueError(f"shard {shard_id}: {name} has {len(values)} rows, expected {k}")
            put(name, np.asarray(values, dtype=STRING_DTYPE))
        put("label", np.asarray(rows.label, dtype=np.int32))
        for name, values in rows.factors.items():
            put(f"factors/{name}", values)
        self.write_shard_table("captions", shard_id, rows.captions.cast(CAPTIONS_SCHEMA))
        digest = hashlib.sha256()  # of what the shard read: ids, source hashes, labels
        for name in ("sample_id", "sha256"):
            digest.update("\n".join(getattr(rows, name)).encode("utf-8"))
        digest.update(np.asarray(rows.label, dtype=np.int32).tobytes())
        fields = {
            "content_sha256": digest.hexdigest(),
            "counts": dict(Counter(rows.status)),
            "reasons": dict(Counter(reason_category(r) for r in rows.reason if r)),
            "conversions": dict(Counter(c for cs in rows.conversion for c in cs.split("; ") if c)),
            "written_at": time.time(),
            **(stats or {}),
        }
        return self.commit_shard(shard_id, fields)

    def manifest_fields(self) -> dict:
        return {
            "layout_version": LAYOUT_VERSION,
            "input_hash": self.input_hash,
            "n_samples": self.n_samples,
            "n_shards": self.n_shards,
            "config": self.config,
            "source": self.meta["source"],
        }

    def write_manifest(self, extra: dict) -> dict:
        """The planned manifest, or (any later state) the current one updated with ``extra``."""
        keep = self.manifest() if extra.get("state") != "planned" else {}
        return super().write_manifest({**keep, **extra})

    def mark_duplicates(self) -> int:
        """Flag later copies of identical source bytes; returns how many rows are flagged.

        The first row (in sample_id order) with a given sha256 stays ``ok``; every later
        copy gets status ``quarantined``, reason ``duplicate: same bytes as <sample_id>`` and
        ``duplicate_of`` = the first row's index. Pixels stay. Idempotent.
        """
        sha = self.group["sha256"][:]
        status = self.group["status"][:]
        reason = self.group["reason"][:]
        ids = self.group["sample_id"][:]
        duplicate_of = np.full(self.n_samples, -1, dtype=np.int64)
        first: dict[str, int] = {}
        for i, digest in enumerate(sha):
            if not digest:
                continue
            if digest in first:
                duplicate_of[i] = first[digest]
            elif status[i] == STATUS_OK:
                first[digest] = i
        rows = np.flatnonzero(duplicate_of >= 0)
        for i in rows:
            status[i] = STATUS_QUARANTINED
            reason[i] = f"duplicate: same bytes as {ids[duplicate_of[i]]}"
        self.group["duplicate_of"][:] = duplicate_of
        if rows.size:
            self.group["status"][:] = status
            self.group["reason"][:] = reason
        return int(rows.size)

    def marker_totals(self, markers: dict[int, dict] | None = None) -> dict:
        """Counts, reasons and conversions summed over committed shards (before duplicates)."""
        markers = self.markers() if markers is None else markers
        counts, reasons, conversions = Counter(), Counter(), Counter()
        for m in markers.values():
            counts.update(m["counts"])
            reasons.update(m["reasons"])
            conversions.update(m["conversions"])
        return {
            "counts": dict(counts),
            "reasons": dict(reasons),
            "conversions": dict(conversions),
            "bytes_read": sum(m.get("bytes_read", 0) for m in markers.values()),
            "rows": sum(m["stop"] - m["start"] for m in markers.values()),
        }

    def summary(self) -> dict:
        """What ``speclens info`` shows: shards committed/pending, counts, reasons, drops."""
        markers = self.markers()
        manifest = self.manifest()
        totals = self.marker_totals(markers)
        complete = manifest.get("state") == "complete" and len(markers) == self.n_shards
        if complete:
            totals.update({k: manifest[k] for k in ("counts", "reasons")})
        return {
            "url": self.url,
            "state": "complete" if complete else "partial",
            "source": self.meta["source"],
            "config": self.config,
            "input_hash": self.input_hash,
            "n_samples": self.n_samples,
            "n_shards": self.n_shards,
            "committed": len(markers),
            "pending": [i for i in range(self.n_shards) if i not in markers],
            "rows_committed": totals["rows"],
            "counts": totals["counts"],
            "reasons": totals["reasons"],
            "conversions": totals["conversions"],
            "duplicates": manifest.get("duplicates") if complete else None,
            "dropped": manifest.get("dropped", {}),
            "bytes_read": totals["bytes_read"],
        }

    # --------------------------------------------------------------------- reads
    def images(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        return self.group["images"][start:stop]

    def labels(self) -> np.ndarray:
        return self.group["label"][:]

    def status(self) -> np.ndarray:
        return self.group["status"][:]

    def reasons(self) -> np.ndarray:
        return self.group["reason"][:]

    def ok_mask(self) -> np.ndarray:
        """True for rows later stages should use: committed, decoded, not a duplicate copy."""
        return (self.status() == STATUS_OK) & self.committed_rows()

    def factor_names(self) -> dict[str, list[str] | None]:
        """Ground-truth factors of a generated dataset: name -> code names (None if numeric)."""
        if "factors" not in self.group:
            return {}
        out = {}
        for name, arr in sorted(self.group["factors"].arrays()):
            out[name] = list(arr.attrs["names"]) if "names" in arr.attrs else None
        return out

    def factors(self) -> dict[str, np.ndarray]:
        return {name: self.group[f"factors/{name}"][:] for name in self.factor_names()}

    def captions(self) -> pa.Table:
        """Every caption of committed shards: sample_id, caption_index, caption, in row order."""
        tables = self.read_shard_tables("captions")
        if not tables:
            return CAPTIONS_SCHEMA.empty_table()
        return pa.concat_tables(tables)
