"""Audit configuration: one YAML file says what to audit, with which encoders, how, and where.

``load_config(path, overrides, defaults)`` reads the file, lays ``overrides`` over it and the
file over ``defaults`` (key by key), and validates the result with pydantic. Every problem is
collected and reported at once, one line each, naming the key and the fix
(``compare.eta: must be greater than 0, got -1.0; set ...``); :class:`ConfigError` carries
the lines and nothing has run. Relative paths are relative to the working directory (the
repository root in deployments). The shipped example is ``deployments/audit.yaml``.
"""

from __future__ import annotations

import os
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    PositiveInt,
    ValidationError,
)

from speclens.config_messages import Vocabulary, format_errors
from speclens.errors import ConfigError
from speclens.tasks.params import CompareParams

SAFE_NAME = r"^[A-Za-z0-9._-]+$"


def _local(url: str) -> str | None:
    """The local path of ``url`` (plain or file://), or None for other file systems."""
    if url.startswith("file://"):
        return url[len("file://") :]
    return None if "://" in url else os.path.expanduser(url)


def _exists(want_dir: bool):
    def check(url: str) -> str:
        path = _local(url)
        if path is None:
            return url
        thing = "folder" if want_dir else "file"
        if not os.path.exists(path):
            raise ValueError(f"no {thing} at {url}; pass an existing {thing}")
        if os.path.isdir(path) != want_dir:
            raise ValueError(
                f"{url} is a {'file' if want_dir else 'folder'}, not a {thing}; pass a {thing}"
            )
        return url

    return AfterValidator(check)


