"""The samples of a run's page (from the warehouse ``samples`` rows): a 2-D map coloured by each
sample's top mode, drawn by ``report.js`` from a JSON data island (``<script
type="application/json" id="samples-data">``; hover: image and label, click: the sample's
details), the samples with the lowest local agreement as a grid, and a sortable table of the
:data:`SAMPLE_ROWS` lowest. Without the script the grid and the table read as they are.

The page shows at most :data:`MAP_POINTS` points and :data:`MAP_THUMBNAILS` of their images (a
page of a million samples stays a few MB); :func:`sample_image_ids` names the samples whose
images the caller should pass."""

from __future__ import annotations

import colorsys
import json
import math

import numpy as np

from speclens.report.html import dominant, esc, figure
from speclens.report.numbers import fmt
from speclens.report.tables import num_cell
from speclens.report.thumbs import Thumb

#: Map points (at most) that get an image on hover; the caller passes their images.
MAP_THUMBNAILS = 2000
#: Map points drawn at most (an even subsample of the mapped samples beyond).
MAP_POINTS = 20000
#: Samples in the "Lowest local agreement" grid.
LOWEST_SHOWN = 24
#: Rows of the samples table (the lowest local agreement first).
SAMPLE_ROWS = 500
NO_MODE = "#94a3b8"  # samples in no mode
PALETTE = (
    "#1f77b4 #ff7f0e #2ca02c #d62728 #9467bd #8c564b #e377c2 #bcbd22 #17becf #393b79 "
    "#637939 #843c39"
).split()
WIDTH, HEIGHT, PAD = 1000, 620, 14  # the map's SVG view box


def mode_colour(mode) -> str:
    """The map colour of a mode (grey: None); past the palette, hues a golden angle apart."""
    if mode is None:
        return NO_MODE
    j = int(mode)
    if j < len(PALETTE):
        return PALETTE[j]
    r, g, b = colorsys.hls_to_rgb((j * 0.381966) % 1.0, 0.42, 0.65)
    return f"#{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}"


def _finite(value) -> bool:
    return value is not None and math.isfinite(float(value))


def lowest(samples: list[dict], k: int) -> list[int]:
    """Indices of the ``k`` samples with the lowest local agreement (ties: in row order)."""
    have = [i for i, s in enumerate(samples) if _finite(s.get("local_agreement"))]
    return sorted(have, key=lambda i: samples[i]["local_agreement"])[:k]


def _even(indices: list[int], cap: int) -> list[int]:
    """At most ``cap`` of ``indices``, spread evenly over them."""
    if len(indices) <= cap:
        return list(indices)
    picks = np.unique(np.linspace(0, len(indices) - 1, cap).round().astype(int))
    return [indices[p] for p in picks]


def drawn(samples: list[dict]) -> list[int]:
    """Indices of the map's points: the mapped samples (at most :data:`MAP_POINTS`), samples in
    no mode first so that the coloured ones are drawn over them."""
    mapped = [
        i for i, s in enumerate(samples) if _finite(s.get("map_x")) and _finite(s.get("map_y"))
    ]
    return sorted(_even(mapped, MAP_POINTS), key=lambda i: samples[i].get("top_mode") is not None)


def sample_image_ids(samples: list[dict] | None) -> list[str]:
    """The sample ids whose images the page shows: the :data:`LOWEST_SHOWN` lowest local
    agreement, then up to :data:`MAP_THUMBNAILS` map points spread evenly over the map. Pass
    their images to ``write_report`` under these (str) keys."""
    if not samples:
        return []
    points = sorted(drawn(samples))
    picked = lowest(samples, LOWEST_SHOWN) + _even(points, MAP_THUMBNAILS)
    return list(dict.fromkeys(str(samples[i]["sample_id"]) for i in picked))


def samples_sections(
    run: dict, modes: list[dict], samples: list[dict], thumbs: dict[str, Thumb]
) -> list[str]:
    """The map, the lowest-agreement grid and the samples table (``thumbs``: by sample id)."""
    rows = _table_rows(samples)
    out = []
    points = drawn(samples)
    if points:
        out.append(_map_section(run, modes, samples, points, thumbs, rows))
    low = lowest(samples, LOWEST_SHOWN)
    if low:
        out.append(_lowest_section(run, samples, low, thumbs))
    out.append(_table_section(samples, rows))
    return out


