"""Explicit pyarrow schemas of the warehouse tables (the checks every write goes through are
in :mod:`speclens.storage.warehouse_conform`).

Six tables, each hive-partitioned by ``run_id``: ``runs`` (one row per run), ``modes``
(one row per reported eigenpair), ``members`` (top samples of each mode), ``samples`` (every
sample: its scores, local agreement and map position), ``mode_matches`` (an audit run's modes
against the previous run of its series) and ``pair_scores`` (SPEC-diff of each encoder pair). Types are flat and warehouse-portable (string, int32, int64, float64,
timestamp[us, UTC]) but for ``samples.scores``, a list of float64 (Parquet's standard LIST,
which DuckDB, Spark, Trino and BigQuery read as an array); nested values (library versions,
stage timings) are JSON strings, so BigQuery / Trino external tables read them as plain
strings.

Each field carries its meaning in its metadata (``doc``), so ``schema_markdown()`` renders
the tables that ``docs/warehouse.md`` shows, and a test keeps the two equal. Further field
metadata: ``values`` (allowed values, comma separated) and ``json`` (a JSON text column:
dicts and lists are serialised, strings must parse). Schema metadata ``key`` names the
columns unique within one run's partition.
"""

from __future__ import annotations

import pyarrow as pa

TIMESTAMP = pa.timestamp("us", tz="UTC")
DIRECTIONS = ("x_over_y", "y_over_x")
STATUSES = ("running", "succeeded", "failed")


def _f(name: str, type_: pa.DataType, doc: str, nullable: bool = False, **meta: str) -> pa.Field:
    return pa.field(name, type_, nullable=nullable, metadata={"doc": doc, **meta})


def _schema(key: str, *fields: pa.Field) -> pa.Schema:
    return pa.schema(fields, metadata={"key": key})


RUN_ID = _f("run_id", pa.string(), "Run id; the hive partition (`run_id=<id>/`).")
#: per-mode uncertainty (null for runs made without it, or before it existed)
UNCERTAINTY = (
    _f(
        "eigenvalue_se",
        pa.float64(),
        "Sampling standard error of `eigenvalue` (delta method).",
        True,
    ),
    _f(
        "eigenvalue_low",
        pa.float64(),
        "Lower end of the sampling interval of `eigenvalue` (level: the run's `confidence`).",
        True,
    ),
    _f("eigenvalue_high", pa.float64(), "Upper end of that interval.", True),
    _f(
        "heldout_eigenvalue",
        pa.float64(),
        "Held-out (cross-fitted) eigenvalue: the mode's "
        "direction found on one half of the samples, its Rayleigh quotient on the other half "
        "with independent random features; with `eigenvalue` it brackets the exact value.",
        True,
    ),
    _f(
        "heldout_se",
        pa.float64(),
        "Sampling standard error of `heldout_eigenvalue` (jackknife over sample groups).",
        True,
    ),
    _f(
        "heldout_low",
        pa.float64(),
        "Lower end of the sampling interval of `heldout_eigenvalue`.",
        True,
    ),
    _f("heldout_high", pa.float64(), "Upper end of that interval.", True),
    _f(
        "rff_error",
        pa.float64(),
        "Standard deviation of `eigenvalue` over draws of the random "
        "features alone (large: raise `rff_dim`).",
        True,
    ),
    _f(
        "p_value",
        pa.float64(),
        "One-sided p-value of the held-out value (H0: the embeddings "
        "induce the same kernel), counting sampling and random-feature error.",
        True,
    ),
    _f("p_adjusted", pa.float64(), "`p_value` Holm-adjusted over the run's modes.", True),
    _f(
        "stability",
        pa.float64(),
        "Weighted Jaccard overlap of where the two halves' fits of the "
        "mode put their weight over the samples (>= 0.75 stable, < 0.5 dissolved).",
        True,
    ),
    _f(
        "near_tie",
        pa.bool_(),
        "The eigenvalue is within its own interval of a neighbour's: "
        "the two modes can swap members between samples.",
        True,
    ),
)

