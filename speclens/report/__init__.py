"""HTML report and plots: ``reports/<run_id>/index.html`` (spectrum, SPEC-diff both ways, a
sortable modes table, the samples' map, lowest local agreement and table, one card per mode
with its top members and label bars, the K x K SPEC-diff matrix) and the Markdown summary a
flow posts as a Prefect artifact. :func:`sample_image_ids` names the samples whose images
``write_report`` shows (at most :data:`MAP_THUMBNAILS` map points and the lowest agreement)."""

from speclens.report.interactive import MAP_THUMBNAILS, sample_image_ids
from speclens.report.markdown import run_markdown
from speclens.report.pages import write_matrix_report, write_report

__all__ = [
    "MAP_THUMBNAILS",
    "run_markdown",
    "sample_image_ids",
    "write_matrix_report",
    "write_report",
]
