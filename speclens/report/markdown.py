"""The Markdown summary of a run, for a Prefect markdown artifact (the flow posts it)."""

from __future__ import annotations

from speclens.report.evidence import exact_rows, rff_sentence
from speclens.report.html import direction_words
from speclens.report.numbers import (
    UNCERTAINTY_HEADS,
    caveats,
    fmt,
    has_uncertainty,
    significant_sentence,
    uncertainty_cells,
)


def cell(value) -> str:
    """A value safe inside a Markdown table cell: one line, pipes and HTML escaped."""
    text = " ".join(("" if value is None else str(value)).split())
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("`", "\\`")


def run_markdown(run: dict, modes: list[dict], pair_scores: list[dict]) -> str:
    """Run parameters, SPEC-diff both ways per encoder pair, and one line per mode."""
    ex, ey = run.get("encoder_x"), run.get("encoder_y")
    sigma = ", ".join(
        f"sigma_{a} {fmt(run.get(f'sigma_{a}'))}" for a in "xy" if run.get(f"sigma_{a}") is not None
    )
    lines = [
        f"# SPEC run {cell(run.get('run_id'))}: {cell(ex)} vs {cell(ey)}",
        "",
        f"**{cell(run.get('status'))}** · dataset {cell(run.get('dataset'))} · "
        f"n = {fmt(run.get('n'), ',')} · kernels {cell(run.get('kernel_x'))} / "
        f"{cell(run.get('kernel_y'))}"
        + (f" ({sigma})" if sigma else "")
        + f" · eta {fmt(run.get('eta'))} · seed {cell(run.get('seed'))}",
        "",
    ]
    if pair_scores:
        lines += [
            "| encoder X | encoder Y | SPEC-diff X over Y | SPEC-diff Y over X |",
            "| --- | --- | ---: | ---: |",
        ]
        lines += [
            f"| {cell(p['encoder_x'])} | {cell(p['encoder_y'])} | "
            f"{fmt(p['spec_diff_x_over_y'])} | {fmt(p['spec_diff_y_over_x'])} |"
            for p in pair_scores
        ]
        lines += [
            "",
            "X over Y: how strongly a group X ties together is missed by Y "
            "(largest eigenvalue); Y over X: the reverse.",
            "",
        ]
    if sentence := significant_sentence(modes, ex, ey):
        lines += [sentence, ""]
    if sentence := rff_sentence(run):
        lines += [sentence, ""]
    if rows := exact_rows(modes):
        lines += [
            f"Exact check on {fmt(run.get('exact_check_n'), ',')} rows:",
            "",
            "| mode | eigenvalue | random features, same rows | exact n x n | difference |",
            "| ---: | ---: | ---: | ---: | ---: |",
        ]
        lines += [
            f"| {j} | {fmt(a)} | {fmt(b)} | {fmt(c)} | {fmt(d, '.1%')} |" for j, a, b, c, d in rows
        ]
        lines.append("")
    if modes:
        lines += _mode_table(modes, run)
    else:
        lines.append("No modes reported.")
    return "\n".join(lines) + "\n"


def _mode_table(modes: list[dict], run: dict) -> list[str]:
    """One row per mode; the interval, held-out value, Holm p, stability and caveats join
    the eigenvalue when the run measured its uncertainty."""
    extra = has_uncertainty(modes[0])
    head = "| mode | direction | eigenvalue |"
    rule = "| ---: | --- | ---: |"
    if extra:
        head += "".join(f" {h} |" for h in UNCERTAINTY_HEADS)
        rule += " :---: | ---: | ---: | ---: |"
    lines = [head + " share | dominant label | summary |", rule + " ---: | --- | --- |"]
    for m in modes:
        label = m.get("label")
        dominant = f"{label} ({fmt(m.get('label_share'), '.0%')})" if label else ""
        row = (
            f"| {cell(m['mode'])} | {cell(direction_words(m, run))} | {fmt(m.get('eigenvalue'))} |"
        )
        if extra:
            interval, heldout, p, stability = uncertainty_cells(m)
            row += f" {interval} | {heldout} | {p.removeprefix('p=')} | {stability} |"
        summary = "; ".join([*caveats(m), m.get("summary") or ""]).strip("; ")
        lines.append(
            f"{row} {fmt(m.get('mass_share'), '.1%')} | {cell(dominant)} | {cell(summary)} |"
        )
    return lines
