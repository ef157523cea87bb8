"""Prefect tasks that publish a compare run: warehouse partitions and the HTML report."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
from prefect import task
from prefect.artifacts import create_markdown_artifact

from speclens.history.series import run_series
from speclens.report.sweep import sweep_run_id
from speclens.storage import urls
from speclens.storage.arrays import load_npz
from speclens.storage.dataset_store import DatasetStore
from speclens.storage.layout import Layout
from speclens.storage.warehouse import Warehouse
from speclens.tasks.compare import Pair, describe_members
from speclens.tasks.params import CompareParams
from speclens.tasks.publish_samples import (
    report_samples,
    sample_images,
    sample_run_columns,
    sample_table,
)

REPORT_IMAGES = 64  # member thumbnails per mode in the report (its grid pages by 16)


def _versions() -> str:
    import dask
    import numpy
    import prefect
    import scipy
    import zarr

    import speclens

    return json.dumps(
        {
            "speclens": speclens.__version__,
            "numpy": numpy.__version__,
            "scipy": scipy.__version__,
            "dask": dask.__version__,
            "zarr": zarr.__version__,
            "prefect": prefect.__version__,
        },
        sort_keys=True,
    )


@task(name="publish-run")
def publish_run(
    pair: Pair, params: CompareParams, prep: dict, solved: dict, members_url: str, timings: dict
) -> dict:
    """Write this run's partitions of runs, modes, members, samples and pair_scores
    (idempotent)."""
    dataset = DatasetStore.open(pair.dataset)
    layout = Layout(pair.root)
    wh = Warehouse(layout.warehouse(pair.warehouse))
    uncertainty = read_uncertainty(layout.run(pair.run_id)) if params.uncertainty else None
    modes, members = _mode_rows(dataset, pair.run_id, params.n_modes, solved, members_url)
    exact = read_exact(layout.run(pair.run_id)) if params.exact_check else None
    for j, row in enumerate(modes):
        row.update(mode_uncertainty(uncertainty, j))
        row["rff_bias"] = float(solved["rff_bias"][j])
        if exact is not None:
            row["exact_eigenvalue"] = float(exact["exact"][j])
            row["exact_rff_eigenvalue"] = float(exact["rff"][j])
    sd = solved["spec_diff"]
    scores = {
        "run_id": pair.run_id,
        "encoder_x": pair.encoder_x,
        "encoder_y": pair.encoder_y,
        "spec_diff_x_over_y": sd["x_over_y"],
        "spec_diff_y_over_x": sd["y_over_x"],
        "spec_diff": sd["max"],
        **pair_uncertainty(uncertainty, params.n_modes),
    }
    wh.write("modes", pair.run_id, modes)
    wh.write("members", pair.run_id, members)
    wh.write("pair_scores", pair.run_id, [scores])
    run_url = layout.run(pair.run_id)
    samples = sample_table(dataset, run_url, members_url)
    wh.write("samples", pair.run_id, samples if samples is not None else [])
    run = _run_row(pair, params, prep, dataset.input_hash, timings)
    run["series"] = run_series(pair.series, pair.series_names, run)
    run.update(sample_run_columns(run_url))
    run["confidence"] = None if uncertainty is None else float(uncertainty["confidence"])
    run["rff_rel_error"] = solved["rff_rel_error"]
    run["rff_dim_suggested"] = solved["rff_dim_suggested"]
    run["exact_check_n"] = None if exact is None else int(exact["n"])
    wh.write("runs", pair.run_id, [run])  # last: a run row means its other partitions are there
    return {
        "run_id": pair.run_id,
        "encoder_x": pair.encoder_x,
        "encoder_y": pair.encoder_y,
        "spec_diff": sd,
        "spec_diff_interval": _intervals(scores),
        "n": prep["n"],
        "sigma_x": prep["sigma_x"],
        "sigma_y": prep["sigma_y"],
        "sigma_scale": run["sigma_scale"],
        "rff_dim": prep["rff_dim"],
        "rff_rel_error": solved["rff_rel_error"],
        "rff_dim_suggested": solved["rff_dim_suggested"],
        "rff_auto": prep.get("rff_auto"),
        "timings": timings,
    }


#: modes columns of the uncertainty, by the name of their array in ``uncertainty.npz``
MODE_COLUMNS = {
    "eigenvalue_se": "eigenvalue_se",
    "eigenvalue_low": "eigenvalue_low",
    "eigenvalue_high": "eigenvalue_high",
    "heldout": "heldout_eigenvalue",
    "heldout_se": "heldout_se",
    "heldout_low": "heldout_low",
    "heldout_high": "heldout_high",
    "rff_error": "rff_error",
    "p_value": "p_value",
    "p_adjusted": "p_adjusted",
    "stability": "stability",
}


def read_exact(run_url: str) -> dict | None:
    """The run's ``exact.npz`` (None when the run has none)."""
    url = urls.join(run_url, "exact.npz")
    return load_npz(url) if urls.exists(url) else None