def _agreement_words(run: dict) -> str:
    """What local agreement is, with how this run found the neighbours (``runs`` columns)."""
    method, recall = run.get("neighbors_method"), run.get("neighbors_recall")
    how = f" (neighbours: {esc(method)}" if method else " ("
    if recall is not None and method != "exact":
        how += f"; recall {fmt(recall, '.3f')} of the exact nearest"
    how = "" if how == " (" else how + ")"
    return (
        f"Local agreement: the Jaccard overlap of a sample's {esc(run.get('neighbors_k') or 'k')} "
        f"nearest neighbours in {esc(run.get('encoder_x'))} and in {esc(run.get('encoder_y'))}"
        f"{how}; 1: the same neighbourhood, 0: none shared."
    )


def _mode_link(mode) -> str:
    """A link to a mode's card ("no mode" for None)."""
    if mode is None:
        return "no mode"
    return f'<a href="#mode-{esc(mode)}">mode #{esc(mode)}</a>'


def _lowest_section(run: dict, samples: list[dict], low: list[int], thumbs) -> str:
    """The lowest-agreement samples: what the two embeddings disagree on locally, beside the
    modes' global view; a grid of images with label, agreement and mode, or (no image at all:
    a text dataset) a list with their captions."""
    items = []
    for i in low:
        s = samples[i]
        sid, label = s["sample_id"], s.get("label")
        about = f"agreement {fmt(s['local_agreement'], '.2f')} · {_mode_link(s.get('top_mode'))}"
        items.append((s, f"<b>{esc(label or sid)}</b>{about}"))
    if any(thumbs.get(s["sample_id"]) for s, _ in items):
        shown = "".join(
            figure(
                thumbs.get(s["sample_id"]),
                f"{s['sample_id']}: {s.get('caption') or ''}",
                s.get("label") or s["sample_id"],
                text,
            )
            for s, text in items
        )
        shown = f'<div class="grid">{shown}</div>'
    else:
        shown = "".join(
            f"<li>{text} · {esc(s.get('caption') or s['sample_id'])}</li>" for s, text in items
        )
        shown = f'<ol class="texts">{shown}</ol>'
    return (
        '<h2 id="lowest">Lowest local agreement</h2><div class="card"><p class="muted">'
        f"The {len(low)} samples whose neighbourhoods the two embeddings share least. "
        f"{_agreement_words(run)}</p>{shown}</div>"
    )


def _table_rows(samples: list[dict]) -> list[int]:
    """The samples table's rows: the :data:`SAMPLE_ROWS` lowest local agreement (all samples
    in row order when the run has none)."""
    low = lowest(samples, SAMPLE_ROWS)
    return low if low else list(range(min(len(samples), SAMPLE_ROWS)))


def _table_section(samples: list[dict], rows: list[int]) -> str:
    """The samples table, folded (it can be long), sortable by the script."""
    order = "lowest local agreement first" if lowest(samples, 1) else "in the warehouse's order"
    if len(rows) == len(samples):
        what = f"All {len(samples):,} samples, {order}"
    else:
        what = (
            f"The {len(rows):,} samples of {len(samples):,}, {order} (the warehouse's "
            "<code>samples</code> table holds every one)"
        )
    body = "".join(_table_row(k, samples[i]) for k, i in enumerate(rows))
    return (
        '<h2 id="samples">Samples</h2><details class="card" id="samples-details"><summary>'
        f'{what}</summary><div class="wide"><table class="overview sortable samples-table" '
        'id="samples-table"><thead><tr><th>sample</th><th>label</th>'
        '<th class="num">local agreement</th><th class="num">top mode</th>'
        f'<th class="num">top share</th></tr></thead><tbody>{body}</tbody></table></div></details>'
    )


def _table_row(k: int, s: dict) -> str:
    """Row ``k`` of the samples table (``id="sample-k"``: the map's points link to it)."""
    mode = s.get("top_mode")
    mode_cell = (
        f'<td class="num" data-value="{esc(mode)}">{_mode_link(mode)}</td>'
        if mode is not None
        else '<td class="num">–</td>'
    )
    return (
        f'<tr id="sample-{k}"><td class="id">{esc(s["sample_id"])}</td>'
        f"<td>{esc(s.get('label') or '')}</td>"
        + num_cell(s.get("local_agreement"), fmt(s.get("local_agreement"), ".3f"))
        + mode_cell
        + num_cell(s.get("top_share"), fmt(s.get("top_share"), ".2f"))
        + "</tr>"
    )