SCHEMAS: dict[str, pa.Schema] = {
    "runs": _schema(
        "run_id",
        RUN_ID,
        _f("created_at", TIMESTAMP, "When the run started (UTC)."),
        _f("status", pa.string(), "`running`, `succeeded` or `failed`.", values=",".join(STATUSES)),
        _f("dataset", pa.string(), "Dataset name or store URL."),
        _f("dataset_hash", pa.string(), "Input hash of the dataset store's manifest.", True),
        _f("n", pa.int64(), "Samples compared (rows joined on `sample_id`)."),
        _f("encoder_x", pa.string(), "Encoder id of embedding X."),
        _f("encoder_y", pa.string(), "Encoder id of embedding Y."),
        _f("kernel_x", pa.string(), "Kernel on X: `gaussian` or `cosine`."),
        _f("kernel_y", pa.string(), "Kernel on Y: `gaussian` or `cosine`."),
        _f("sigma_x", pa.float64(), "Gaussian bandwidth on X as used (null for cosine).", True),
        _f("sigma_y", pa.float64(), "Gaussian bandwidth on Y as used (null for cosine).", True),
        _f("rff_dim", pa.int32(), "Random frequencies per Gaussian kernel (null: none).", True),
        _f(
            "sigma_scale",
            pa.float64(),
            "Bandwidth as a fraction of the median pairwise distance (null: every bandwidth "
            "given, or cosine); the runs of a sweep share `parent_run_id`.",
            True,
        ),
        _f(
            "rff_rel_error",
            pa.float64(),
            "Estimated random-feature error of each direction's leading eigenvalue, relative "
            "to its size (the larger of the two; from halves of the frequencies).",
            True,
        ),
        _f(
            "rff_dim_suggested",
            pa.int32(),
            "When `rff_rel_error` exceeds 0.1: the `rff_dim` its 1/sqrt(D) decay predicts "
            "brings it under 0.1 (null: not needed).",
            True,
        ),
        _f("rff_dim_auto", pa.bool_(), "`rff_dim` was chosen by `--rff-dim auto`.", True),
        _f(
            "exact_check_n",
            pa.int64(),
            "Rows of the exact n x n check (`--exact-check`; null: not run).",
            True,
        ),
        _f(
            "neighbors_method",
            pa.string(),
            "How `samples.local_agreement` found each sample's nearest neighbours: "
            "`exact` (n <= 50,000) or `approximate` with its parameters, e.g. "
            "`ivf nlist=632 nprobe=2` (null: local agreement not computed).",
            True,
        ),
        _f("neighbors_k", pa.int32(), "Neighbours per sample in `local_agreement`.", True),
        _f(
            "neighbors_recall",
            pa.float64(),
            "Approximate neighbours: their measured recall of the exact k nearest on a seeded "
            "sample of queries (1.0 for exact; null: not computed).",
            True,
        ),
        _f(
            "map_method",
            pa.string(),
            "How `samples.map_x`, `map_y` were made, e.g. `umap of the mode scores, "
            "n_neighbors=15, min_dist=0.1, 20000 of 100000 rows` (null: no map).",
            True,
        ),
        _f("eta", pa.float64(), "Weight of Y's kernel in `K_X - eta K_Y`."),
        _f("n_modes", pa.int32(), "Modes reported at each end of the spectrum."),
        _f("seed", pa.int64(), "Seed of the random frequencies and bandwidth subsample."),
        _f("group_id", pa.string(), "Comparison of several encoders this pair belongs to.", True),
        _f(
            "parent_run_id",
            pa.string(),
            "Run this one derives from (align: the before run; a bandwidth sweep: the sweep).",
            True,
        ),
        _f("confidence", pa.float64(), "Level of the run's intervals (null: none computed).", True),
        _f(
            "series",
            pa.string(),
            "Audit series: the same comparison (dataset, baseline, candidate name, parameters) "
            "run over time, whatever the run id (`speclens history`; null: not an audit run).",
            True,
        ),
        _f(
            "alert_rules",
            pa.string(),
            'JSON object of the series\' alert thresholds, e.g. `{"spec_diff": 0.02, '
            '"p_value": 0.01, "new_mode": true}` (null: no alert set).',
            True,
            json="1",
        ),
        _f(
            "alerts",
            pa.string(),
            "JSON list of the thresholds this run crossed, one sentence each (empty: none).",
            True,
            json="1",
        ),
        _f(
            "library_versions",
            pa.string(),
            'JSON object, e.g. `{"numpy": "2.1.0"}`.',
            True,
            json="1",
        ),
        _f(
            "stage_timings",
            pa.string(),
            'JSON object of seconds per stage, e.g. `{"gram": 3.2}`.',
            True,
            json="1",
        ),
    ),
    "modes": _schema(
        "mode",
        RUN_ID,
        _f("mode", pa.int32(), "Mode index: position in the run's eigenvalue list (from 0)."),
        _f("eigenvalue", pa.float64(), "Eigenvalue of `K_X/n - eta K_Y/n` (plug-in estimate)."),
        _f(
            "direction",
            pa.string(),
            "`x_over_y` (eigenvalue > 0: captured by X, not by Y) or `y_over_x` (the reverse).",
            values=",".join(DIRECTIONS),
        ),
        _f(
            "mass_share", pa.float64(), "abs(eigenvalue) / sum of abs(eigenvalues) of the spectrum."
        ),
        _f("label", pa.string(), "Most frequent label among the mode's top members.", True),
        _f("label_share", pa.float64(), "Fraction of the top members that carry `label`.", True),
        _f("summary", pa.string(), "Short summary of the members' labels or caption words."),
        *UNCERTAINTY,
        _f(
            "rff_bias",
            pa.float64(),
            "Estimated shift of `eigenvalue` due to the random features (eigenvalue minus the "
            "exact kernel's), from halves of the frequencies and its 1/D decay.",
            True,
        ),
        _f(
            "exact_eigenvalue",
            pa.float64(),
            "`--exact-check`: the same-rank eigenvalue of the explicit n x n kernel on the "
            "checked rows (`runs.exact_check_n`).",
            True,
        ),
        _f(
            "exact_rff_eigenvalue",
            pa.float64(),
            "`--exact-check`: the run's random-feature eigenvalue on the same rows (equals "
            "`eigenvalue` up to rounding when every row was checked).",
            True,
        ),
    ),
    "members": _schema(
        "mode,rank",
        RUN_ID,
        _f("mode", pa.int32(), "Mode index (see `modes.mode`)."),
        _f("rank", pa.int32(), "Rank within the mode, 1 = highest score."),
        _f("sample_id", pa.string(), "Sample id in the dataset store (join key)."),
        _f("score", pa.float64(), "Entry of the mode's unit eigenvector for this sample."),
        _f("label", pa.string(), "Class label of the sample.", True),
        _f("caption", pa.string(), "Caption of the sample.", True),
    ),
    "samples": _schema(
        "sample_id",
        RUN_ID,
        _f("sample_id", pa.string(), "Sample id in the dataset store (join key)."),
        _f("label", pa.string(), "Class label of the sample.", True),
        _f("caption", pa.string(), "Caption of the sample.", True),
        _f(
            "scores",
            pa.list_(pa.float64()),
            "Every mode's score of this sample, in `modes.mode` order, with the sign "
            "convention of `members.score` (DuckDB: `scores[mode + 1]`).",
        ),
        _f(
            "top_mode",
            pa.int32(),
            "The mode the sample belongs to most: the largest of its scores relative to each "
            "mode's top member, when at least 0.5 (null: none).",
            True,
        ),
        _f("top_share", pa.float64(), "That relative score (1 = the mode's top member).", True),
        _f(
            "local_agreement",
            pa.float64(),
            "Jaccard overlap of the sample's k nearest neighbours in X and in Y "
            "(`runs.neighbors_k`): 1 the same neighbourhood, 0 none shared (null: not "
            "computed, `--no-local-agreement`).",
            True,
        ),
        _f("map_x", pa.float64(), "Position on the run's 2-D map (`runs.map_method`).", True),
        _f("map_y", pa.float64(), "The other coordinate (null: the sample is not mapped).", True),
    ),
    "mode_matches": _schema(
        "direction,mode,previous_mode",
        RUN_ID,
        _f("series", pa.string(), "The run's audit series (`runs.series`)."),
        _f("previous_run_id", pa.string(), "The series' run before this one."),
        _f("direction", pa.string(), "`x_over_y` or `y_over_x`.", values=",".join(DIRECTIONS)),
        _f("mode", pa.int32(), "Mode of this run (`modes.mode`; null: a mode that is gone).", True),
        _f(
            "previous_mode",
            pa.int32(),
            "Mode of the previous run it matches (null: a new mode).",
            True,
        ),
        _f(
            "status",
            pa.string(),
            "`persisting` (matched), `new` (no match in the previous run) or `gone` (a previous "
            "mode with no match in this run).",
            values="new,persisting,gone",
        ),
        _f(
            "jaccard",
            pa.float64(),
            "Overlap of the two modes' core members (|A & B| / |A | B|; core: members scoring at "
            "least half the mode's top score); null for new and gone modes.",
            True,
        ),
    ),
    "pair_scores": _schema(
        "encoder_x,encoder_y",
        RUN_ID,
        _f("encoder_x", pa.string(), "Encoder id of embedding X."),
        _f("encoder_y", pa.string(), "Encoder id of embedding Y."),
        _f("spec_diff_x_over_y", pa.float64(), "Largest eigenvalue: what X captures, Y misses."),
        _f("spec_diff_y_over_x", pa.float64(), "Minus the smallest: what Y captures, X misses."),
        _f("spec_diff", pa.float64(), "The larger of the two."),
        *(
            _f(f"spec_diff_{d}_{what}", pa.float64(), f"{doc} of `spec_diff_{d}`.", True)
            for d in DIRECTIONS
            for what, doc in (
                ("low", "Lower end of the sampling interval (the run's `confidence`)"),
                ("high", "Upper end of the sampling interval"),
                ("heldout", "Held-out (cross-fitted) value"),
                ("p", "One-sided p-value (H0: no difference)"),
            )
        ),
    ),
}