def read_uncertainty(run_url: str) -> dict | None:
    """The run's ``uncertainty.npz`` (None when the run has none)."""
    url = urls.join(run_url, "uncertainty.npz")
    return load_npz(url) if urls.exists(url) else None


def mode_uncertainty(u: dict | None, j: int) -> dict:
    """The uncertainty columns of mode ``j`` (none without the uncertainty: nulls)."""
    if u is None:
        return {}
    return {col: float(u[key][j]) for key, col in MODE_COLUMNS.items()} | {
        "near_tie": bool(u["near_tie"][j])
    }


def pair_uncertainty(u: dict | None, k: int) -> dict:
    """The SPEC-diff columns: x_over_y is mode 0, y_over_x minus mode k (its interval flips)."""
    if u is None:
        return {}
    return {
        "spec_diff_x_over_y_low": float(u["eigenvalue_low"][0]),
        "spec_diff_x_over_y_high": float(u["eigenvalue_high"][0]),
        "spec_diff_x_over_y_heldout": float(u["heldout"][0]),
        "spec_diff_x_over_y_p": float(u["p_value"][0]),
        "spec_diff_y_over_x_low": -float(u["eigenvalue_high"][k]),
        "spec_diff_y_over_x_high": -float(u["eigenvalue_low"][k]),
        "spec_diff_y_over_x_heldout": -float(u["heldout"][k]),
        "spec_diff_y_over_x_p": float(u["p_value"][k]),
    }


def _intervals(scores: dict) -> dict | None:
    """Each SPEC-diff's sampling interval, from its pair_scores row (None without one)."""
    if "spec_diff_x_over_y_low" not in scores:
        return None
    return {
        d: (scores[f"spec_diff_{d}_low"], scores[f"spec_diff_{d}_high"])
        for d in ("x_over_y", "y_over_x")
    }


def _run_row(
    pair: Pair, params: CompareParams, prep: dict, dataset_hash: str, timings: dict
) -> dict:
    kernels = (params.kernel_x_used, params.kernel_y_used)
    given = (params.sigma_x, params.sigma_y)
    scaled = any(k == "gaussian" and g is None for k, g in zip(kernels, given, strict=True))
    return {
        "run_id": pair.run_id,
        "group_id": pair.group_id,
        "parent_run_id": pair.parent_run_id,
        "created_at": datetime.now(UTC),
        "dataset": pair.dataset,
        "dataset_hash": dataset_hash,
        "encoder_x": pair.encoder_x,
        "encoder_y": pair.encoder_y,
        "kernel_x": params.kernel_x_used,
        "kernel_y": params.kernel_y_used,
        "sigma_x": prep["sigma_x"],
        "sigma_y": prep["sigma_y"],
        "rff_dim": prep["rff_dim"] if "gaussian" in kernels else None,
        "rff_dim_auto": params.rff_dim == "auto",
        "sigma_scale": params.sigma_scale if scaled else None,
        "eta": float(params.eta),
        "n_modes": params.n_modes,
        "seed": int(params.seed),
        "n": prep["n"],
        "library_versions": _versions(),
        "stage_timings": json.dumps({s: round(v, 3) for s, v in timings.items()}),
        "status": "succeeded",
    }