def _map_section(run, modes, samples, points, thumbs, rows) -> str:
    """The map's frame (the script draws the points), its legend and its data island."""
    mapped = sum(_finite(s.get("map_x")) and _finite(s.get("map_y")) for s in samples)
    cap = f" Drawn: {len(points):,} of them, evenly spread." if len(points) < mapped else ""
    method = f" ({esc(run['map_method'])})" if run.get("map_method") else ""
    data = _map_data(samples, points, thumbs, rows)
    return (
        '<h2 id="map">Map of the samples</h2><div class="card"><p class="muted">'
        f"{mapped:,} samples placed in two dimensions{method}, coloured by the mode each "
        f"belongs to most (grey: none).{cap} Hover a point for its image and label; click it "
        'for its details.</p><div class="map-cols"><div class="map-wrap" id="map-wrap">'
        f'<svg class="map" id="samples-map" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="Map of {len(points):,} samples coloured by their top mode"></svg>'
        '<div class="tip" id="map-tip" hidden></div><noscript><p class="muted">The map needs '
        "JavaScript; the grid and the table below list the samples.</p></noscript></div>"
        '<aside class="detail" id="map-detail" aria-live="polite" aria-label="Selected sample">'
        '<p class="muted">Click a point to see its sample here.</p></aside></div>'
        f"{_legend(modes, samples, points)}"
        f'<script type="application/json" id="samples-data">{_island(data)}</script></div>'
    )


def _legend(modes: list[dict], samples: list[dict], points: list[int]) -> str:
    """The map's colours (static: it reads without the script), with each one's count."""
    counts: dict = {}
    for i in points:
        counts[samples[i].get("top_mode")] = counts.get(samples[i].get("top_mode"), 0) + 1
    items = [
        (mode_colour(m["mode"]), f"#{m['mode']} {dominant(m)}", counts.get(m["mode"], 0))
        for m in modes
    ] + [(NO_MODE, "no mode", counts.get(None, 0))]
    return (
        '<ul class="legend" aria-label="Map colours">'
        + "".join(
            f'<li><span class="sw" style="background:{c}"></span>{esc(text)} ({n:,})</li>'
            for c, text, n in items
        )
        + "</ul>"
    )


def _map_data(samples, points, thumbs, rows) -> dict:
    """The points as columns: view-box coordinates, mode and colour, label, id, caption,
    agreement, thumbnail and row of the samples table (-1: not in it)."""
    xy = np.array([[samples[i]["map_x"], samples[i]["map_y"]] for i in points], dtype=float)
    low, span = xy.min(axis=0), np.maximum(np.ptp(xy, axis=0), 1e-12)
    scale = min((WIDTH - 2 * PAD) / span[0], (HEIGHT - 2 * PAD) / span[1])
    offset = (np.array([WIDTH, HEIGHT]) - span * scale) / 2
    px = offset + (xy - low) * scale
    px[:, 1] = HEIGHT - px[:, 1]  # y up
    row_of = {i: k for k, i in enumerate(rows)}
    picked = [samples[i] for i in points]
    agreement = [s.get("local_agreement") for s in picked]
    return {
        "r": 5 if len(points) <= 2000 else 3.5 if len(points) <= 10000 else 2.2,
        "x": [round(float(v), 1) for v in px[:, 0]],
        "y": [round(float(v), 1) for v in px[:, 1]],
        "mode": [None if s.get("top_mode") is None else int(s["top_mode"]) for s in picked],
        "colours": {
            ("none" if m is None else str(m)): mode_colour(m)
            for m in {s.get("top_mode") for s in picked}
        },
        "label": [s.get("label") for s in picked],
        "id": [str(s["sample_id"]) for s in picked],
        "caption": [(s.get("caption") or "")[:160] for s in picked],
        "agreement": [round(float(a), 4) if _finite(a) else None for a in agreement],
        "thumb": [(thumbs.get(s["sample_id"]) or (None,))[0] for s in picked],
        "row": [row_of.get(i, -1) for i in points],
    }


def _island(data: dict) -> str:
    """JSON that cannot end its script element (``<``, ``>`` and ``&`` as escapes)."""
    text = json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