TYPE_NAMES = {
    pa.bool_(): "bool",
    pa.string(): "string",
    pa.int32(): "int32",
    pa.int64(): "int64",
    pa.float64(): "float64",
    TIMESTAMP: "timestamp[us, UTC]",
    pa.list_(pa.float64()): "list<float64>",
}


def meta(field: pa.Field, key: str) -> str | None:
    raw = (field.metadata or {}).get(key.encode())
    return raw.decode() if raw is not None else None


def table_key(table: str) -> list[str]:
    return meta_schema(SCHEMAS[table], "key").split(",")


def meta_schema(schema: pa.Schema, key: str) -> str:
    return (schema.metadata or {})[key.encode()].decode()


def file_schema(table: str) -> pa.Schema:
    """The schema inside each Parquet file: the table's, less ``run_id`` (it is the path)."""
    schema = SCHEMAS[table]
    return schema.remove(schema.get_field_index("run_id"))


def schema_markdown(table: str) -> str:
    """The table's columns as a Markdown table: column, type, null, meaning."""
    lines = ["| column | type | null | meaning |", "| --- | --- | --- | --- |"]
    for field in SCHEMAS[table]:
        null = "yes" if field.nullable else "no"
        lines.append(
            f"| `{field.name}` | {TYPE_NAMES[field.type]} | {null} | {meta(field, 'doc')} |"
        )
    return "\n".join(lines)
