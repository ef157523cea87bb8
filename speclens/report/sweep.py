"""The page of a bandwidth sweep: SPEC-diff both ways against the bandwidth scale (with the
intervals and held-out values when the runs have them), per scale the dominant labels of the
leading modes, and which scale shows the largest difference and the most label-concentrated
modes. :func:`sweep_summary` is the same answer as data (the CLI prints it)."""

from __future__ import annotations

import io
import math

from speclens.report import html
from speclens.report.numbers import fmt
from speclens.report.plots import X_COLOUR, Y_COLOUR
from speclens.storage import urls

#: Leading modes per direction whose label shares measure a scale's label concentration.
LEADING = 3
DIRECTIONS = ("x_over_y", "y_over_x")


def sweep_run_id(sweep_id: str, scale: float) -> str:
    """The id of a sweep's run at one bandwidth scale: ``<sweep id>--sigma<scale>``."""
    return f"{sweep_id}--sigma{scale:g}"


def sweep_of(run: dict) -> str | None:
    """The sweep a ``runs`` row belongs to (its parent, when its id is the parent's run id at
    its scale), else None (a plain run, or an align run whose parent is its before run)."""
    parent, scale = run.get("parent_run_id"), run.get("sigma_scale")
    if parent and scale is not None and run.get("run_id") == sweep_run_id(parent, scale):
        return parent
    return None


def leading_labels(modes: list[dict], direction: str) -> list[tuple[str, float]]:
    """(label, share) of the leading labelled modes of one direction, strongest first."""
    ranked = sorted(
        (m for m in modes if m["direction"] == direction), key=lambda m: -abs(m["eigenvalue"])
    )[:LEADING]
    return [(m["label"], m["label_share"]) for m in ranked if m.get("label")]


def concentration(modes: list[dict]) -> float | None:
    """Mean label share of the leading modes of both directions (None without labels)."""
    shares = [s for d in DIRECTIONS for _, s in leading_labels(modes, d)]
    return sum(shares) / len(shares) if shares else None


def difference(entry: dict) -> tuple[float, str]:
    """A scale's SPEC-diff (the larger direction): the held-out value when the run has one
    (the plug-in grows with the random features' bias at small bandwidths), else the plug-in."""
    s = entry["scores"]
    held = [s.get(f"spec_diff_{d}_heldout") for d in DIRECTIONS]
    if all(v is not None and math.isfinite(v) for v in held):
        return max(held), "held-out"
    return s["spec_diff"], "plug-in"


def sweep_summary(entries: list[dict]) -> dict:
    """``entries``: per run of the sweep ``{"run", "scores", "modes"}`` (warehouse rows).
    Returns the scales in order, the scale of the largest difference (and which estimate
    ranked it), and the scale with the most label-concentrated leading modes (or None)."""
    entries = sorted(entries, key=lambda e: e["run"]["sigma_scale"])
    diffs = [difference(e) for e in entries]
    peak = max(range(len(entries)), key=lambda i: diffs[i][0])
    conc = [concentration(e["modes"]) for e in entries]
    labelled = [i for i, c in enumerate(conc) if c is not None]
    best = max(labelled, key=lambda i: conc[i]) if labelled else None
    return {
        "scales": [e["run"]["sigma_scale"] for e in entries],
        "run_ids": [e["run"]["run_id"] for e in entries],
        "difference": [d for d, _ in diffs],
        "estimate": diffs[0][1],
        "concentration": conc,
        "peak_scale": entries[peak]["run"]["sigma_scale"],
        "concentrated_scale": None if best is None else entries[best]["run"]["sigma_scale"],
    }


def write_sweep_page(out_dir: str, sweep_id: str, entries: list[dict]) -> str:
    """Write ``index.html`` (and its plot) of a sweep under ``out_dir``; returns its URL."""
    entries = sorted(entries, key=lambda e: e["run"]["sigma_scale"])
    summary = sweep_summary(entries)
    run = entries[0]["run"]
    urls.write_bytes(urls.join(out_dir, "sweep.png"), sweep_png(entries, run))
    ex, ey = html.esc(run["encoder_x"]), html.esc(run["encoder_y"])
    peak, conc = summary["peak_scale"], summary["concentrated_scale"]
    lines = [
        f"The difference is largest at {fmt(peak)} x the median distance "
        f"({summary['estimate']} SPEC-diff {fmt(max(summary['difference']))})."
    ]
    if conc is not None:
        share = max(c for c in summary["concentration"] if c is not None)
        lines.append(
            f"The leading modes are most label-concentrated at {fmt(conc)} x the median "
            f"distance (mean label share {share:.0%})."
        )
    body = (
        f"<h1>Bandwidth sweep {html.esc(sweep_id)}</h1>"
        f'<p class="sub">{ex} vs {ey} on {html.esc(run["dataset"])}: one run per bandwidth '
        f"scale (bandwidth = scale x the median pairwise distance)</p>"
        + "".join(f'<p class="verdict">{html.esc(t)}</p>' for t in lines)
        + '<div class="card spectrum"><img src="sweep.png" alt="SPEC-diff against '
        'bandwidth scale"></div>'
        + f'<h2>Runs</h2><div class="card wide">{_table(entries, summary)}</div>'
        + f"<footer>speclens · SPEC (arXiv 2506.06231) · sweep {html.esc(sweep_id)}</footer>"
    )
    index = urls.join(out_dir, "index.html")
    urls.write_bytes(index, html.page(f"SPEC sweep {sweep_id}", body).encode("utf-8"))
    return index


