"""Write the report folders: ``<out_dir>/index.html`` with relative assets beside it.

A run report::

    index.html            header, SPEC-diff both ways, spectrum, modes table, the samples' map,
                          lowest local agreement and table (runs with ``samples`` rows), one
                          card per mode
    report.js             the page's script (sorting, filters, member pages, the map); the
                          page reads as a static page without it
    spectrum.png          eigenvalue spectrum
    modes/mode_03/01.png  thumbnails of each mode's top members, in rank order
    samples/<hash>.png    thumbnails of the samples the map and the lowest-agreement grid show

A group report (K encoders): ``index.html`` with the K x K SPEC-diff matrix and links to the
pairwise run reports (sibling folders). Every location is an fsspec URL; the page opens from
disk (no network, no server: everything it loads is in its folder).
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np

from speclens.report import evidence, html, interactive, tables, thumbs
from speclens.report.numbers import has_uncertainty, p_text, significant_sentence, weak
from speclens.report.plots import spectrum_png
from speclens.storage import urls


def write_report(
    out_dir: str,
    run: dict,
    modes: list[dict],
    members: list[dict],
    eigenvalues,
    images: dict[int | str, np.ndarray] | None = None,
    pair_matrix: tuple[list[str], np.ndarray] | None = None,
    *,
    samples: list[dict] | None = None,
) -> str:
    """Write the report of one run; returns the URL of its ``index.html``.

    ``run`` is a warehouse ``runs`` row, ``modes`` and ``members`` its rows (modes shown in
    the order given), ``eigenvalues`` the reported eigenvalues in modes order, ``pair_matrix``
    (encoders, K x K SPEC-diff) for several encoders, ``samples`` its ``samples`` rows (None,
    as for runs made before that table: no map and no samples sections). ``images``: an int
    key is a mode number, its value the top members' images in rank order ((k, H, W, 3)
    uint8; a mode missing: captions instead); a str key is a sample id, its value that
    sample's image ((H, W, 3)), for the samples :func:`interactive.sample_image_ids` names
    and for members past their mode's images (see :mod:`speclens.report.thumbs`).
    """
    eig = np.asarray(eigenvalues, dtype=np.float64).ravel()
    if len(eig) != len(modes):
        raise ValueError(
            f"eigenvalues has {len(eig)} entries for {len(modes)} modes; pass one "
            "per mode, in modes order."
        )
    for stale in ("modes", "samples"):  # a rerun with fewer modes leaves no stale images
        urls.remove(urls.join(out_dir, stale))
    body = _top_sections(out_dir, run, modes, eig, pair_matrix)
    cards, known = _mode_cards(out_dir, run, modes, members, images)
    if samples:
        wanted = interactive.sample_image_ids(samples)
        shown = thumbs.write_sample_thumbs(out_dir, wanted, thumbs.split_images(images)[1], known)
        body += interactive.samples_sections(run, modes, samples, {**known, **shown})
        if cards:
            body.append('<h2 id="modes">Each mode and its members</h2>')
    body += cards or ['<p class="muted">This run reported no modes.</p>']
    body.append(
        f"<footer>speclens · SPEC (arXiv 2506.06231) · run {html.esc(run.get('run_id'))}</footer>"
    )
    urls.write_bytes(urls.join(out_dir, html.SCRIPT), html.asset(html.SCRIPT).encode("utf-8"))
    index = urls.join(out_dir, "index.html")
    title = f"SPEC {run.get('run_id')}: {run.get('encoder_x', 'X')} vs {run.get('encoder_y', 'Y')}"
    urls.write_bytes(index, html.page(title, "".join(body), script=True).encode("utf-8"))
    return index


def _top_sections(out_dir: str, run: dict, modes: list[dict], eig: np.ndarray, pair_matrix):
    """Everything above the samples: header, SPEC-diffs, verdict, spectrum, matrix, exact
    check and the modes table."""
    finite = eig[np.isfinite(eig)]
    x_over_y = float(finite.max()) if finite.size else math.nan
    y_over_x = float(-finite.min()) if finite.size else math.nan
    ex, ey = str(run.get("encoder_x", "X")), str(run.get("encoder_y", "Y"))
    body = [
        html.run_header(run),
        evidence.sweep_link(run),
        html.diff_boxes(run, x_over_y, y_over_x, _diff_detail(modes)),
        evidence.rff_card(run),
    ]
    if sentence := significant_sentence(modes, ex, ey):
        body.append(f'<p class="verdict">{html.esc(sentence)}</p>')
    body += _spectrum_section(out_dir, eig, modes, ex, ey)
    if pair_matrix is not None:
        encoders, matrix = pair_matrix
        body.append(_matrix_section(list(encoders), np.asarray(matrix, dtype=np.float64)))
    body.append(evidence.exact_section(run, modes))
    if modes:
        body.append(f'<h2>Modes</h2><div class="card">{tables.overview_table(modes, run)}</div>')
    return body


def _mode_cards(out_dir: str, run: dict, modes: list[dict], members: list[dict], images):
    """One card per mode, its member thumbnails written; and those thumbnails by sample id
    (the map and the lowest-agreement grid reuse them)."""
    by_mode: dict[int, list[dict]] = defaultdict(list)
    for m in sorted(members, key=lambda r: (r["mode"], r["rank"])):
        by_mode[int(m["mode"])].append(m)
    stacks, singles = thumbs.split_images(images)
    common = html.common_words(members)
    cards, known = [], {}
    for mode in modes:
        j = int(mode["mode"])
        rows = by_mode.get(j, [])
        written = thumbs.write_mode_thumbs(out_dir, j, stacks.get(j), rows, singles)
        for m, thumb in zip(rows, written, strict=False):
            if thumb is not None:
                known.setdefault(m["sample_id"], thumb)
        cards.append(html.mode_card(mode, run, rows, written, common))
    return cards, known


def _spectrum_section(
    out_dir: str, eig: np.ndarray, modes: list[dict], ex: str, ey: str
) -> list[str]:
    """The spectrum plot (written beside the page) and its caption; nothing without modes."""
    if not len(eig):
        return []
    sure = all(has_uncertainty(m) for m in modes)
    uncertainty = None
    if sure:
        uncertainty = {
            "low": [m["eigenvalue_low"] for m in modes],
            "high": [m["eigenvalue_high"] for m in modes],
            "heldout": [m["heldout_eigenvalue"] for m in modes],
            "weak": [weak(m) for m in modes],
        }
    ids = [m["mode"] for m in modes]
    png = spectrum_png(eig, ids, ex, ey, uncertainty)
    urls.write_bytes(urls.join(out_dir, "spectrum.png"), png)
    return [
        '<h2>Spectrum</h2><div class="card spectrum"><img src="spectrum.png" '
        'alt="eigenvalue spectrum"><p class="muted">Eigenvalues of '
        "K<sub>X</sub>/n − η K<sub>Y</sub>/n reported at both ends, largest first. "
        "Each is a mode: a group of samples one embedding ties together and the other "
        "does not."
        + (
            " Bars: sampling intervals; dots: held-out values (the exact value lies between "
            "the plug-in bar and its held-out dot); faded: not significant or not stable."
            if sure
            else ""
        )
        + "</p></div>"
    ]


def _diff_detail(modes: list[dict]) -> tuple[str, str]:
    """A line of uncertainty under each SPEC-diff: the first mode of each direction."""
    out = []
    for direction, sign in (("x_over_y", 1.0), ("y_over_x", -1.0)):
        m = next((m for m in modes if m["direction"] == direction), None)
        if m is None or not has_uncertainty(m):
            out.append("")
            continue
        low, high = sorted((sign * m["eigenvalue_low"], sign * m["eigenvalue_high"]))
        out.append(
            f"[{low:.4g}, {high:.4g}], held-out {sign * m['heldout_eigenvalue']:.4g}, "
            f"{p_text(m['p_value'])}"
        )
    return out[0], out[1]


def write_matrix_report(
    out_dir: str,
    group_id: str,
    encoders: list[str],
    matrix,
    run_ids: list[str],
    bounds: tuple | None = None,
) -> str:
    """The report of a group of K encoders: the K x K SPEC-diff matrix (cell (a, b) = what a
    captures that b misses; ``bounds``: (low, high) matrices of their intervals) and links to
    each pairwise run's report; returns its URL."""
    m = np.asarray(matrix, dtype=np.float64)
    if m.shape != (len(encoders), len(encoders)):
        raise ValueError(
            f"matrix has shape {m.shape} for {len(encoders)} encoders; pass a "
            "K x K matrix in encoders order."
        )
    links = "".join(
        f'<li><a href="../{html.esc(r)}/index.html">{html.esc(r)}</a></li>' for r in run_ids
    )
    body = (
        f"<h1>SPEC comparison {html.esc(group_id)}</h1>"
        f'<p class="sub">{len(encoders)} encoders: '
        f"{html.esc(', '.join(map(str, encoders)))}</p>"
        + _matrix_section(list(encoders), m, bounds)
        + f'<h2>Pairwise runs</h2><div class="card"><ul>{links}</ul></div>'
        + f"<footer>speclens · SPEC (arXiv 2506.06231) · group {html.esc(group_id)}</footer>"
    )
    index = urls.join(out_dir, "index.html")
    urls.write_bytes(index, html.page(f"SPEC {group_id}", body).encode("utf-8"))
    return index


def _matrix_section(encoders: list[str], matrix: np.ndarray, bounds=None) -> str:
    return (
        '<h2>SPEC-diff matrix</h2><div class="card">'
        + html.matrix_table(encoders, matrix, bounds)
        + '<p class="muted">Row a, column b: SPEC-diff of a over b, the largest eigenvalue '
        "of K<sub>a</sub>/n − η K<sub>b</sub>/n — how strongly a group that a ties together "
        "is missed by b. Darker is larger.</p></div>"
    )
