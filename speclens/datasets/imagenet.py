"""ImageNet readers: the train layout (``<wnid>/*.JPEG``) and the val layout (flat + labels).

Train: every image file one level down, in a class folder named by its WordNet id (wnid);
files elsewhere are skipped and counted. Val: image files directly in the folder, labelled
by a labels file in one of two forms:

* ``LOC_val_solution.csv``: header ``ImageId,PredictionString``; the first token of the
  prediction string is the wnid;
* plain text, one ``<file name or stem> <wnid or class index>`` per line.

Labels are indices into ``label_names``. With a class-index file they follow its order and
names are human-readable; it may be the JSON ``{"0": ["n01440764", "tench"], ...}`` or text
lines ``n01440764 tench, Tinca tinca``. Without one, classes are the sorted wnids, named by
their wnid. Val images missing from the labels file keep label -1 (counted).
"""

from __future__ import annotations

import csv
import io
import json

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


def read_class_index(url: str) -> list[tuple[str, str]]:
    """(wnid, name) pairs in class-index order."""
    require_file(url, "class-index file", "pass an existing JSON or text class-index file")
    text = urls.read_bytes(url).decode("utf-8")
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
            return [(str(data[k][0]), str(data[k][1])) for k in sorted(data, key=int)]
        except (ValueError, KeyError, IndexError, TypeError):
            raise InputError(
                f'class-index file {url} is not of the form {{"0": ["n01440764", "tench"], ...}}; '
                "fix the file or pass a text file of 'wnid name' lines."
            ) from None
    pairs = []
    for line in text.splitlines():
        if line.strip():
            wnid, _, name = line.strip().partition(" ")
            pairs.append((wnid, name.strip() or wnid))
    return pairs


def _classes(
    wnids: set[str], class_index: str | None
) -> tuple[dict[str, int], list[str], list[str]]:
    """wnid -> label index, label names, wnids in label order."""
    if class_index:
        pairs = read_class_index(class_index)
        known = {w for w, _ in pairs}
        pairs += [(w, w) for w in sorted(wnids - known)]
    else:
        pairs = [(w, w) for w in sorted(wnids)]
    return {w: i for i, (w, _) in enumerate(pairs)}, [n for _, n in pairs], [w for w, _ in pairs]


def plan_train(root: str, class_index: str | None = None) -> Plan:
    require_dir(root, "ImageNet folder", "pass the folder that holds the <wnid>/ class folders")
    entries, dropped = list_files(root)
    files = [e for e in entries if e.rel.count("/") == 1]
    dropped["image file outside a class folder"] += len(entries) - len(files)
    wnids = {e.rel.split("/", 1)[0] for e in files}
    index, names, ordered = _classes(wnids, class_index)
    table = build_plan(
        rel_ids=[e.rel for e in files],
        sources=[e.url for e in files],
        sizes=[e.size for e in files],
        labels=[index[e.rel.split("/", 1)[0]] for e in files],
    )
    require_rows(
        table,
        f"ImageNet folder {root}",
        "expected <wnid>/*.JPEG class folders (for the val layout pass --labels FILE)",
    )
    source = {
        "kind": "imagenet",
        "layout": "train",
        "path": root,
        "class_index": class_index,
        "wnids": ordered,
    }
    return Plan(table, names, source, dropped={k: v for k, v in dropped.items() if v})


def read_val_labels(url: str) -> dict[str, str]:
    """file stem -> wnid or class index (as text)."""
    require_file(url, "labels file", "pass LOC_val_solution.csv or a '<file> <label>' text file")
    text = urls.read_bytes(url).decode("utf-8")
    out = {}
    if text.startswith("ImageId"):
        for row in csv.DictReader(io.StringIO(text)):
            tokens = (row.get("PredictionString") or "").split()
            if tokens:
                out[_stem(row["ImageId"])] = tokens[0]
    else:
        for line in text.splitlines():
            parts = line.split()
            if len(parts) >= 2:
                out[_stem(parts[0])] = parts[1]
    if not out:
        raise InputError(
            f"labels file {url} has no '<file> <label>' lines; "
            "pass LOC_val_solution.csv or a '<file> <label>' text file."
        )
    return out


def _stem(name: str) -> str:
    name = name.rsplit("/", 1)[-1]
    return name.rsplit(".", 1)[0] if "." in name else name


def plan_val(root: str, labels: str, class_index: str | None = None) -> Plan:
    require_dir(root, "ImageNet val folder", "pass the folder that holds the val images")
    by_stem = read_val_labels(labels)
    entries, dropped = list_files(root)
    files = [e for e in entries if "/" not in e.rel]
    dropped["image file in a subfolder (val layout is flat)"] += len(entries) - len(files)
    numeric = all(v.isdigit() for v in by_stem.values())
    if numeric:
        names = [n for _, n in read_class_index(class_index)] if class_index else []
        top = max(int(v) for v in by_stem.values())
        names += [str(i) for i in range(len(names), top + 1)]
        index = {v: int(v) for v in by_stem.values()}
        ordered = None
    else:
        index, names, ordered = _classes(set(by_stem.values()), class_index)
    labels_out, stems = [], set()
    for e in files:
        stem = _stem(e.rel)
        stems.add(stem)
        labels_out.append(index[by_stem[stem]] if stem in by_stem else -1)
    unlabelled = sum(1 for x in labels_out if x < 0)
    table = build_plan(
        rel_ids=[e.rel for e in files],
        sources=[e.url for e in files],
        sizes=[e.size for e in files],
        labels=labels_out,
    )
    require_rows(table, f"ImageNet val folder {root}", "pass the folder that holds the val images")
    dropped["label entry without an image file"] += len(set(by_stem) - stems)
    source = {
        "kind": "imagenet",
        "layout": "val",
        "path": root,
        "labels": labels,
        "class_index": class_index,
        "wnids": ordered,
        "unlabelled_images": unlabelled,
    }
    return Plan(table, names, source, dropped={k: v for k, v in dropped.items() if v})


def plan_imagenet(root: str, labels: str | None = None, class_index: str | None = None) -> Plan:
    """The train layout, or the val layout when ``labels`` is given."""
    if labels:
        return plan_val(root, labels, class_index)
    require_dir(root, "ImageNet folder", "pass the folder that holds the <wnid>/ class folders")
    return plan_train(root, class_index)
