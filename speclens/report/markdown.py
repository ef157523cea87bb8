"""The Markdown summary of a run, for a Prefect markdown artifact (the flow posts it)."""

from __future__ import annotations

from speclens.report.html import direction_words, fmt


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
    if modes:
        lines += [
            "| mode | direction | eigenvalue | share | dominant label | summary |",
            "| ---: | --- | ---: | ---: | --- | --- |",
        ]
        for m in modes:
            label = m.get("label")
            dominant = f"{label} ({fmt(m.get('label_share'), '.0%')})" if label else ""
            lines.append(
                f"| {cell(m['mode'])} | {cell(direction_words(m, run))} | "
                f"{fmt(m.get('eigenvalue'))} | {fmt(m.get('mass_share'), '.1%')} | "
                f"{cell(dominant)} | {cell(m.get('summary'))} |"
            )
    else:
        lines.append("No modes reported.")
    return "\n".join(lines) + "\n"
