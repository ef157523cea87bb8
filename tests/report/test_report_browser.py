"""The report in a real browser (Debian's headless Chromium through chromium-driver): every
image loads, no console error, the page fits its width, the verdict sentence comes first, the
modes not to rely on are greyed with their reason while the others are not; and what its script
does: the modes table sorts and filters, member grids page, the samples map draws every mapped
sample and shows a point's label on hover and its row on click. `.ci/run` installs Chromium
when it is missing; elsewhere, without it, these tests say how to install it and skip.

``SPECLENS_DOCS_SCREENSHOT=docs/report.png pytest tests/report/test_report_browser.py -k map``
writes the README's screenshot."""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from report_inputs import report_inputs, report_samples
from selenium.webdriver.support.wait import WebDriverWait
from warehouse_rows import run_rows

from speclens.report import write_matrix_report, write_report

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
ENCODERS = ["hue-hist", "grad-hist", "pixels"]
MATRIX = np.array([[0, 0.106, 0.096], [0.0278, 0, 0.0426], [0.0287, 0.0232, 0]])


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM and DRIVER):
        pytest.skip("no Chromium: as root, apt-get install chromium chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,900"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # console, for _errors
    driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=options)
    yield driver
    driver.quit()


def _open(browser, index: Path) -> None:
    browser.get_log("browser")  # what earlier pages logged
    browser.get(index.as_uri())
    WebDriverWait(browser, 10).until(
        lambda b: b.execute_script("return document.readyState") == "complete"
    )


def _errors(browser) -> list[str]:
    """The console's errors since the last call (the page's script, failed loads)."""
    return [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]


def _broken_images(browser) -> list[str]:
    """The images that do not decode (lazy ones are loaded first)."""
    return browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "const imgs = [...document.images];"
        "imgs.forEach(i => { i.loading = 'eager'; });"
        "Promise.all(imgs.map(i => i.decode().then(() => null, () => i.getAttribute('src'))))"
        ".then(bad => done(bad.filter(b => b !== null)));"
    )


def test_run_report_shows_intervals_and_greys_what_not_to_rely_on(browser, tmp_path):
    run, modes, members, eig, images = report_inputs()
    modes[1]["near_tie"] = True  # said on its card, not greyed
    index = Path(write_report(str(tmp_path / "r"), run, modes, members, eig, images))
    _open(browser, index)
    assert _broken_images(browser) == []
    assert _errors(browser) == []
    assert browser.execute_script(
        "return document.documentElement.scrollWidth <= window.innerWidth"
    )
    verdict = browser.find_element("css selector", ".verdict")
    first_card = browser.find_element("css selector", "section.mode")
    assert verdict.is_displayed() and verdict.location["y"] < first_card.location["y"]
    assert "2 of 3 modes captured by hue-hist and not by grad-hist are significant" in verdict.text
    cards = browser.find_elements("css selector", "section.mode")
    weak = {m["mode"] for m in modes if m["p_adjusted"] >= 0.05 or m["stability"] < 0.5}
    assert weak == {2, 5}  # the weakest mode of each end in the planted rows
    for card in cards:
        mode = int(card.get_attribute("id").removeprefix("mode-"))
        opacity = float(card.value_of_css_property("opacity"))
        caveat = card.find_elements("css selector", ".caveat")
        if mode in weak:
            assert opacity < 0.8 and caveat and caveat[0].is_displayed()
            assert "Not significant (p=0.400 after Holm)" in caveat[0].text
        elif mode == 1:
            assert opacity == 1.0 and "Near-tied with a neighbouring mode" in caveat[0].text
        else:
            assert opacity == 1.0 and not caveat
        assert "held-out" in card.find_element("css selector", ".stats").text
    rows = browser.find_elements("css selector", "table.overview tbody tr")
    greyed = [r for r in rows if "weak" in (r.get_attribute("class") or "")]
    assert len(rows) == 6 and len(greyed) == 2
    assert "not significant" in greyed[0].get_attribute("title")
    heads = [h.text for h in browser.find_elements("css selector", "table.overview th")]
    assert {"interval", "held-out", "p (Holm)", "stability"} <= set(heads)
    browser.save_screenshot(str(tmp_path / "report.png"))


