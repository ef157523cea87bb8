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
    BeforeValidator,
    Field,
    NonNegativeInt,
    PositiveInt,
    ValidationError,
    model_validator,
)

from speclens.config_messages import Vocabulary, format_errors
from speclens.config_roles import (
    SAFE_NAME,
    AlertRules,
    Candidate,
    Role,
    _as_candidates,
    _Strict,
    is_store,
    local_path,
)
from speclens.errors import ConfigError
from speclens.tasks.params import CompareParams


def _exists(want_dir: bool):
    def check(url: str) -> str:
        path = local_path(url)
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
    encoder, compare every pair (or the ``baseline`` against each of the ``candidates``),
    publish to the warehouse; each run joins a series, tracked over time."""

    name: Annotated[str, Field(pattern=SAFE_NAME)] | None = None
    source: Source
    encoders: Annotated[list[str], AfterValidator(_check_encoders)] | None = None
    baseline: Role | None = None
    candidates: Annotated[list[Candidate], BeforeValidator(_as_candidates)] | None = None
    series: Annotated[str, Field(pattern=SAFE_NAME)] | None = None
    alerts: AlertRules | None = None
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

    @model_validator(mode="after")
    def _roles(self) -> AuditConfig:
        problems = []
        roles = self.baseline is not None or self.candidates is not None
        if roles and self.encoders is not None:
            problems.append(
                "encoders\tgiven with baseline/candidates; list encoders for every pair, or "
                "name a baseline and candidates, not both"
            )
        elif roles and (self.baseline is None or not self.candidates):
            missing = "baseline" if self.baseline is None else "candidates"
            problems.append(f"{missing}\tmissing; {FIXES[missing]}")
        elif not roles and self.encoders is None:
            problems.append(f"encoders\tmissing; {FIXES['encoders']}")
        if self.series is not None and len(self.pairs) > 1:
            problems.append(
                f"series\tnames one comparison but this audit makes {len(self.pairs)}; remove "
                "it (each pair gets its own series) or audit one candidate"
            )
        if problems:
            raise ValueError("\n".join(problems))
        return self

    @property
    def roles(self) -> list[tuple[str, str]]:
        """(encoder id or store URL, series name) of each encoder compared: the baseline
        first, then the candidates; or the encoders of an every-pair audit."""
        if self.baseline is None:
            return [(e, e) for e in self.encoders or []]
        out = [(self.baseline, self.baseline)]
        return out + [(c.encoder, c.name or c.encoder) for c in self.candidates or []]

    @property
    def pairs(self) -> list[tuple[int, int]]:
        """The index pairs compared: the baseline (0) with each candidate, or every pair."""
        n = len(self.roles)
        if self.baseline is not None:
            return [(0, i) for i in range(1, n)]
        return [(i, j) for i in range(n) for j in range(i + 1, n)]

    @property
    def embed_ids(self) -> list[str]:
        """The encoder ids to embed (store URLs are already embedded), each once."""
        return list(dict.fromkeys(e for e, _ in self.roles if not is_store(e)))

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
    "encoders": "list two or more encoder ids, e.g. [hue-hist, grad-hist], or name a baseline "
    "and candidates",
    "baseline": "name the encoder the candidates are compared with (an id such as hue-hist or "
    "an embedding store URL)",
    "candidates": "list the encoders compared with the baseline, e.g. [grad-hist] or "
    "[{encoder: open_clip:ViT-B-32@/ckpt/nightly.pt, name: nightly}]",
    "candidates.encoder": "set an encoder id or an embedding store URL",
    "candidates.name": "name the candidate with letters, digits, '.', '_', '-' only",
    "series": "name the series with letters, digits, '.', '_', '-' only, or remove the key for "
    "a derived one",
    "alerts": "make it a mapping, e.g. `alerts: {spec_diff: 0.02, p_value: 0.01}`",
    "alerts.spec_diff": "set a held-out SPEC-diff threshold, 0 or more (e.g. 0.02)",
    "alerts.p_value": "set a significance level between 0 and 1 (e.g. 0.01)",
    "alerts.new_mode": "use true or false",
    "alerts.jaccard": "set the member overlap that makes two modes the same, in (0, 1] (e.g. 0.5)",
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
    keys = {
        (): list(AuditConfig.model_fields),
        ("alerts",): list(AlertRules.model_fields),
        ("candidates",): list(Candidate.model_fields),
    }
    own = Vocabulary(fixes, keys, kinds)
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
