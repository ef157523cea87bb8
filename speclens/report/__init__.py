"""HTML report and plots: ``reports/<run_id>/index.html`` (spectrum, SPEC-diff both ways, one
card per mode with its top members and label bars, the K x K SPEC-diff matrix) and the
Markdown summary a flow posts as a Prefect artifact."""

from speclens.report.markdown import run_markdown
from speclens.report.pages import write_matrix_report, write_report

__all__ = ["run_markdown", "write_matrix_report", "write_report"]