def test_matrix_page_shows_each_entry_with_its_interval(browser, tmp_path):
    low, high = MATRIX * 0.8, MATRIX * 1.2
    np.fill_diagonal(low, np.nan)  # as publish_group leaves them: no pair, no interval
    np.fill_diagonal(high, np.nan)
    index = Path(
        write_matrix_report(
            str(tmp_path / "g"), "grp", ENCODERS, MATRIX, ["r1", "r2", "r3"], (low, high)
        )
    )
    _open(browser, index)
    cells = browser.find_elements("css selector", "table.matrix tbody td")
    assert len(cells) == 9
    texts = [c.text.split("\n") for c in cells]
    assert texts[1] == ["0.106", "[0.0848, 0.1272]"]  # hue-hist captures, grad-hist misses
    off = [t for k, t in enumerate(texts) if k % 4]
    assert all(len(t) == 2 and t[1].startswith("[") for t in off)
    assert [texts[k] for k in (0, 4, 8)] == [["–"]] * 3  # the diagonal: no pair


def _sweep_entries() -> list[dict]:
    """Three runs of a sweep: the held-out difference peaks at 0.5, labels gather at 0.25."""
    entries = []
    for i, (scale, held, share) in enumerate(
        ((0.25, 0.02, 0.95), (0.5, 0.06, 0.6), (1, 0.04, 0.5))
    ):
        rows = run_rows(0, run_id=f"sw--sigma{scale:g}")
        run = {**rows["runs"][0], "parent_run_id": "sw", "sigma_scale": float(scale)}
        run["rff_rel_error"] = (0.25, 0.08, 0.03)[i]
        scores = {**rows["pair_scores"][0], "spec_diff_x_over_y_heldout": held}
        scores["spec_diff_y_over_x_heldout"] = held / 2
        modes = [{**m, "label_share": share} for m in rows["modes"]]
        entries.append({"run": run, "scores": scores, "modes": modes})
    return entries


def test_sweep_summary_names_the_peak_and_the_concentrated_scale():
    from speclens.report.sweep import sweep_summary

    s = sweep_summary(list(reversed(_sweep_entries())))  # any order in, scale order out
    assert s["scales"] == [0.25, 0.5, 1.0] and s["estimate"] == "held-out"
    assert s["peak_scale"] == 0.5 and s["concentrated_scale"] == 0.25
    plain = [
        {**e, "scores": {**e["scores"], "spec_diff_x_over_y_heldout": None}}
        for e in _sweep_entries()
    ]
    assert sweep_summary(plain)["estimate"] == "plug-in"  # no held-out value: the plug-in ranks


def test_sweep_page_and_a_runs_random_feature_warning_in_the_browser(browser, tmp_path):
    from speclens.report.sweep import write_sweep_page

    index = Path(write_sweep_page(str(tmp_path / "sw"), "sw", _sweep_entries()))
    _open(browser, index)
    assert _broken_images(browser) == []
    assert browser.execute_script(
        "return document.documentElement.scrollWidth <= window.innerWidth"
    )
    verdicts = [v.text for v in browser.find_elements("css selector", ".verdict")]
    assert "largest at 0.5 x the median distance (held-out" in verdicts[0]
    assert "most label-concentrated at 0.25 x the median" in verdicts[1]
    rows = browser.find_elements("css selector", "table.overview tbody tr")
    assert [r.find_element("css selector", "td").text.split()[0] for r in rows] == [
        "0.25",
        "0.5",
        "1",
    ]
    assert "largest difference" in rows[1].text and "most label-concentrated" in rows[0].text
    links = [a.get_attribute("href") for a in browser.find_elements("css selector", "td a")]
    assert links[0].endswith("/sw--sigma0.25/index.html")
    # a run with too few features says so, with the count to use, and shows the exact check
    run, modes, members, eig, images = report_inputs()
    run.update(rff_rel_error=0.25, rff_dim_suggested=12500, exact_check_n=2000)
    for m in modes:
        m.update(exact_eigenvalue=m["eigenvalue"] * 0.9, exact_rff_eigenvalue=m["eigenvalue"])
    page = Path(write_report(str(tmp_path / "r"), run, modes, members, eig, images))
    _open(browser, page)
    warning = browser.find_element("css selector", "p.caveat")
    assert warning.is_displayed() and "rerun with --rff-dim 12500" in warning.text
    assert "exact n × n" in browser.find_element("tag name", "main").text


