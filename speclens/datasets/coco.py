"""MS-COCO reader: a captions file (``captions_*.json``) and the folder of its images.

One row per entry of ``images`` in the JSON; ``sample_id`` is its ``file_name``; every
caption whose ``image_id`` names the entry is attached, ordered by annotation id (the first
one also lands in the store's ``caption`` row). COCO captions carry no class: label -1.

Bad input: an entry whose file is missing is kept and quarantined (``missing file``) when
its shard reads it; a caption whose ``image_id`` names no entry is dropped and counted; image
files in the folder that no entry names are not ingested (counted).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict

from speclens.datasets.plan import (
    Plan,
    build_plan,
    list_files,
    require_dir,
    require_file,
    require_rows,
)
from speclens.errors import InputError
from speclens.storage import urls

FIX_JSON = "pass a COCO captions file such as annotations/captions_val2017.json"


def read_captions_json(url: str) -> dict:
    require_file(url, "captions file", FIX_JSON)
    try:
        data = json.loads(urls.read_bytes(url).decode("utf-8"))
        images, annotations = data["images"], data["annotations"]
        if not isinstance(images, list) or not isinstance(annotations, list):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        raise InputError(
            f"captions file {url} is not COCO captions JSON (with 'images' and "
            f"'annotations' lists); {FIX_JSON}."
        ) from None
    return data


def plan_coco(images: str, captions: str) -> Plan:
    require_dir(images, "COCO image folder", "pass the folder that holds the images (e.g. val2017)")
    data = read_captions_json(captions)
    on_disk = {e.rel: e for e in list_files(images)[0]}
    by_image: dict[int, list[tuple[int, str]]] = defaultdict(list)
    entries = {int(im["id"]): str(im["file_name"]) for im in data["images"]}
    dropped: Counter = Counter()
    for ann in data["annotations"]:
        try:
            image_id = int(ann.get("image_id"))
        except (TypeError, ValueError):
            image_id = None
        if image_id not in entries:
            dropped["caption with unknown image_id"] += 1
            continue
        by_image[image_id].append((int(ann.get("id", 0)), str(ann.get("caption", "")).strip()))
    ids, sources, sizes, caps = [], [], [], []
    for image_id, name in sorted(entries.items()):
        entry = on_disk.get(name)
        ids.append(name)
        sources.append(entry.url if entry else urls.join(images, name))
        sizes.append(entry.size if entry else -1)
        caps.append([text for _, text in sorted(by_image[image_id])])
    missing = sum(1 for s in sizes if s < 0)
    dropped["image file named by no entry"] += len(set(on_disk) - set(entries.values()))
    table = build_plan(
        rel_ids=ids, sources=sources, sizes=sizes, labels=[-1] * len(ids), captions=caps
    )
    require_rows(table, f"captions file {captions}", FIX_JSON + " with at least one image entry")
    source = {
        "kind": "coco",
        "images": images,
        "captions": captions,
        "entries_without_file": missing,
    }
    return Plan(table, [], source, dropped={k: v for k, v in dropped.items() if v})
