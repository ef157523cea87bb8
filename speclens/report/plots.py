"""Pictures of the report as PNG bytes: the eigenvalue spectrum (matplotlib, Agg) and member
thumbnails (Pillow). User strings never reach matplotlib's math parser."""

from __future__ import annotations

import io

import numpy as np

X_COLOUR = "#2563eb"  # captured by X, not by Y (eigenvalue > 0)
Y_COLOUR = "#ea580c"  # captured by Y, not by X (eigenvalue < 0)
THUMB_MAX = 160


def _eigen_axes():
    """A wide figure and its axes for a bar chart of eigenvalues (matplotlib, Agg)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.0), dpi=130, layout="constrained")
    return fig, fig.add_subplot()


def _finish(fig, ax, legend) -> bytes:
    """Zero line, light grid, no top/right spines; legend text kept literal; PNG bytes."""
    ax.axhline(0, color="#334155", linewidth=0.8)
    ax.set_ylabel("eigenvalue")
    ax.grid(axis="y", color="#e2e8f0", linewidth=0.7)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    for text in legend.get_texts():
        text.set_parse_math(False)  # encoder ids may hold '$' or '_'
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def spectrum_png(
    eigenvalues, mode_ids, encoder_x: str, encoder_y: str, uncertainty: dict | None = None
) -> bytes:
    """Bar chart of the reported eigenvalues, sorted from largest to smallest, each bar named
    by its mode number and coloured by direction. ``uncertainty`` (arrays in the order of the
    eigenvalues): ``low`` / ``high`` draw the sampling intervals, ``heldout`` a marker per
    mode, and modes with ``weak`` True are faded."""
    fig, ax = _eigen_axes()
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    eig = np.asarray(eigenvalues, dtype=np.float64)
    ids = list(mode_ids)
    order = np.argsort(-np.nan_to_num(eig, nan=0.0), kind="stable")
    values = eig[order]
    colours = [X_COLOUR if v > 0 else Y_COLOUR for v in values]
    pos = np.arange(len(values))
    bars = ax.bar(pos, np.nan_to_num(values), color=colours, width=0.7)
    handles = [Patch(color=X_COLOUR), Patch(color=Y_COLOUR)]
    labels = [
        f"captured by {encoder_x}, not by {encoder_y}",
        f"captured by {encoder_y}, not by {encoder_x}",
    ]
    if uncertainty is not None:
        u = {k: np.asarray(v)[order] for k, v in uncertainty.items()}
        for bar, weak in zip(bars, u["weak"], strict=True):
            bar.set_alpha(0.35 if weak else 1.0)
        err = np.vstack([values - u["low"], u["high"] - values])
        ax.errorbar(
            pos,
            values,
            yerr=np.nan_to_num(err),
            fmt="none",
            ecolor="#0f172a",
            elinewidth=1,
            capsize=3,
        )
        ax.plot(pos, u["heldout"], "o", color="#0f172a", markersize=4)
        handles += [Line2D([], [], color="#0f172a", marker="o", linestyle="none")]
        labels += ["held-out value (bars: intervals; faded: not to rely on)"]
    ax.set_xticks(pos, [f"#{ids[i]}" for i in order], fontsize=8)
    ax.set_xlim(-0.7, max(len(values), 1) - 0.3)
    ax.set_xlabel("mode")
    # above the axes, so no bar, error bar or held-out dot is drawn under it; one entry a
    # line when long encoder ids would not fit side by side
    ncol = len(labels) if sum(len(t) for t in labels) < 120 else 1
    fig.set_size_inches(9, 3.0 + 0.2 * (len(labels) if ncol == 1 else 1))
    legend = fig.legend(
        handles=handles,
        labels=labels,
        loc="outside upper center",
        ncol=ncol,
        fontsize=8,
        frameon=False,
    )
    return _finish(fig, ax, legend)


def spectra_png(before, after, reference: str, encoder: str, aligned: str) -> bytes:
    """Two reported spectra side by side (SPEC-align's before and after): the eigenvalues of
    each comparison sorted from largest to smallest, one bar pair per rank, so the drop of the
    reference's end (positive: the reference is X) reads at a glance."""
    fig, ax = _eigen_axes()
    values = [
        np.sort(np.nan_to_num(np.asarray(e, dtype=np.float64)))[::-1] for e in (before, after)
    ]
    pos = np.arange(max(len(v) for v in values))
    bars = (
        (values[0], "#94a3b8", f"before: {reference} vs {encoder}"),
        (values[1], X_COLOUR, f"after: {reference} vs {aligned}"),
    )
    for k, (v, colour, name) in enumerate(bars):
        ax.bar(pos[: len(v)] + (k - 0.5) * 0.38, v, width=0.38, color=colour, label=name)
    ax.set_xticks(pos, [str(i + 1) for i in pos], fontsize=8)
    ax.set_xlabel("eigenvalue rank (largest first)")
    return _finish(fig, ax, ax.legend(loc="upper right", fontsize=8, frameon=False))


def as_rgb(images) -> np.ndarray:
    """(k, H, W[, C]) images as (k, H, W, 3) uint8: grey is repeated, alpha dropped, floats
    in [0, 1] scaled."""
    arr = np.asarray(images)
    if arr.ndim == 3:
        arr = arr[..., None]
    if arr.ndim != 4 or arr.shape[-1] not in (1, 3, 4):
        raise ValueError(
            f"images must have shape (k, H, W, 3) (or 1 or 4 channels), got {arr.shape}."
        )
    if arr.dtype != np.uint8:
        scale = (
            255.0
            if np.issubdtype(arr.dtype, np.floating) and np.nanmax(arr, initial=0) <= 1
            else 1.0
        )
        arr = np.clip(np.nan_to_num(arr.astype(np.float64) * scale), 0, 255).astype(np.uint8)
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    return arr[..., :3]


def thumbnail_png(image: np.ndarray) -> bytes:
    """One (H, W, 3) uint8 image as PNG, shrunk to at most THUMB_MAX pixels a side."""
    from PIL import Image

    img = Image.fromarray(np.ascontiguousarray(image))
    img.thumbnail((THUMB_MAX, THUMB_MAX))
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return buf.getvalue()