@pytest.fixture(scope="module")
def interactive_page(tmp_path_factory):
    """A run's page with 40 members a mode (three pages each) and its samples, two unmapped:
    (index, modes, samples)."""
    run, modes, members, eig, images = report_inputs(top=40)
    samples, sample_images = report_samples(members, len(modes), unmapped=2)
    out = tmp_path_factory.mktemp("interactive") / "r"
    images = {**images, **sample_images}
    index = write_report(str(out), run, modes, members, eig, images, samples=samples)
    return Path(index), modes, samples


def _visible_modes(browser) -> list[int]:
    """The modes table's rows on screen, top to bottom (their mode numbers)."""
    return browser.execute_script(
        "return [...document.querySelectorAll('#modes-table tbody tr')]"
        ".filter(r => r.checkVisibility()).map(r => Number(r.cells[0].dataset.value))"
    )


def _click_head(browser, name: str) -> str:
    """Click a modes-table header's button; its aria-sort after the click."""
    heads = browser.find_elements("css selector", "#modes-table th")
    head = next(h for h in heads if h.text.replace("\n", " ").strip(" ▲▼") == name)
    head.find_element("tag name", "button").click()
    return head.get_attribute("aria-sort")


def test_interactive_page_loads_whole_and_clean(browser, interactive_page, tmp_path):
    index, _, _ = interactive_page
    _open(browser, index)
    assert browser.execute_script("return document.documentElement.dataset.reportReady") == "1"
    assert _errors(browser) == [] and _broken_images(browser) == []
    assert browser.execute_script(
        "return document.documentElement.scrollWidth <= window.innerWidth"
    )
    labels = browser.find_elements("css selector", "#modes-controls input")
    names = [i.accessible_name for i in labels]
    assert names == [
        "Filter modes by label or summary",
        "only significant (p < 0.05 after Holm)",
        "only stable (stability ≥ 0.75)",
    ]
    browser.save_screenshot(str(tmp_path / "interactive.png"))


def test_modes_table_sorts_by_any_column_and_filters(browser, interactive_page):
    index, modes, _ = interactive_page
    _open(browser, index)
    by = {m["mode"]: m for m in modes}
    assert _click_head(browser, "eigenvalue") == "ascending"
    assert _visible_modes(browser) == sorted(by, key=lambda j: by[j]["eigenvalue"])
    assert _click_head(browser, "eigenvalue") == "descending"
    assert _visible_modes(browser) == sorted(by, key=lambda j: -by[j]["eigenvalue"])
    assert _click_head(browser, "stability") == "ascending"
    heads = browser.find_elements("css selector", "#modes-table th")
    assert [h.get_attribute("aria-sort") for h in heads].count("none") == len(heads) - 1
    # ties keep the order before the click (eigenvalue, descending)
    assert _visible_modes(browser) == sorted(
        by, key=lambda j: (by[j]["stability"], -by[j]["eigenvalue"])
    )
    _click_head(browser, "mode")
    browser.find_element("id", "modes-filter").send_keys("RED")
    assert _visible_modes(browser) == [
        j for j in by if "red" in f"{by[j]['label']} {by[j]['summary']}"
    ]
    browser.find_element("id", "modes-filter").clear()
    browser.find_element("id", "modes-significant").click()
    assert _visible_modes(browser) == [j for j in by if by[j]["p_adjusted"] < 0.05]
    assert browser.find_element("id", "modes-count").text == "4 of 6 modes shown"


