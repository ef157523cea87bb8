"""How a mode's numbers read, with their uncertainty: one line shared by the command's summary,
the Markdown artifact and the HTML report
(``+0.0094 [0.0081, 0.0107], held-out 0.0071, p=0.003, stability 0.82``)."""

from __future__ import annotations

import math

from speclens.spec.inference import DISSOLVED

#: a mode is reported as significant below this Holm-adjusted p-value
ALPHA = 0.05


def _ok(value) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def fmt(value, spec: str = ".4g") -> str:
    """A value for a page or a table ("–" when missing)."""
    if not _ok(value):
        return "–"
    return format(value, spec) if isinstance(value, int | float) else str(value)


def has_uncertainty(m: dict) -> bool:
    """Whether a ``modes`` row carries intervals (runs with ``uncertainty`` off do not)."""
    return _ok(m.get("eigenvalue_low"))


def p_text(p: float) -> str:
    return "p<0.001" if p < 0.001 else f"p={p:.3f}"


def mode_numbers(m: dict) -> str:
    """The eigenvalue, its interval, held-out value, adjusted p-value and stability of a
    ``modes`` row (just the eigenvalue when the run has no uncertainty)."""
    text = f"{m['eigenvalue']:+.4f}"
    if not has_uncertainty(m):
        return text
    return (
        f"{text} [{m['eigenvalue_low']:.4f}, {m['eigenvalue_high']:.4f}], held-out "
        f"{m['heldout_eigenvalue']:.4f}, {p_text(m['p_adjusted'])}, stability {m['stability']:.2f}"
    )


#: the uncertainty's columns of a table of modes (:func:`uncertainty_cells` fills them)
UNCERTAINTY_HEADS = ("interval", "held-out", "p (Holm)", "stability")


def uncertainty_cells(m: dict) -> list[str]:
    """A ``modes`` row's texts under :data:`UNCERTAINTY_HEADS` (empty without uncertainty)."""
    if not has_uncertainty(m):
        return [""] * len(UNCERTAINTY_HEADS)
    return [
        f"[{fmt(m['eigenvalue_low'])}, {fmt(m['eigenvalue_high'])}]",
        fmt(m.get("heldout_eigenvalue")),
        p_text(m["p_adjusted"]),
        fmt(m.get("stability"), ".2f"),
    ]


def _insignificant(m: dict) -> bool:
    return _ok(m.get("p_adjusted")) and m["p_adjusted"] >= ALPHA


def _dissolved(m: dict) -> bool:
    return _ok(m.get("stability")) and m["stability"] < DISSOLVED


def weak(m: dict) -> bool:
    """Not to rely on: not significant after Holm, or members that dissolve across halves
    (the report greys these; a near-tie alone is said, not greyed)."""
    return _insignificant(m) or _dissolved(m)


def caveats(m: dict) -> list[str]:
    """Why a mode should not be read alone: not significant, not stable, near-tied."""
    out = []
    if _insignificant(m):
        out.append(f"not significant ({p_text(m['p_adjusted'])} after Holm)")
    if _dissolved(m):
        out.append(f"members not stable across halves ({m['stability']:.2f})")
    if m.get("near_tie"):
        out.append("near-tied with a neighbouring mode: they can swap members")
    return out


def significant_sentence(modes: list[dict], encoder_x: str, encoder_y: str) -> str | None:
    """How many modes are significant each way, in one sentence (None without uncertainty)."""
    if not modes or not _ok(modes[0].get("p_adjusted")):
        return None
    counts = {}
    for direction in ("x_over_y", "y_over_x"):
        rows = [m for m in modes if m["direction"] == direction]
        counts[direction] = (sum(m["p_adjusted"] < ALPHA for m in rows), len(rows))
    (a, n_a), (b, n_b) = counts["x_over_y"], counts["y_over_x"]
    return (
        f"{a} of {n_a} modes captured by {encoder_x} and not by {encoder_y} are significant, "
        f"and {b} of {n_b} the other way (Holm-adjusted p < {ALPHA})."
    )
