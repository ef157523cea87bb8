"""The report in a real browser (Debian's headless Chromium through chromium-driver): every
image loads, the page fits its width, the verdict sentence comes first, and the modes not to
rely on are greyed with their reason while the others are not. `.ci/run` installs Chromium
when it is missing; elsewhere, without it, these tests say how to install it and skip."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from report_inputs import report_inputs
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
    driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=options)
    yield driver
    driver.quit()


def _open(browser, index: Path) -> None:
    browser.get(index.as_uri())
    assert browser.execute_script("return document.readyState") == "complete"


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