def test_member_grid_pages_through_every_member(browser, interactive_page):
    index, _, _ = interactive_page
    _open(browser, index)
    card = browser.find_element("id", "mode-3")
    assert len(card.find_elements("css selector", ".grid figure")) == 40

    def shown() -> list[list[str]]:
        """The images on screen in the card's grid: [folder, file] each."""
        return browser.execute_script(
            "return [...arguments[0].querySelectorAll('.grid img')].filter(i => "
            "i.checkVisibility()).map(i => i.getAttribute('src').split('/').slice(-2))",
            card,
        )

    prev, nxt = card.find_elements("css selector", ".pager button")
    assert shown() == [["mode_03", f"{r:02d}.png"] for r in range(1, 17)] and not prev.is_enabled()
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", nxt)
    nxt.click()
    assert shown() == [["mode_03", f"{r:02d}.png"] for r in range(17, 33)]
    nxt.click()
    assert shown() == [["mode_03", f"{r:02d}.png"] for r in range(33, 41)]
    assert (
        not nxt.is_enabled() and "33–40 of 40" in card.find_element("css selector", ".pager").text
    )
    prev.click()
    assert len(shown()) == 16 and _broken_images(browser) == []


def test_map_draws_every_mapped_sample_and_shows_one(browser, interactive_page, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains

    index, _, samples = interactive_page
    by_id = {s["sample_id"]: s for s in samples}
    _open(browser, index)
    svg = browser.find_element("id", "samples-map")
    mapped = sum(s["map_x"] is not None for s in samples)
    circles = svg.find_elements("tag name", "circle")
    assert len(circles) == mapped == int(svg.get_attribute("data-points")) == len(samples) - 2
    browser.execute_script("document.getElementById('map').scrollIntoView()")
    circle, sample_id = _clear_point(browser, 2)
    ActionChains(browser).move_to_element(circle).perform()
    tip = browser.find_element("id", "map-tip")
    assert tip.is_displayed()
    assert tip.find_element("tag name", "b").text == by_id[sample_id]["label"]
    assert tip.find_element("tag name", "img").get_attribute("src").endswith(".png")
    assert _broken_images(browser) == []  # the tooltip's image too
    circle.click()
    detail = browser.find_element("id", "map-detail")
    assert sample_id in detail.text and "mode #2" in detail.text
    detail.find_element("tag name", "button").click()
    row = browser.find_element("css selector", "tr.hl")
    assert row.is_displayed() and row.find_element("css selector", "td.id").text == sample_id
    assert _errors(browser) == []
    browser.save_screenshot(str(tmp_path / "map-row.png"))
    _docs_screenshot(browser, tmp_path)


def _clear_point(browser, mode: int):
    """A map point of ``mode`` that no other is drawn over, and its sample id (from the
    page's data island)."""
    return browser.execute_script(
        "const data = JSON.parse(document.getElementById('samples-data').textContent);"
        "for (const c of document.querySelectorAll('#samples-map circle')) {"
        "  const b = c.getBoundingClientRect();"
        "  if (document.elementFromPoint(b.x + b.width / 2, b.y + b.height / 2) === c"
        "      && data.mode[c.dataset.i] === arguments[0]) return [c, data.id[c.dataset.i]];"
        "}",
        mode,
    )


def _docs_screenshot(browser, tmp_path: Path) -> None:
    """With SPECLENS_DOCS_SCREENSHOT set: the map of a page without hostile labels, one point
    selected and another hovered, as an 8-bit PNG at that path (the README's picture)."""
    path = os.environ.get("SPECLENS_DOCS_SCREENSHOT")
    if not path:
        return
    from PIL import Image
    from selenium.webdriver.common.action_chains import ActionChains

    run, modes, members, eig, images = report_inputs(top=40, hostile=False)
    samples, sample_images = report_samples(members, len(modes))
    images = {**images, **sample_images}
    _open(
        browser,
        Path(
            write_report(str(tmp_path / "docs"), run, modes, members, eig, images, samples=samples)
        ),
    )
    browser.set_window_size(1280, 1000)
    browser.execute_script("window.scrollTo(0, document.getElementById('map').offsetTop - 12)")
    (chosen, _), (hovered, _) = (_clear_point(browser, mode) for mode in (0, 2))
    chosen.click()
    ActionChains(browser).move_to_element(hovered).perform()
    shot = Image.open(io.BytesIO(browser.get_screenshot_as_png())).convert("RGB")
    shot.quantize(colors=256, method=Image.Quantize.MAXCOVERAGE).save(path, optimize=True)
    browser.set_window_size(1280, 900)
