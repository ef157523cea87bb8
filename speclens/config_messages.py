"""pydantic errors of an audit config -> one line per problem: ``key.path: problem; fix``.

Validators in :mod:`speclens.config` that find several problems raise one ``ValueError``
whose lines read ``<sub-path>\\t<problem; fix>``; they are split back into one line each.
"""

from __future__ import annotations

import difflib
from typing import Any

KINDS = ("sample", "imagenet", "coco", "folder", "dataset")
KIND_KEYS = {
    "sample": ["n", "seed"],
    "imagenet": ["path", "labels", "class_index"],
    "coco": ["images", "captions"],
    "folder": ["path"],
    "dataset": ["url"],
}
TOP_KEYS = [
    "name",
    "source",
    "encoders",
    "compare",
    "root",
    "warehouse",
    "run_id",
    "device",
    "batch_size",
    "image_size",
    "shard_size",
    "dask_address",
    "schedule",
]
COMPARE_KEYS = [
    "kernel",
    "kernel_x",
    "kernel_y",
    "sigma_x",
    "sigma_y",
    "sigma_scale",
    "rff_dim",
    "eta",
    "n_modes",
    "members",
    "seed",
]

FIXES = {
    "name": "name the dataset store with letters, digits, '.', '_', '-' only (e.g. sample)",
    "source": "add e.g. `source: {kind: sample, n: 2000}`",
    "source.kind": f"use one of {', '.join(KINDS)}",
    "source.n": "set a whole number of images, at least 1 (e.g. 2000)",
    "source.seed": "set a whole number, 0 or more",
    "source.path": "set the dataset folder (e.g. /data/imagenet/train)",
    "source.labels": "set the val labels file (LOC_val_solution.csv) or remove the key",
    "source.class_index": "set the class-index file (imagenet_class_index.json) or remove the key",
    "source.images": "set the COCO image folder (e.g. /data/coco/val2017)",
    "source.captions": "set the COCO captions file (e.g. captions_val2017.json)",
    "source.url": "set the URL of an ingested dataset store (e.g. speclens-out/datasets/sample.zarr)",
    "encoders": "list two or more encoder ids, e.g. [hue-hist, grad-hist]",
    "compare": "make it a mapping, e.g. `compare: {rff_dim: 1000, n_modes: 5}`",
    "compare.kernel": "use gaussian or cosine",
    "compare.kernel_x": "use gaussian or cosine, or remove the key (default: compare.kernel)",
    "compare.kernel_y": "use gaussian or cosine, or remove the key (default: compare.kernel)",
    "compare.sigma_x": "set a bandwidth > 0, or remove the key to use the median heuristic",
    "compare.sigma_y": "set a bandwidth > 0, or remove the key to use the median heuristic",
    "compare.sigma_scale": "set a number > 0 (default 0.5: half the median distance)",
    "compare.rff_dim": "set a whole number of random frequencies > 0 (e.g. 1000)",
    "compare.eta": "set a weight > 0 for the second kernel (default 1.0)",
    "compare.n_modes": "set a whole number of modes per direction > 0 (e.g. 5)",
    "compare.members": "set a whole number of top members per mode > 0 (e.g. 50)",
    "compare.seed": "set a whole number, 0 or more",
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


def _path(loc: list) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _got(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _unknown_key(loc: list, kind: str | None) -> str:
    key, parent = str(loc[-1]), loc[:-1]
    if parent == ["source"] and kind:
        takes = ", ".join(KIND_KEYS[kind])
        if any(key in keys for keys in KIND_KEYS.values()):
            return f"not used by kind {kind!r} (it takes {takes}); remove it"
        known = KIND_KEYS[kind]
    else:
        known = {(): TOP_KEYS, ("compare",): COMPARE_KEYS}.get(tuple(parent), [])
    close = difflib.get_close_matches(key, known, n=1)
    if close:
        return f"unknown key; did you mean {close[0]!r}? rename it"
    return "unknown key; remove it" + (f" (known: {', '.join(known)})" if known else "")


def _one(err: dict) -> list[str]:
    loc, kind = list(err["loc"]), None
    if len(loc) >= 2 and loc[0] == "source" and loc[1] in KINDS:
        kind = loc.pop(1)
    path, typ = _path(loc), err["type"]
    fix = FIXES.get(
        ".".join(str(p) for p in loc if not isinstance(p, int)), "see deployments/audit.yaml"
    )
    if typ == "missing":
        where = f" (needed by kind {kind!r})" if kind else ""
        return [f"{path}: missing{where}; {fix}"]
    if typ == "extra_forbidden":
        return [f"{path}: {_unknown_key(loc, kind)}"]
    if typ == "union_tag_not_found":
        return [f"{path}.kind: missing; {FIXES['source.kind']}"]
    if typ == "union_tag_invalid":
        got = (err.get("input") or {}).get("kind")
        return [f"{path}.kind: unknown kind {got!r}; {FIXES['source.kind']}"]
    if typ == "value_error":
        lines = []
        for line in str(err["ctx"]["error"]).splitlines():
            sub, _, text = line.rpartition("\t")
            lines.append(f"{path}{sub}: {text}")
        return lines
    if typ == "string_pattern_mismatch":
        return [f"{path}: {_got(err.get('input'))} is not allowed here; {fix}"]
    msg = err["msg"].replace("Input should be", "must be").split(",")[0]
    msg = msg.replace("String should have at least 1 character", "must not be empty")
    return [f"{path}: {msg}, got {_got(err.get('input'))}; {fix}"]


def format_errors(errors: list[dict]) -> list[str]:
    """One line per problem, in the order pydantic found them."""
    lines: list[str] = []
    for err in errors:
        lines.extend(line for line in _one(err) if line not in lines)
    return lines
