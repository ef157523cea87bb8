"""Realistic warehouse rows for tests: three pairwise runs of the embedded sample (colour vs
shape vs pixel encoders), as the compare flow writes them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np

ENCODERS = ("hue-hist", "grad-hist", "pixels")
# (encoder_x, encoder_y, labels of the x_over_y modes, labels of the y_over_x modes)
PAIRS = (
    ("hue-hist", "grad-hist", ["red", "green", "blue"], ["square", "circle", "triangle"]),
    ("hue-hist", "pixels", ["yellow", "red", "blue"], ["square", "circle", "square"]),
    ("grad-hist", "pixels", ["triangle", "circle", "square"], ["blue", "green", "red"]),
)
N, K, TOP = 2000, 3, 8


def uncertainty_columns(lam: float, weak: bool) -> dict:
    """The uncertainty columns of a mode: the weakest mode of each end is not significant and
    not stable, the others are."""
    se = abs(lam) * (0.5 if weak else 0.05)
    return {
        "eigenvalue_se": se,
        "eigenvalue_low": lam - 1.645 * se,
        "eigenvalue_high": lam + 1.645 * se,
        "heldout_eigenvalue": lam * 0.9,
        "heldout_se": se,
        "heldout_low": lam * 0.9 - 1.645 * se,
        "heldout_high": lam * 0.9 + 1.645 * se,
        "rff_error": se / 4,
        "p_value": 0.2 if weak else 0.001,
        "p_adjusted": 0.4 if weak else 0.004,
        "stability": 0.35 if weak else 0.9,
        "near_tie": False,
    }


def run_rows(i: int, run_id: str | None = None, status: str = "succeeded") -> dict:
    """The five tables' rows of pairwise run ``i`` (0, 1, 2): {"runs": [...], ...}."""
    ex, ey, pos_labels, neg_labels = PAIRS[i]
    run_id = run_id or f"emb-{i + 1:03d}"
    rng = np.random.default_rng(i)
    pos = np.sort(rng.uniform(0.01, 0.05, K))[::-1] * (3 - i)
    neg = -np.sort(rng.uniform(0.005, 0.03, K))[::-1]
    eig = np.concatenate([pos, neg])
    mass = float(np.abs(eig).sum() * 1.5)  # the rest of the spectrum holds the other third
    run = {
        "run_id": run_id,
        "created_at": datetime(2025, 6, 1, 9, tzinfo=UTC) + timedelta(hours=i),
        "status": status,
        "dataset": "speclens-out/datasets/embedded.zarr",
        "dataset_hash": "sha256:" + "ab" * 8,
        "n": N,
        "encoder_x": ex,
        "encoder_y": ey,
        "kernel_x": "gaussian",
        "kernel_y": "cosine" if ey == "pixels" else "gaussian",
        "sigma_x": 0.31,
        "sigma_y": None if ey == "pixels" else 0.52,
        "rff_dim": 2000,
        "eta": 1.0,
        "n_modes": K,
        "seed": 0,
        "group_id": "emb-group",
        "parent_run_id": None,
        "confidence": 0.9,
        "rff_rel_error": (0.04, 0.15, 0.02)[i],
        "rff_dim_suggested": (None, 4500, None)[i],
        "library_versions": {"numpy": "2.1.3", "duckdb": "2.0.1"},
        "stage_timings": json.dumps({"features": 1.25, "gram": 3.5 + i, "eigen": 0.2}),
    }
    modes, members = [], []
    for j, lam in enumerate(eig):
        label = (pos_labels + neg_labels)[j]
        share = [1.0, 0.94, 0.88][j % K]
        modes.append(
            {
                "run_id": run_id,
                "mode": j,
                "eigenvalue": float(lam),
                "direction": "x_over_y" if lam > 0 else "y_over_x",
                "mass_share": float(abs(lam) / mass),
                "label": label,
                "label_share": share,
                "summary": f"{label} {share:.0%}" + ("" if share == 1 else ", other"),
                **uncertainty_columns(float(lam), j % K == K - 1),
            }
        )
        for r in range(TOP):
            lab = label if r < round(share * TOP) else "grey"
            members.append(
                {
                    "mode": j,
                    "rank": r + 1,
                    "sample_id": f"train/{lab}/{1000 * j + r:05d}.png",
                    "score": float(0.09 - 0.004 * r),
                    "label": lab,
                    "caption": f"a {lab} shape on a plain grey background",
                }
            )
    pair = {
        "encoder_x": ex,
        "encoder_y": ey,
        "spec_diff_x_over_y": float(eig[0]),
        "spec_diff_y_over_x": float(-eig[K]),
        "spec_diff": float(max(eig[0], -eig[K])),
    }
    run.update(
        neighbors_method="exact",
        neighbors_k=10,
        neighbors_recall=1.0,
        map_method="umap of the mode scores, n_neighbors=15, min_dist=0.1, 40 of 40 rows",
    )
    samples = sample_rows(members, len(eig), rng)
    # members without run_id (filled from the argument), the others with it
    return {
        "runs": [run],
        "modes": modes,
        "members": members,
        "samples": samples,
        "pair_scores": [pair],
    }


def sample_rows(members: list[dict], n_modes: int, rng) -> list[dict]:
    """A ``samples`` row per distinct member (the sample's own mode scores it highest, the
    members of the first mode have the lowest local agreement), then 8 samples in no mode."""
    rows, seen = [], set()
    for m in members:
        if m["sample_id"] in seen:
            continue
        seen.add(m["sample_id"])
        scores = list(rng.uniform(-0.01, 0.01, n_modes))
        scores[m["mode"]] = m["score"]
        rows.append(
            {
                "sample_id": m["sample_id"],
                "label": m["label"],
                "caption": m["caption"],
                "scores": scores,
                "top_mode": m["mode"],
                "top_share": m["score"] / 0.09,
                "local_agreement": 0.1 if m["mode"] == 0 else 0.6 + 0.01 * m["rank"],
                "map_x": float(m["mode"] + rng.normal(0, 0.1)),
                "map_y": float(m["rank"] + rng.normal(0, 0.1)),
            }
        )
    for r in range(8):
        rows.append(
            {
                "sample_id": f"train/grey/{90000 + r:05d}.png",
                "label": "grey",
                "caption": None,
                "scores": list(rng.uniform(-0.01, 0.01, n_modes)),
                "top_mode": None,
                "top_share": None,
                "local_agreement": 0.9,
                "map_x": float(rng.normal(3, 1)),
                "map_y": float(rng.normal(3, 1)),
            }
        )
    return rows


def fill(wh, runs=(0, 1, 2)) -> dict[str, dict]:
    """Write runs ``runs`` into warehouse ``wh``; returns their rows by run id."""
    out = {}
    for i in runs:
        rows = run_rows(i)
        run_id = rows["runs"][0]["run_id"]
        for table in ("modes", "members", "samples", "pair_scores", "runs"):
            wh.write(table, run_id, rows[table])
        out[run_id] = rows
    return out