def _interval(scores: dict, d: str) -> str:
    low, high = scores.get(f"spec_diff_{d}_low"), scores.get(f"spec_diff_{d}_high")
    held = scores.get(f"spec_diff_{d}_heldout")
    text = fmt(scores[f"spec_diff_{d}"])
    if low is not None:
        text += f" [{fmt(low)}, {fmt(high)}]"
    if held is not None:
        text += f"; held-out {fmt(held)}"
    return text


def _labels(modes: list[dict], d: str) -> str:
    return ", ".join(f"{label} {share:.0%}" for label, share in leading_labels(modes, d)) or "–"


def _table(entries: list[dict], summary: dict) -> str:
    rows = []
    for e, conc in zip(entries, summary["concentration"], strict=True):
        run, scale = e["run"], e["run"]["sigma_scale"]
        marks = [
            w
            for w, s in (
                ("largest difference", summary["peak_scale"]),
                ("most label-concentrated", summary["concentrated_scale"]),
            )
            if s == scale
        ]
        badge = "".join(f' <span class="badge">{m}</span>' for m in marks)
        rid = html.esc(run["run_id"])
        rows.append(
            f'<tr><td class="num">{fmt(scale)}{badge}</td>'
            f'<td class="num">{fmt(run.get("sigma_x"))}</td>'
            f'<td class="num">{fmt(run.get("sigma_y"))}</td>'
            + "".join(f"<td>{html.esc(_interval(e['scores'], d))}</td>" for d in DIRECTIONS)
            + "".join(f"<td>{html.esc(_labels(e['modes'], d))}</td>" for d in DIRECTIONS)
            + f'<td class="num">{fmt(conc, ".0%")}</td>'
            f'<td class="num">{fmt(run.get("rff_rel_error"), ".1%")}</td>'
            f'<td class="id"><a href="../{rid}/index.html">{rid}</a></td></tr>'
        )
    run = entries[0]["run"]
    ex, ey = html.esc(run["encoder_x"]), html.esc(run["encoder_y"])
    head = (
        "<th>scale</th><th>σ X</th><th>σ Y</th>"
        f"<th>SPEC-diff {ex} over {ey}</th><th>SPEC-diff {ey} over {ex}</th>"
        f"<th>leading labels, {ex} over {ey}</th><th>leading labels, {ey} over {ex}</th>"
        "<th>label share</th><th>RFF error</th><th>run</th>"
    )
    return f'<table class="overview"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def sweep_png(entries: list[dict], run: dict) -> bytes:
    """SPEC-diff both ways against the scale (log axis), intervals as bars, held-out dotted."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.2), dpi=130, layout="constrained")
    ax = fig.add_subplot()
    scales = [e["run"]["sigma_scale"] for e in entries]
    for d, colour, a, b in (
        ("x_over_y", X_COLOUR, run["encoder_x"], run["encoder_y"]),
        ("y_over_x", Y_COLOUR, run["encoder_y"], run["encoder_x"]),
    ):
        v = [e["scores"][f"spec_diff_{d}"] for e in entries]
        low = [e["scores"].get(f"spec_diff_{d}_low") for e in entries]
        label = f"{a} over {b}"
        if all(x is not None for x in low):
            high = [e["scores"][f"spec_diff_{d}_high"] for e in entries]
            err = [
                [x - lo for x, lo in zip(v, low, strict=True)],
                [hi - x for x, hi in zip(v, high, strict=True)],
            ]
            ax.errorbar(scales, v, yerr=err, color=colour, marker="o", capsize=3, label=label)
            held = [e["scores"].get(f"spec_diff_{d}_heldout") for e in entries]
            ax.plot(
                scales, held, color=colour, linestyle=":", marker="x", label=f"{label}, held-out"
            )
        else:
            ax.plot(scales, v, color=colour, marker="o", label=label)
    ax.set_xscale("log")
    ax.set_xlabel("bandwidth scale (x median pairwise distance)")
    ax.set_ylabel("SPEC-diff")
    ax.grid(color="#e2e8f0", linewidth=0.7)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    legend = ax.legend(frameon=False, fontsize=8)
    for text in legend.get_texts():
        text.set_parse_math(False)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
