"""The page of an audit series: the verdict, one chart point per run and direction placed by
date, the runs newest first with links to their reports and their alerts, the latest run's
modes against the previous run's, escaping; and the written page in a real browser (the
``browser`` fixture of test_report_browser.py, which skips without Chromium)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

import test_report_browser as in_browser
from test_report import Page

from speclens.history.model import ModeMatch, SeriesHistory, SeriesRun
from speclens.report.history_page import series_page_html, write_series_page
from speclens.report.plots import X_COLOUR

HOSTILE = "<script>alert(1)</script>"
SVG = "{http://www.w3.org/2000/svg}"
browser = in_browser.browser  # the module's Chromium, or a skip without it


def _run(day: int, significant: bool = False, uncertainty: bool = True, **kw) -> SeriesRun:
    """A nightly run on 2026-11-<day> (29, 30) or 2026-12-<day - 30> (31 and on)."""
    month, date = (11, day) if day <= 30 else (12, day - 30)
    diff = {"x_over_y": 0.02 + (day - 28) / 100, "y_over_x": 0.01 + (day - 28) / 200}
    empty = {"x_over_y": None, "y_over_x": None}
    return SeriesRun(
        run_id=f"night-{day}",
        created_at=datetime(2026, month, date, 2, 0, tzinfo=UTC),
        encoder_x="clip-b32",
        encoder_y=kw.pop("encoder_y", "clip-b32-v2"),
        spec_diff=diff,
        heldout={d: v * 0.9 for d, v in diff.items()} if uncertainty else empty,
        low={d: v * 0.8 for d, v in diff.items()} if uncertainty else empty,
        high={d: v * 1.2 for d, v in diff.items()} if uncertainty else empty,
        p={"x_over_y": 0.001 if significant else 0.3, "y_over_x": 0.4} if uncertainty else empty,
        significant=significant,
        **kw,
    )


def _history(**kw) -> SeriesHistory:
    """Three nights, the last significant with two alerts, its modes against the second's:
    one persisting, one new (with a hostile label), one gone."""
    runs = [
        _run(29, uncertainty=False),
        _run(30),
        _run(31, significant=True, encoder_y="clip-b32-v3", alerts=["x_over_y > 0.05", HOSTILE]),
    ]
    matches = [
        ModeMatch("x_over_y", 0, 0, "persisting", 0.82, "dog", True),
        ModeMatch("x_over_y", 1, None, "new", None, HOSTILE, True),
        ModeMatch("y_over_x", None, 2, "gone", None, "cat", None),
    ]
    values = {
        "series": "nightly <b>clip</b>",
        "dataset": "coco-val",
        "baseline": "clip-b32",
        "candidate": "clip-b32-v3",
        "runs": runs,
        "matches": matches,
        "verdict": "changed significantly since 2026-12-01",
        "previous_run_id": "night-30",
    }
    return SeriesHistory(**{**values, **kw})


def _points(text: str) -> list[ET.Element]:
    """The chart's point elements (the SVG parsed as XML: it must be well-formed)."""
    start, end = text.index("<svg"), text.index("</svg>") + len("</svg>")
    svg = ET.fromstring(text[start:end])
    assert svg.get("id") == "history-chart"
    return [c for c in svg.iter(f"{SVG}circle") if c.get("class") == "point"]


def _href(run_id: str) -> str:
    return f"../../{run_id}/index.html"


def test_page_draws_a_point_per_run_and_direction_by_date():
    history = _history()
    text = series_page_html(history, _href)
    points = _points(text)
    assert len(points) == 6 == text.count('class="point"')
    assert [p.get("data-run") for p in points] == ["night-29", "night-30", "night-31"] * 2
    xs = [float(p.get("cx")) for p in points[:3]]
    assert xs[0] < xs[1] < xs[2] and abs((xs[1] - xs[0]) - (xs[2] - xs[1])) < 1e-6
    ys = [float(p.get("cy")) for p in points[:3]]
    assert ys[0] > ys[1] > ys[2]  # plug-in 0.03, 0.04, 0.05: rising
    significant = [p for p in points if p.get("data-significant") == "true"]
    assert [p.get("data-run") for p in significant] == ["night-31"] * 2
    assert significant[0].get("fill") == X_COLOUR and points[0].get("fill") == "#fff"
    tip = points[2].find(f"{SVG}title").text
    assert "night-31" in tip and "2026-12-01 02:00 UTC" in tip
    assert ": 0.05" in tip and "[0.04, 0.06]" in tip and "held-out 0.045" in tip
    assert "p=0.001" in tip
    assert "held-out" not in points[0].find(f"{SVG}title").text  # no held-out value that night
    assert text.count('class="whisker"') == 4  # the first night has no interval