Folder = Annotated[str, _exists(want_dir=True)]
File = Annotated[str, _exists(want_dir=False)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SampleSource(_Strict):
    kind: Literal["sample"]
    n: PositiveInt = 2000
    seed: NonNegativeInt = 0


class ImageNetSource(_Strict):
    kind: Literal["imagenet"]
    path: Folder
    labels: File | None = None
    class_index: File | None = None


class CocoSource(_Strict):
    kind: Literal["coco"]
    images: Folder
    captions: File


class FolderSource(_Strict):
    kind: Literal["folder"]
    path: Folder


class DatasetSource(_Strict):
    kind: Literal["dataset"]
    url: Folder


Source = Annotated[
    SampleSource | ImageNetSource | CocoSource | FolderSource | DatasetSource,
    Field(discriminator="kind"),
]


def _check_encoders(ids: list[str]) -> list[str]:
    from speclens.encoders import EncoderError, parse_encoder_id

    problems = []
    for i, encoder_id in enumerate(ids):
        try:
            parse_encoder_id(encoder_id)
        except EncoderError as exc:
            problems.append(f"[{i}]\t{str(exc).rstrip('.')}")
    if len(ids) < 2:
        problems.append(
            f"\tneeds at least two encoder ids, got {len(ids)}; add another "
            f"(e.g. {'grad-hist' if 'grad-hist' not in ids else 'hue-hist'})"
        )
    dupes = sorted({e for e in ids if ids.count(e) > 1})
    if dupes:
        problems.append(f"\t{', '.join(dupes)} named twice; list distinct encoders")
    if problems:
        raise ValueError("\n".join(problems))
    return [e.strip() for e in ids]


def _check_cron(cron: str | None) -> str | None:
    if cron is None:
        return None
    from prefect.client.schemas.schedules import CronSchedule

    try:
        CronSchedule(cron=cron)
    except ValueError:
        raise ValueError(
            f"{cron!r} is not a cron expression; write five fields, minute hour "
            "day-of-month month day-of-week (e.g. '0 3 * * *', daily at 03:00)"
        ) from None
    return cron


class AuditConfig(_Strict):
    """A validated audit: ingest ``source`` (unless it is a dataset store), embed it with each
    encoder, compare every pair, publish to the warehouse."""

    name: Annotated[str, Field(pattern=SAFE_NAME)] | None = None
    source: Source
    encoders: Annotated[list[str], AfterValidator(_check_encoders)]
    compare: CompareParams = Field(default_factory=CompareParams)
    root: Annotated[str, Field(min_length=1)] = "speclens-out"
    warehouse: Annotated[str, Field(min_length=1)] | None = None
    run_id: Annotated[str, Field(pattern=SAFE_NAME)] | None = None
    device: Annotated[str, Field(pattern=r"^(auto|cpu|cuda(:\d+)?)$")] = "auto"
    batch_size: PositiveInt = 64
    image_size: PositiveInt | None = None
    shard_size: PositiveInt = 256
    dask_address: Annotated[str, Field(pattern=r"^([a-z]+://)?[^\s/:]+:\d+$")] | None = None
    schedule: Annotated[str | None, AfterValidator(_check_cron)] = None

    @property
    def dataset(self) -> str:
        """The dataset store: the source's URL, or ``<root>/datasets/<name>.zarr``."""
        from speclens.storage.layout import Layout

        if isinstance(self.source, DatasetSource):
            return self.source.url
        return Layout(self.root).dataset(self.name or self.source.kind)

    @property
    def warehouse_url(self) -> str:
        """The warehouse: ``warehouse``, or ``<root>/warehouse``."""
        from speclens.storage.layout import Layout

        return Layout(self.root).warehouse(self.warehouse)

    def ingest_source(self):
        """The :class:`IngestSource` to ingest, or None for an existing dataset store."""
        from speclens.datasets.sources import IngestSource

        s = self.source
        if isinstance(s, SampleSource):
            return IngestSource.sample(s.n, s.seed)
        if isinstance(s, ImageNetSource):
            return IngestSource.imagenet(s.path, s.labels, s.class_index)
        if isinstance(s, CocoSource):
            return IngestSource.coco(s.images, s.captions)
        if isinstance(s, FolderSource):
            return IngestSource.folder(s.path)
        return None


#: What to write instead of a bad value, per key (the compare keys' come from CompareParams).
FIXES = {
    "name": "name the dataset store with letters, digits, '.', '_', '-' only (e.g. sample)",
    "source": "add e.g. `source: {kind: sample, n: 2000}`",
    "source.n": "set a whole number of images, at least 1 (e.g. 2000)",
    "source.seed": "set a whole number, 0 or more",
    "source.path": "set the dataset folder (e.g. /data/imagenet/train)",
    "source.labels": "set the val labels file (LOC_val_solution.csv) or remove the key",
    "source.class_index": "set the class-index file (imagenet_class_index.json) or remove the key",
    "source.images": "set the COCO image folder (e.g. /data/coco/val2017)",
    "source.captions": "set the COCO captions file (e.g. captions_val2017.json)",
    "source.url": "set the URL of an ingested dataset store (e.g. speclens-out/datasets/sample.zarr)",
    "encoders": "list two or more encoder ids, e.g. [hue-hist, grad-hist]",
    "compare": "make it a mapping, e.g. `compare: {rff_dim: 2000, n_modes: 8}`",
    "root": "set the output root, a local path or URL (e.g. speclens-out or s3://bucket/speclens)",
    "warehouse": "set the warehouse URL, or remove the key for <root>/warehouse",
    "run_id": "use letters, digits, '.', '_', '-' only, or remove the key for a generated id",
    "device": "use auto, cpu, cuda or cuda:N",
    "batch_size": "set a whole number > 0 (e.g. 64)",
    "image_size": "set a whole number of pixels > 0, or remove the key for the default",
    "shard_size": "set a whole number of images per shard > 0 (e.g. 256)",
    "dask_address": "use tcp://HOST:PORT of a running Dask scheduler, or remove the key for a "
    "local cluster",
    "schedule": "write a cron expression such as '0 3 * * *', or remove the key",
}
SOURCES = (SampleSource, ImageNetSource, CocoSource, FolderSource, DatasetSource)


def vocabulary() -> Vocabulary:
    """The audit config's keys, source kinds and fixes (derived from the models)."""
    kinds = {
        m.model_fields["kind"].annotation.__args__[0]: [k for k in m.model_fields if k != "kind"]
        for m in SOURCES
    }
    fixes = {**FIXES, "source.kind": f"use one of {', '.join(kinds)}"}
    own = Vocabulary(fixes, {(): list(AuditConfig.model_fields)}, kinds)
    return own | CompareParams.vocabulary()


def merge(base: dict, top: dict) -> dict:
    """``top`` laid over ``base``, mappings merged key by key (neither is changed)."""
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def validate_config(raw: Any, source: str = "audit config") -> AuditConfig:
    """Validate a mapping; raises :class:`ConfigError` with every problem."""
    if not isinstance(raw, dict):
        raise ConfigError(
            [
                f"(top level): must be a mapping of keys (name, source, encoders, "
                f"...), got {type(raw).__name__}; see deployments/audit.yaml"
            ],
            source,
        )
    try:
        return AuditConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_errors(exc.errors(), vocabulary()), source) from None


def read_config(path: str) -> dict:
    """The YAML mapping in ``path`` (any fsspec URL); raises :class:`ConfigError`."""
    import yaml

    from speclens.storage import urls

    try:
        text = urls.read_bytes(path).decode("utf-8")
    except (FileNotFoundError, IsADirectoryError, UnicodeDecodeError) as exc:
        raise ConfigError(
            [
                f"(file): cannot read {path} ({type(exc).__name__}); pass --config "
                f"with an audit YAML file such as deployments/audit.yaml"
            ],
            path,
        ) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(
            [
                f"(file): not valid YAML{where} ({getattr(exc, 'problem', exc)}); "
                f"fix the syntax there"
            ],
            path,
        ) from None
    return {} if raw is None else raw


def load_config(
    path: str | None = None, overrides: dict | None = None, defaults: dict | None = None
) -> AuditConfig:
    """Read ``path`` (optional), lay ``overrides`` over it and it over ``defaults``, validate."""
    raw = read_config(path) if path else {}
    if not isinstance(raw, dict):
        return validate_config(raw, path or "audit config")
    return validate_config(
        merge(merge(defaults or {}, raw), overrides or {}), path or "audit config"
    )
