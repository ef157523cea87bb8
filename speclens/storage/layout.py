"""Where things live under an output root (any fsspec URL)::

    <root>/datasets/<name>.zarr                      dataset stores
    <root>/embeddings/<dataset>/<encoder-slug>.zarr  embedding stores, beside their dataset
    <root>/runs/<run_id>/                            a run's arrays (compare, align)
    <root>/reports/<run_id>/                         a run's HTML report (or a group's matrix)
    <root>/warehouse/                                the Parquet warehouse, unless given its own URL

Every module that needs one of these locations asks :class:`Layout` instead of joining the
names itself, so the rules are written once.
"""

from __future__ import annotations

import hashlib
import re

from speclens.storage import urls

DATASETS = "datasets"
EMBEDDINGS = "embeddings"
RUNS = "runs"
REPORTS = "reports"
WAREHOUSE = "warehouse"


def encoder_slug(encoder_id: str) -> str:
    """A file-name-safe, readable, unique name for an encoder id."""
    slug = re.sub(r"[^A-Za-z0-9._@+=-]+", "_", encoder_id).strip("_")
    if slug != encoder_id.replace(":", "_"):
        slug += "-" + hashlib.sha256(encoder_id.encode()).hexdigest()[:8]
    return slug


def dataset_name(dataset_url: str) -> str:
    """The name of a dataset store: its last path part without ``.zarr``."""
    name = str(dataset_url).rstrip("/").rsplit("/", 1)[-1]
    return name[:-5] if name.endswith(".zarr") else name


class Layout:
    """The locations under the output root ``root``."""

    def __init__(self, root: str):
        self.root = str(root)

    def __repr__(self) -> str:
        return f"Layout({self.root!r})"

    @classmethod
    def of_dataset(cls, dataset_url: str) -> Layout:
        """The layout a dataset store sits in: the folder above its ``datasets`` folder, or the
        folder holding the store itself when it is not in a ``datasets`` folder."""
        url = str(dataset_url)
        parent = url.rstrip("/").rsplit("/", 1)[0] if "/" in url else "."
        if parent.rstrip("/").endswith("/" + DATASETS) or parent == DATASETS:
            parent = parent.rstrip("/")[: -len(DATASETS)].rstrip("/") or "."
        return cls(parent)

    @classmethod
    def of_report(cls, report_url: str) -> Layout:
        """The layout a report (``<root>/reports/<run_id>``) was written in."""
        return cls(str(report_url).rsplit(f"/{REPORTS}/", 1)[0])

    def dataset(self, name: str) -> str:
        """``<root>/datasets/<name>.zarr``."""
        return urls.join(self.root, DATASETS, f"{name}.zarr")

    @staticmethod
    def embedding(dataset_url: str, encoder_id: str) -> str:
        """The default embedding store of ``dataset_url`` by ``encoder_id``:
        ``embeddings/<dataset>/<encoder-slug>.zarr`` in the dataset's own layout
        (:meth:`of_dataset`), so it needs no root and works on the class."""
        return urls.join(
            Layout.of_dataset(dataset_url).root,
            EMBEDDINGS,
            dataset_name(dataset_url),
            encoder_slug(encoder_id) + ".zarr",
        )

    def run(self, run_id: str) -> str:
        """``<root>/runs/<run_id>``: the arrays of a compare or align run."""
        return urls.join(self.root, RUNS, run_id)

    def report(self, run_id: str) -> str:
        """``<root>/reports/<run_id>``: the HTML report of a run or of a group of runs."""
        return urls.join(self.root, REPORTS, run_id)

    def warehouse(self, override: str | None = None) -> str:
        """The warehouse: ``override`` when given (its own root), else ``<root>/warehouse``."""
        return str(override) if override else urls.join(self.root, WAREHOUSE)
