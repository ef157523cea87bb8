"""A run's ``samples`` partition (one row per scored sample) and the ``runs`` columns that say
how its local agreement and map were made, from the run folder's ``scores.npz``,
``samples.npz`` and ``members.npz`` (see :mod:`speclens.tasks.samples`)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from speclens.storage import urls
from speclens.storage.arrays import load_npz
from speclens.storage.dataset_store import DatasetStore

#: a sample belongs to the mode it scores highest in, relative to the mode's top member,
#: when that relative score is at least this
MEMBER_SHARE = 0.5


def top_modes(scores: np.ndarray, top: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's mode (-1: none) and its relative score: ``scores / top`` per mode (``top``:
    each mode's top member's score, positive by the sign convention), the largest when it is
    at least ``MEMBER_SHARE``."""
    if scores.shape[1] == 0:
        return np.full(scores.shape[0], -1), np.full(scores.shape[0], np.nan)
    rel = scores / np.where(top > 0, top, np.inf)[None, :]
    best = np.argmax(rel, axis=1)
    share = rel[np.arange(len(rel)), best]
    return np.where(share >= MEMBER_SHARE, best, -1), share


def _texts(values: np.ndarray) -> pa.Array:
    return pa.array([v if v else None for v in values.tolist()], type=pa.string())


def _labels(dataset: DatasetStore, rows: np.ndarray) -> pa.Array:
    names = dataset.label_names
    codes = dataset.array("label").get_orthogonal_selection(rows)
    return pa.array(
        [names[c] if 0 <= c < len(names) else None for c in codes.tolist()], type=pa.string()
    )


def _float_or_null(values: np.ndarray | None, n: int) -> pa.Array:
    if values is None:
        return pa.nulls(n, pa.float64())
    values = np.asarray(values, dtype=np.float64)
    return pa.array(values, mask=np.isnan(values), type=pa.float64())


def sample_table(dataset: DatasetStore, run_url: str, members_url: str) -> pa.Table | None:
    """The run's ``samples`` rows as a table (None for a run folder without ``scores.npz``)."""
    scores_url = urls.join(run_url, "scores.npz")
    if not urls.exists(scores_url):
        return None
    saved = load_npz(scores_url)
    rows, scores = saved["rows"], saved["scores"].astype(np.float64)
    extra_url = urls.join(run_url, "samples.npz")
    extra = load_npz(extra_url) if urls.exists(extra_url) else {}
    n, c = scores.shape
    mode, share = top_modes(scores, load_npz(members_url)["scores"][:, 0])
    xy = extra.get("map_xy")
    columns = {
        "sample_id": _texts(dataset.array("sample_id").get_orthogonal_selection(rows)),
        "label": _labels(dataset, rows),
        "caption": _texts(dataset.array("caption").get_orthogonal_selection(rows)),
        "scores": pa.ListArray.from_arrays(
            pa.array(np.arange(0, n * c + 1, c, dtype=np.int32)), pa.array(scores.reshape(-1))
        ),
        "top_mode": pa.array(mode, mask=mode < 0, type=pa.int32()),
        "top_share": _float_or_null(np.where(mode < 0, np.nan, share), n),
        "local_agreement": _float_or_null(extra.get("local_agreement"), n),
        "map_x": _float_or_null(None if xy is None else xy[:, 0], n),
        "map_y": _float_or_null(None if xy is None else xy[:, 1], n),
    }
    return pa.table(columns)


def sample_run_columns(run_url: str) -> dict:
    """The ``runs`` columns about the samples (all null when nothing was computed)."""
    url = urls.join(run_url, "samples.npz")
    extra = load_npz(url) if urls.exists(url) else {}
    recall = extra.get("neighbors_recall")
    return {
        "neighbors_method": str(extra["neighbors_method"]) if "neighbors_method" in extra else None,
        "neighbors_k": int(extra["neighbors_k"]) if "neighbors_k" in extra else None,
        "neighbors_recall": None if recall is None or np.isnan(recall) else float(recall),
        "map_method": str(extra["map_method"]) if "map_method" in extra else None,
    }


def report_samples(table: pa.Table) -> list[dict]:
    """The ``samples`` rows a run's page shows: the mapped ones and the ``SAMPLE_ROWS`` of
    lowest local agreement (a page of a million samples draws at most its map's points)."""
    import pyarrow.compute as pc

    from speclens.report.interactive import SAMPLE_ROWS

    if table.num_rows > SAMPLE_ROWS:
        agreement = table.column("local_agreement")
        keep = pc.is_valid(table.column("map_x"))
        if agreement.null_count < table.num_rows:
            low = pc.select_k_unstable(table, SAMPLE_ROWS, [("local_agreement", "ascending")])
            worst = pc.max(pc.take(agreement, low))
            keep = pc.or_(keep, pc.less_equal(agreement, worst))
        table = table.filter(pc.fill_null(keep, False))
    return table.to_pylist()


def sample_images(dataset: DatasetStore, run_url: str, samples: list[dict]) -> dict:
    """``{sample_id: image}`` of the samples whose images the page shows (none for a dataset
    without images)."""
    from speclens.report import sample_image_ids

    wanted = set(sample_image_ids(samples))
    url = urls.join(run_url, "scores.npz")
    if not wanted or "images" not in dataset.group or not urls.exists(url):
        return {}
    rows = load_npz(url)["rows"]
    ids = dataset.array("sample_id").get_orthogonal_selection(rows).tolist()
    keep = [j for j, i in enumerate(ids) if i in wanted]  # rows ascend: so do these
    if not keep:
        return {}
    take, names = rows[keep], [ids[j] for j in keep]
    whole = (slice(None),) * 3
    pixels = dataset.array("images").get_orthogonal_selection((take, *whole))
    return dict(zip(names, pixels, strict=True))
