"""What an export reads: one run's ``runs`` row, its ``modes`` and ``samples`` rows from the
warehouse, and the dataset store its images come from.

Every problem a user can fix (an unknown run id, a run without ``samples`` rows, a dataset
store that is not where the run says) is one :class:`~speclens.errors.InputError` sentence
naming the input and the fix, raised before anything is written.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from speclens.errors import InputError
from speclens.storage import urls
from speclens.storage.dataset_store import DatasetStore
from speclens.storage.layout import Layout, dataset_name
from speclens.storage.sharded import NOT_A_STORE, store_state
from speclens.storage.warehouse import Warehouse, check_run_id

LIST_RUNS = 'list runs with `speclens query "select run_id from runs" --warehouse {wh}`'


@dataclass
class ExportRun:
    """A published run, ready to export: its rows and its dataset store (None: no store)."""

    run: dict
    modes: list[dict]
    samples: pa.Table
    dataset: DatasetStore | None
    dataset_url: str
    warehouse: str

    @property
    def run_id(self) -> str:
        return self.run["run_id"]

    @property
    def n_modes(self) -> int:
        """Columns ``score_0 ..``: one per mode, as many as the longest score list."""
        lengths = pc.list_value_length(self.samples.column("scores"))
        return int(pc.max(lengths).as_py() or 0)

    def description(self) -> dict:
        """Run-level facts every format records (file metadata, dataset card, README)."""
        keep = ("run_id", "dataset", "encoder_x", "encoder_y", "n", "map_method", "created_at")
        return {
            **{k: str(self.run.get(k)) if k == "created_at" else self.run.get(k) for k in keep},
            "warehouse": self.warehouse,
            "modes": [
                {k: m.get(k) for k in ("mode", "eigenvalue", "direction", "label", "summary")}
                for m in self.modes
            ],
        }


def load_run(
    run_id: str, root: str, warehouse: str | None = None, dataset: str | None = None
) -> ExportRun:
    """Run ``run_id`` of the warehouse (``warehouse``, else ``<root>/warehouse``), its
    samples sorted by ``sample_id`` (the dataset store's row order, so image reads go chunk
    by chunk) and its dataset store (``dataset`` overrides the store the run names)."""
    wh_url = Layout(root).warehouse(warehouse)
    try:
        check_run_id(run_id)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    wh = Warehouse(wh_url)
    runs = wh.read("runs", run_id).to_pylist()
    samples = wh.read("samples", run_id)
    if not runs:
        if samples.num_rows:
            raise InputError(
                f"run {run_id!r} in {wh_url} has samples but no runs row (its compare did not "
                "finish); rerun that compare with the same --run-id."
            )
        raise InputError(f"no run {run_id!r} in {wh_url}; {LIST_RUNS.format(wh=wh_url)}.")
    if not samples.num_rows:
        raise InputError(
            f"run {run_id!r} in {wh_url} has no rows in the samples table (runs published "
            "before that table have none); rerun its compare with the same --run-id to "
            "publish them."
        )
    modes = wh.read("modes", run_id).sort_by("mode").to_pylist()
    url = dataset or resolve_dataset(runs[0]["dataset"], root)
    store = open_dataset(url, run_id, given=dataset is not None)
    return ExportRun(runs[0], modes, samples.sort_by("sample_id"), store, url, wh_url)


def resolve_dataset(named: str, root: str) -> str:
    """The store a run names, as written (relative paths from the current folder), else the
    store of that name under ``<root>/datasets/`` (a run compared from another folder)."""
    if store_state(named) != "absent" or "://" in named or named.startswith("/"):
        return named
    moved = Layout(root).dataset(dataset_name(named))
    return moved if store_state(moved) != "absent" else named


def open_dataset(url: str, run_id: str, given: bool) -> DatasetStore | None:
    """The dataset store at ``url``; None for a store without images (vector-only)."""
    source = f"--dataset {url}" if given else f"run {run_id!r}'s dataset store {url}"
    state = store_state(url)
    if state != "planned":
        raise InputError(
            f"{source} is not a speclens dataset store ({NOT_A_STORE[state]}); pass --dataset with the "
            "store the run compared (where it is now)."
        )
    store = DatasetStore.open(url)
    return store if "images" in store.group else None


def local_out(out: str) -> str:
    """``out`` as a local path: exports are folders other tools open from disk."""
    if "://" in str(out) and not urls.is_local(out):
        raise InputError(f"--out {out} is not a local folder; pass a local path.")
    return str(out).removeprefix("file://")
