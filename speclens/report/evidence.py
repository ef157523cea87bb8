"""What a run's numbers rest on, for its page, its Markdown artifact and the CLI: the
random-feature error estimate (with the feature count to use when it is too large) and,
with ``--exact-check``, the exact n x n eigenvalues beside the run's."""

from __future__ import annotations

from speclens.report import html
from speclens.report.numbers import fmt
from speclens.report.sweep import sweep_of
from speclens.spec.rff_check import WARN_RELATIVE_ERROR


def rff_sentence(run: dict) -> str | None:
    """One sentence on the random features (None for a run without the estimate)."""
    rel = run.get("rff_rel_error")
    if rel is None:
        return None
    how = " (chosen by --rff-dim auto)" if run.get("rff_dim_auto") else ""
    text = (
        f"Random features: {fmt(run.get('rff_dim'), ',')} frequencies{how}; estimated error of "
        f"the leading eigenvalues {rel:.1%} of their size."
    )
    if rel > WARN_RELATIVE_ERROR:
        text += (
            f" That is above {WARN_RELATIVE_ERROR:.0%}: rerun with --rff-dim "
            f"{run.get('rff_dim_suggested') or 'auto'} (or --rff-dim auto)."
        )
    return text


def rff_card(run: dict) -> str:
    sentence = rff_sentence(run)
    if sentence is None:
        return ""
    warn = (run.get("rff_rel_error") or 0) > WARN_RELATIVE_ERROR
    return f'<p class="{"caveat" if warn else "muted"}">{html.esc(sentence)}</p>'


def exact_rows(modes: list[dict]) -> list[tuple]:
    """(mode, eigenvalue, RFF on the checked rows, exact, relative difference) per mode."""
    out = []
    for m in modes:
        exact, rff = m.get("exact_eigenvalue"), m.get("exact_rff_eigenvalue")
        if exact is None:
            continue
        rel = abs(rff - exact) / abs(exact) if exact else None
        out.append((m["mode"], m["eigenvalue"], rff, exact, rel))
    return out


def exact_section(run: dict, modes: list[dict]) -> str:
    rows = exact_rows(modes)
    if not rows:
        return ""
    n = fmt(run.get("exact_check_n"), ",")
    body = "".join(
        f'<tr><td>#{mode}</td><td class="num">{fmt(lam)}</td><td class="num">{fmt(rff)}</td>'
        f'<td class="num">{fmt(exact)}</td><td class="num">{fmt(rel, ".1%")}</td></tr>'
        for mode, lam, rff, exact, rel in rows
    )
    return (
        f'<h2>Exact check</h2><div class="card"><p>The explicit n × n kernel on {n} rows '
        "(all of them, or a seeded subsample): its eigenvalues beside the random-feature ones "
        'on the same rows.</p><table class="overview"><thead><tr><th>mode</th>'
        '<th class="num">eigenvalue (run)</th><th class="num">random features, same rows</th>'
        '<th class="num">exact n × n</th><th class="num">difference</th></tr></thead>'
        f"<tbody>{body}</tbody></table></div>"
    )


def sweep_link(run: dict) -> str:
    """A link to the sweep page for a run of a bandwidth sweep."""
    parent = sweep_of(run)
    if parent is None:
        return ""
    return (
        f'<p class="muted">Bandwidth {fmt(run["sigma_scale"])} x the median distance, one run of '
        f'the sweep <a href="../{html.esc(parent)}/index.html">{html.esc(parent)}</a>.</p>'
    )
