"""Write the embedded sample as real files: an ImageNet-layout copy and a COCO-layout copy.

Used by the tests (so the real readers are tested on real JPEG files) and the benchmark.
Classes get stand-in WordNet ids ``n09000000`` + label; the class-index file names them
("n09000000 red circle"). Ground truth for a copy is :func:`sample.draw_factors` with the
same ``n`` and ``seed``; :func:`index_of` maps a file's sample_id back to its sample index.
"""

from __future__ import annotations

import json
import os
import re

import numpy as np
from PIL import Image

from speclens.datasets import sample


def wnid(label: int) -> str:
    return f"n{9000000 + int(label):08d}"


def index_of(sample_id: str) -> int:
    """The sample index in a file name written here (the last run of digits)."""
    return int(re.findall(r"\d+", sample_id.rsplit("/", 1)[-1])[-1]) - 1


def _save(img: np.ndarray, path: str, quality: int) -> None:
    Image.fromarray(img).save(path, format="JPEG", quality=quality, subsampling=0)


def export_imagenet(
    root: str,
    n: int,
    seed: int = 0,
    *,
    size: int = sample.DEFAULT_SIZE,
    split: str = "train",
    quality: int = 95,
) -> dict:
    """Write ``n`` samples in the ImageNet ``train`` (<wnid>/<wnid>_<k>.JPEG) or ``val`` (flat
    ILSVRC2012_val_<k>.JPEG + LOC_val_solution.csv) layout, k = index + 1. Returns paths."""
    images, f, _ = sample.generate(n, seed, size)
    os.makedirs(root, exist_ok=True)
    labels = f.label
    class_index = os.path.join(root, "..", f"{os.path.basename(root.rstrip('/'))}_classes.txt")
    class_index = os.path.abspath(class_index)
    with open(class_index, "w") as fh:
        fh.writelines(f"{wnid(i)} {name}\n" for i, name in enumerate(sample.LABEL_NAMES))
    out = {"root": root, "class_index": class_index}
    if split == "train":
        for i in range(n):
            folder = os.path.join(root, wnid(labels[i]))
            os.makedirs(folder, exist_ok=True)
            _save(images[i], os.path.join(folder, f"{wnid(labels[i])}_{i + 1:06d}.JPEG"), quality)
    elif split == "val":
        rows = ["ImageId,PredictionString"]
        for i in range(n):
            name = f"ILSVRC2012_val_{i + 1:08d}"
            _save(images[i], os.path.join(root, name + ".JPEG"), quality)
            rows.append(f"{name},{wnid(labels[i])} 0 0 {size - 1} {size - 1}")
        labels_file = os.path.abspath(os.path.join(root, "..", "LOC_val_solution.csv"))
        with open(labels_file, "w") as fh:
            fh.write("\n".join(rows) + "\n")
        out["labels"] = labels_file
    else:
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    return out


def export_coco(
    root: str, n: int, seed: int = 0, *, size: int = sample.DEFAULT_SIZE, quality: int = 95
) -> dict:
    """Write ``n`` samples as ``root/images/<k:012d>.jpg`` plus
    ``root/annotations/captions_sample.json`` (three captions each), k = index + 1."""
    images, _, caps = sample.generate(n, seed, size)
    image_dir = os.path.join(root, "images")
    os.makedirs(image_dir, exist_ok=True)
    os.makedirs(os.path.join(root, "annotations"), exist_ok=True)
    entries, annotations = [], []
    for i in range(n):
        name = f"{i + 1:012d}.jpg"
        _save(images[i], os.path.join(image_dir, name), quality)
        entries.append({"id": i + 1, "file_name": name, "width": size, "height": size})
        for text in caps[i]:
            annotations.append({"id": len(annotations) + 1, "image_id": i + 1, "caption": text})
    captions = os.path.join(root, "annotations", "captions_sample.json")
    with open(captions, "w") as fh:
        json.dump(
            {
                "info": {"description": "speclens sample"},
                "images": entries,
                "annotations": annotations,
            },
            fh,
        )
    return {"images": image_dir, "captions": captions}
