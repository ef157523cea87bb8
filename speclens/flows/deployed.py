"""Deployment entrypoints (``deployments/prefect.yaml``): flows whose parameters are plain JSON.

* ``speclens_audit(config, overrides)``: the scheduled audit. ``config`` is an audit YAML
  (path or URL; relative to the repository root, the working directory of a deployed run),
  ``overrides`` a mapping laid over it key by key (``{"source": {"n": 200}}``).
* ``speclens_compare(dataset, encoders, ...)``: an on-demand comparison.
* ``speclens_embed(dataset, encoders, ...)``: embeddings, on a CPU or a GPU worker.
* ``speclens_alert(series, run_id, message, ...)``: run by the ``notify`` deployment's trigger
  on each ``speclens.audit.alert`` event; sends the alert through the notification block the
  Prefect variable ``speclens_alert_block`` names (``slack-webhook/ops``: any Prefect
  notification block), or logs it when the site set none.

Each calls what the CLI calls (``speclens audit``, ``compare``, ``embed``), so a deployed run
is a parent flow run with the stage flows (ingest, embed, compare) as its children. What a run
is not given comes from Prefect variables, then the worker's environment (set by the work
pool's job variables), then built-in defaults:

===================  =====================  ==========================  ======================
parameter            Prefect variable       environment                 default
===================  =====================  ==========================  ======================
root                 speclens_root                                      speclens-out
warehouse            speclens_warehouse                                 <root>/warehouse
dask_address         speclens_dask_address                              a LocalCluster per run
device (embed)                              SPECLENS_DEVICE             auto
concurrency (embed)                         SPECLENS_EMBED_CONCURRENCY  1
===================  =====================  ==========================  ======================

For the audit, keys set in the config file win over the variables; parameters win over both.
"""

from __future__ import annotations

import os

from prefect import flow, get_run_logger

from speclens.config import load_config
from speclens.tasks.params import CompareParams

VARIABLES = {
    "root": "speclens_root",
    "warehouse": "speclens_warehouse",
    "dask_address": "speclens_dask_address",
}
DEFAULT_ROOT = "speclens-out"


def site_defaults() -> dict:
    """The settings held in Prefect variables (only those that are set)."""
    from prefect.variables import Variable

    out = {}
    for key, name in VARIABLES.items():
        value = Variable.get(name, default=None)
        if value not in (None, ""):
            out[key] = value
    return out


@flow(name="speclens-audit")
def speclens_audit(config: str = "deployments/audit.yaml", overrides: dict | None = None):
    """The audit an audit config describes: ingest, embed, compare, publish."""
    from speclens.flows.audit import audit_config

    cfg = load_config(config, overrides, defaults=site_defaults())
    get_run_logger().info(
        "audit of %s with %s -> %s",
        cfg.dataset,
        ", ".join(n for _, n in cfg.roles),
        cfg.warehouse_url,
    )
    return audit_config(cfg, progress=False)


@flow(name="speclens-compare")
def speclens_compare(
    dataset: str,
    encoders: list[str],
    root: str | None = None,
    warehouse: str | None = None,
    run_id: str | None = None,
    compare: dict | None = None,
    dask_address: str | None = None,
):
    """Compare every pair of ``encoders`` on an ingested, embedded ``dataset``; ``compare``
    holds compare options by name (``{"rff_dim": 2000, "n_modes": 8}``, the keys of an audit
    config's ``compare:`` section), the rest take their defaults."""
    from speclens.flows.compare import compare as run_compare

    params = CompareParams.from_options(compare, "compare parameters")
    site = site_defaults()
    return run_compare(
        dataset,
        encoders,
        root=root or site.get("root") or DEFAULT_ROOT,
        run_id=run_id,
        warehouse=warehouse or site.get("warehouse"),
        address=dask_address or site.get("dask_address"),
        params=params,
    )


@flow(name="speclens-embed")
def speclens_embed(
    dataset: str,
    encoders: list[str],
    device: str | None = None,
    batch_size: int = 64,
    concurrency: int | None = None,
    normalize: bool = False,
    seed: int = 0,
    overwrite: bool = False,
    dask_address: str | None = None,
):
    """Embed ``dataset`` with each encoder (resumable); device and concurrency default to the
    worker's SPECLENS_DEVICE and SPECLENS_EMBED_CONCURRENCY."""
    from speclens.flows.embed import embed

    device = device or os.environ.get("SPECLENS_DEVICE") or "auto"
    concurrency = concurrency or int(os.environ.get("SPECLENS_EMBED_CONCURRENCY") or 1)
    get_run_logger().info(
        "embedding %s with %s on %s, %d shard(s) at a time",
        *(dataset, ", ".join(encoders), device, concurrency),
    )
    return embed(
        dataset,
        encoders,
        device=device,
        batch_size=batch_size,
        normalize=normalize,
        seed=seed,
        overwrite=overwrite,
        concurrency=concurrency,
        address=dask_address,
        progress=False,
    )


#: The Prefect variable naming the notification block alerts are sent through.
ALERT_BLOCK_VARIABLE = "speclens_alert_block"


@flow(name="speclens-alert")
def speclens_alert(
    series: str,
    run_id: str,
    message: str,
    report: str | None = None,
    series_page: str | None = None,
) -> str:
    """Tell the site an audit alerted: ``message`` (the thresholds crossed) with the run's
    report and the series page, through the notification block in the Prefect variable
    ``speclens_alert_block`` (``<block type slug>/<name>``), or in this run's log when none."""
    from prefect.blocks.core import Block
    from prefect.variables import Variable

    body = f"{message}\nrun {run_id}, report {report}\nseries history {series_page}"
    name = Variable.get(ALERT_BLOCK_VARIABLE, default=None)
    logger = get_run_logger()
    if name:
        Block.load(name).notify(body=body, subject=f"speclens alert: {series}")
        logger.info("alert on series %s sent through %s", series, name)
    else:
        logger.warning(
            "alert on series %s (no notification block: set the Prefect variable %s to one, "
            "e.g. slack-webhook/ops):\n%s",
            *(series, ALERT_BLOCK_VARIABLE, body),
        )
    return body
