"""The align report: before / after SPEC-diff of the held-out comparisons, both spectra side
by side (``spectra.png``), label-probe accuracy before / after, and links to both compare runs'
full reports (sibling folders)."""

from __future__ import annotations

from speclens.report.html import esc, page
from speclens.report.numbers import fmt
from speclens.report.plots import spectra_png
from speclens.storage import urls


def write_align_report(out_dir: str, s: dict) -> str:
    b, a = s["before"], s["after"]
    rows = [
        (
            "SPEC-diff: reference over encoder (what the encoder misses)",
            b["spec_diff"]["x_over_y"],
            a["spec_diff"]["x_over_y"],
        ),
        (
            "SPEC-diff: encoder over reference (what the reference misses)",
            b["spec_diff"]["y_over_x"],
            a["spec_diff"]["y_over_x"],
        ),
    ]
    for probe, label in (
        ("knn", "k-NN label accuracy (k = 10)"),
        ("linear_probe", "linear-probe label accuracy"),
    ):
        if s.get("probes"):
            rows.append((label, s["probes"]["before"][probe], s["probes"]["after"][probe]))
    table = "".join(
        f"<tr><td>{esc(name)}</td><td>{fmt(x)}</td><td>{fmt(y)}</td>"
        f"<td>{fmt(y - x, '+.4g')}</td></tr>"
        for name, x, y in rows
    )
    body = (
        f"<h1>SPEC-align run {esc(s['run_id'])}</h1>"
        f"<p>Aligned <b>{esc(s['encoder'])}</b> to the reference <b>{esc(s['reference'])}</b> "
        f"{_how(s)}; measured on {s['held_out']} "
        f"held-out samples. The aligned embedding is stored as <code>{esc(s['aligned_id'])}</code>.</p>"
        '<div class="card"><table><thead><tr><th></th><th>before</th><th>after</th>'
        f"<th>change</th></tr></thead><tbody>{table}</tbody></table>{_probe_rows(s)}</div>"
        f"{_spectra(out_dir, s)}"
        "<p>Spectra and the groups of each comparison: "
        f'<a href="../{esc(b["run_id"])}/index.html">before ({esc(b["run_id"])})</a>, '
        f'<a href="../{esc(a["run_id"])}/index.html">after ({esc(a["run_id"])})</a>.</p>'
    )
    url = urls.join(out_dir, "index.html")
    urls.write_bytes(url, page(f"SPEC-align {s['run_id']}", body).encode("utf-8"))
    return url


def _probe_rows(s: dict) -> str:
    rows = (s.get("probes") or {}).get("rows")
    if not rows:
        return ""
    return (
        f'<p class="sub">Label probes fit on {rows["train"]} training rows and scored on '
        f"{rows['held_out']} held-out rows with a label.</p>"
    )


def _spectra(out_dir: str, s: dict) -> str:
    """Write ``spectra.png`` (reported eigenvalues before and after) and return its card."""
    b, a = s["before"].get("eigenvalues"), s["after"].get("eigenvalues")
    if not b or not a:
        return ""
    png = spectra_png(b, a, s["reference"], s["encoder"], s["aligned_id"])
    urls.write_bytes(urls.join(out_dir, "spectra.png"), png)
    return (
        '<h2>Spectra</h2><div class="card spectrum"><img src="spectra.png" alt="'
        'reported eigenvalues before and after alignment"><p class="sub">The reference '
        "is X: positive eigenvalues are groups the reference ties together and the "
        "encoder does not; SPEC-align lowers that end.</p></div>"
    )


def _how(s: dict) -> str:
    """How the alignment was trained, in words (adapter, or fine-tuned image tower)."""
    if s.get("mode") == "finetune":
        ft = s["finetune"]
        return (
            f"by fine-tuning its image tower to step {ft['checkpoint_step']} on "
            f"{ft['trained_on']} captioned samples (checkpoint "
            f"<code>{esc(ft['checkpoint'])}</code>)"
        )
    return f"with an adapter trained on {s['train']} samples"
