"""The audit's last stage: each run joins its series (modes matched to the previous run,
thresholds checked), the series page is rewritten, and a crossed threshold becomes a Prefect
event (``speclens.audit.alert``) and a Markdown artifact. An alert is a finding, not a
failure: the flow run still completes."""

from __future__ import annotations

import re

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.events import emit_event

from speclens.history.record import load_history, record_run
from speclens.report.history_page import write_series_page
from speclens.storage.layout import Layout
from speclens.storage.warehouse import Warehouse

#: The event an audit run emits when it crosses a threshold of its series.
ALERT_EVENT = "speclens.audit.alert"


@task(name="record-series")
def record_series(
    root: str, warehouse: str | None, run_ids: list[str], rules: dict | None
) -> list[dict]:
    """Record each run in its series; write the series pages; alert. Returns per run: series,
    previous run, alerts fired, verdict, series page."""
    wh = Warehouse(Layout(root).warehouse(warehouse))
    logger = get_run_logger()
    out = []
    for run_id in run_ids:
        rec = record_run(wh, run_id, rules)
        history = load_history(wh, rec["series"])  # this run included: never None
        rec.update(verdict=history.verdict, series_page=write_series_page(root, history))
        report = f"{Layout(root).report(run_id)}/index.html"
        logger.info("%s: series %s, %s", run_id, rec["series"], rec["verdict"])
        if rec["alerts"]:
            alert(rec, report)
            logger.warning(
                "%s: ALERT on series %s: %s", run_id, rec["series"], "; ".join(rec["alerts"])
            )
        out.append(rec)
    return out


def alert(rec: dict, report: str) -> None:
    """The event (its resource: the series) and the artifact of one run's alert."""
    payload = {
        "series": rec["series"],
        "run_id": rec["run_id"],
        "previous_run_id": rec["previous_run_id"],
        "alerts": rec["alerts"],
        "message": f"series {rec['series']}: {rec['verdict']}: " + "; ".join(rec["alerts"]),
        "spec_diff": rec["scores"],
        "verdict": rec["verdict"],
        "report": report,
        "series_page": rec["series_page"],
    }
    emit_event(
        event=ALERT_EVENT,
        resource={
            "prefect.resource.id": f"speclens.series.{rec['series']}",
            "prefect.resource.name": rec["series"],
        },
        payload=payload,
    )
    lines = [
        f"# speclens alert: {rec['series']}",
        "",
        f"Run `{rec['run_id']}` (previous: `{rec['previous_run_id'] or 'none'}`): "
        f"{rec['verdict']}.",
        "",
        *[f"- {a}" for a in rec["alerts"]],
        "",
        f"Report: {report}",
        f"Series: {rec['series_page']}",
    ]
    create_markdown_artifact(
        markdown="\n".join(lines),
        key=artifact_key(rec["series"]),
        description=f"speclens alert on series {rec['series']}",
    )


def artifact_key(series: str) -> str:
    """Prefect artifact keys take lowercase letters, digits and dashes."""
    return "speclens-alert-" + (re.sub(r"[^a-z0-9-]+", "-", series.lower()).strip("-") or "series")