def test_page_states_the_verdict_runs_newest_first_and_their_links():
    text = series_page_html(_history(), _href)
    page = Page(text)
    assert '<p class="verdict" id="verdict"' in text
    assert "changed significantly since 2026-12-01" in text
    assert "coco-val" in text and "clip-b32 (baseline) vs clip-b32-v3 (candidate)" in text
    runs = text[text.index('id="runs-table"') : text.index("</table>")]
    assert runs.index("night-31") < runs.index("night-30") < runs.index("night-29")
    assert runs.count("no significant change") == 2 and runs.count(">significant<") == 1
    assert "0.05 [0.04, 0.06]; held-out 0.045" in runs and "p&lt;0.001" not in runs
    assert "x_over_y &gt; 0.05" in runs and "clip-b32-v2" in runs
    assert {_href(f"night-{d}") for d in (29, 30, 31)} <= set(page.links)
    unlinked = series_page_html(_history(), lambda run_id: None)
    assert "<a " not in unlinked and "night-31" in unlinked


def test_modes_are_matched_to_the_previous_run_or_the_page_says_there_is_none():
    text = series_page_html(_history(), _href)
    modes = text[text.index('id="modes-table"') :]
    rows = modes[: modes.index("</table>")].split("<tr")[2:]
    assert ["persisting", "new", "gone"] == [r.split('"')[1] for r in rows]
    assert "0.82" in rows[0] and "dog" in rows[0] and "cat" in rows[2]
    assert 'id="no-previous"' not in text
    first = _history(runs=[_run(29)], matches=[], previous_run_id=None, verdict="no runs yet")
    alone = series_page_html(first, _href)
    assert len(_points(alone)) == 2  # one run still draws, both ways
    assert "There is no previous run to match the modes of the latest run" in alone
    assert 'id="modes-table"' not in alone


def test_every_user_string_is_escaped():
    text = series_page_html(_history(), _href)
    assert "<script>" not in text and "<b>clip</b>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text  # the alert and the new mode's label
    assert text.count("&lt;script&gt;") == 2
    assert "<h1>Series nightly &lt;b&gt;clip&lt;/b&gt;</h1>" in text


def test_written_page_links_each_run_report_beside_the_series_folder(tmp_path):
    index = Path(write_series_page(str(tmp_path), _history(series="nightly")))
    assert index == tmp_path / "reports" / "series" / "nightly" / "index.html"
    for day in (29, 30, 31):
        report = tmp_path / "reports" / f"night-{day}" / "index.html"
        report.parent.mkdir(parents=True)
        report.write_text("<!DOCTYPE html><title>run</title>")
    links = Page(index.read_text()).links
    assert len(links) == 5  # three rows, and the latest and previous runs above the modes
    assert all((index.parent / link).resolve().is_file() for link in links)


def test_series_page_in_the_browser(browser, tmp_path):
    index = Path(write_series_page(str(tmp_path), _history()))
    in_browser._open(browser, index)
    assert in_browser._errors(browser) == []
    assert browser.execute_script(
        "return document.documentElement.scrollWidth <= window.innerWidth"
    )
    verdict = browser.find_element("id", "verdict")
    chart = browser.find_element("id", "history-chart")
    assert verdict.is_displayed() and verdict.location["y"] < chart.location["y"]
    assert verdict.text == "changed significantly since 2026-12-01"
    assert chart.size["width"] > 600 and chart.size["height"] > 150
    points = browser.find_elements("css selector", "#history-chart .point")
    shown = [p for p in points if p.is_displayed() and p.size["width"] > 0]
    assert len(shown) == 6
    boxes = [p.rect for p in shown]
    assert all(chart.rect["y"] <= b["y"] <= chart.rect["y"] + chart.rect["height"] for b in boxes)
    assert boxes[0]["x"] < boxes[1]["x"] < boxes[2]["x"]  # by date, left to right
    rows = browser.find_elements("css selector", "#runs-table tbody tr")
    assert [r.get_attribute("data-run") for r in rows] == ["night-31", "night-30", "night-29"]
    assert HOSTILE in rows[0].text  # shown as text, never run
    browser.save_screenshot(str(tmp_path / "series.png"))