def _mode_rows(
    dataset: DatasetStore, run_id: str, k: int, solved: dict, members_url: str
) -> tuple[list[dict], list[dict]]:
    """The ``modes`` rows (one per eigenvalue) and ``members`` rows (each mode's top rows)."""
    members = load_npz(members_url)
    mass = solved["abs_mass"]
    modes, member_rows = [], []
    for j, lam in enumerate(np.asarray(solved["eigenvalues"])):
        d = describe_members(dataset, members["rows"][j])
        modes.append(
            {
                "run_id": run_id,
                "mode": j,
                "eigenvalue": float(lam),
                "direction": "x_over_y" if j < k else "y_over_x",
                "mass_share": float(abs(lam) / mass) if mass else float("nan"),
                "summary": d["summary"],
                "label": d["label"],
                "label_share": d["label_share"],
            }
        )
        ranked = zip(d["sample_ids"], members["scores"][j], d["labels"], d["captions"], strict=True)
        member_rows += [
            {
                "run_id": run_id,
                "mode": j,
                "rank": rank + 1,
                "sample_id": sid,
                "score": float(score),
                "label": label or None,
                "caption": caption or None,
            }
            for rank, (sid, score, label, caption) in enumerate(ranked)
        ]
    return modes, member_rows


def _member_images(dataset: DatasetStore, members_url: str) -> dict[int, np.ndarray]:
    rows = load_npz(members_url)["rows"][:, :REPORT_IMAGES]
    images = dataset.array("images")
    return {
        j: images.get_orthogonal_selection((r, slice(None), slice(None), slice(None)))
        for j, r in enumerate(rows)
    }


@task(name="write-report")
def write_run_report(dataset_url: str, root: str, run_id: str, warehouse: str | None = None) -> str:
    """The HTML report of a published run, and its Prefect markdown artifact."""
    from speclens.report import run_markdown, write_report

    layout = Layout(root)
    wh = Warehouse(layout.warehouse(warehouse))
    run = wh.read("runs", run_id).to_pylist()[0]
    modes = wh.read("modes", run_id).sort_by("mode").to_pylist()
    members = (
        wh.read("members", run_id)
        .sort_by([("mode", "ascending"), ("rank", "ascending")])
        .to_pylist()
    )
    pair_scores = wh.read("pair_scores", run_id).to_pylist()
    dataset = DatasetStore.open(dataset_url)
    images = _member_images(dataset, urls.join(layout.run(run_id), "members.npz"))
    samples = report_samples(wh.read("samples", run_id))
    images.update(sample_images(dataset, layout.run(run_id), samples))
    eigenvalues = np.array([m["eigenvalue"] for m in modes])
    path = write_report(
        layout.report(run_id), run, modes, members, eigenvalues, images, None, samples=samples
    )
    create_markdown_artifact(
        markdown=run_markdown(run, modes, pair_scores),
        key="compare-" + "".join(c if c.isalnum() else "-" for c in run_id.lower())[:90],
        description=f"SPEC run {run_id}",
    )
    return path


def publish_groups(
    root: str, group_id: str, encoders: list[str], results: list[dict], params: CompareParams
) -> list[dict]:
    """For K > 2 encoders: the K x K SPEC-diff matrix report of the group, one per bandwidth
    scale of a sweep (``<group id>--sigma<scale>``)."""
    if not params.sweeping:
        return [publish_group(root, group_id, encoders, results)]
    return [
        publish_group(
            root, sweep_run_id(group_id, s), encoders, [r for r in results if r["sigma_scale"] == s]
        )
        for s in params.scales
    ]


def publish_group(root: str, group_id: str, encoders: list[str], results: list[dict]) -> dict:
    """For K > 2 encoders: the K x K SPEC-diff matrix report of the group."""
    from speclens.report import write_matrix_report

    index = {e: i for i, e in enumerate(encoders)}
    matrix = np.zeros((len(encoders), len(encoders)))
    low, high = np.full_like(matrix, np.nan), np.full_like(matrix, np.nan)
    for r in results:
        i, j = index[r["encoder_x"]], index[r["encoder_y"]]
        matrix[i, j] = r["spec_diff"]["x_over_y"]
        matrix[j, i] = r["spec_diff"]["y_over_x"]
        if r.get("spec_diff_interval"):
            (low[i, j], high[i, j]) = r["spec_diff_interval"]["x_over_y"]
            (low[j, i], high[j, i]) = r["spec_diff_interval"]["y_over_x"]
    bounds = None if np.isnan(low).all() else (low, high)
    path = write_matrix_report(
        Layout(root).report(group_id),
        group_id,
        encoders,
        matrix,
        [r["run_id"] for r in results],
        bounds,
    )
    return {"run_id": group_id, "matrix": matrix.tolist(), "encoders": encoders, "report": path}
