"""The HTML report: files and relative links, escaping, text-only runs, the K x K matrix page
and the Markdown artifact (the samples' sections: test_report_samples.py; in a browser:
test_report_browser.py)."""

from __future__ import annotations

import io
import re
import uuid
from html.parser import HTMLParser
from pathlib import Path

import fsspec
import numpy as np
import pytest
from PIL import Image
from report_inputs import HOSTILE, report_inputs
from warehouse_rows import uncertainty_columns

from speclens.report import html, run_markdown, write_matrix_report, write_report

ENCODERS = ["hue-hist", "grad-hist", "pixels"]
MATRIX = np.array([[0, 0.106, 0.096], [0.0278, 0, 0.0426], [0.0287, 0.0232, 0]])


class Page(HTMLParser):
    """Tags, link targets and text of a page."""

    def __init__(self, text: str):
        super().__init__()
        self.tags, self.links, self.ids, self.text = [], [], [], []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        attrs = dict(attrs)
        self.links += [attrs[k] for k in ("src", "href") if k in attrs]
        if "id" in attrs:
            self.ids.append(attrs["id"])

    def handle_data(self, data):
        self.text.append(data)


def _local_links_resolve(index: Path, page: Page) -> list[str]:
    files = [link for link in page.links if not link.startswith("#")]
    for link in files:
        assert "://" not in link and not link.startswith("/"), link
        assert (index.parent / link).is_file(), link
    anchors = [link[1:] for link in page.links if link.startswith("#")]
    assert set(anchors) <= set(page.ids)
    return files


def test_report_files_links_and_content(tmp_path):
    run, modes, members, eig, images = report_inputs()
    out = tmp_path / "reports" / run["run_id"]
    index = Path(write_report(str(out), run, modes, members, eig, images, (ENCODERS, MATRIX)))
    assert index == out / "index.html"
    text = index.read_text()
    page = Page(text)
    files = _local_links_resolve(index, page)
    assert {"spectrum.png", "report.js"} <= set(files) and len(files) == 2 + 6 * 8
    assert Image.open(out / "spectrum.png").size[0] > 800
    thumb = Image.open(out / "modes" / "mode_03" / "01.png")
    assert thumb.size == (64, 64) and thumb.mode == "RGB"
    assert np.array_equal(np.asarray(thumb), images[3][0])
    # one script, shipped beside the page; styles inline; nothing from the network
    assert page.tags.count("script") == 1 and "link" not in page.tags and "http" not in text
    script = (out / "report.js").read_text()
    assert script == (Path(html.__file__).parent / "assets" / "report.js").read_text()
    assert re.findall(r"https?://[^\s\"']+", script) == ["http://www.w3.org/2000/svg"]  # a name
    # modes in the order given, each with its direction in words
    assert [i for i in page.ids if i.startswith("mode-")] == [f"mode-{m['mode']}" for m in modes]
    words = " ".join(page.text)
    assert words.count("captured by hue-hist, not by grad-hist") == 2 * 3  # overview + card
    assert "SPEC-diff hue-hist over grad-hist" in words and "0.1064" in words
    assert "Labels of the top 8 members" in words and "dominant label" in words
    assert "captures ↓ · misses →" in words and "0.0426" in words


def test_user_strings_are_escaped(tmp_path):
    run, modes, members, eig, images = report_inputs()
    run["encoder_y"] = 'enc<"y">$x_1$'  # also reaches the spectrum legend (no mathtext)
    index = write_report(str(tmp_path), run, modes, members, eig, images)
    text = Path(index).read_text()
    assert HOSTILE not in text and text.count("<script") == 1  # report.js's tag alone
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &quot;quoted&quot;" in text
    assert "enc&lt;&quot;y&quot;&gt;$x_1$" in text
    assert HOSTILE in " ".join(Page(text).text)  # readers see the original text


def test_text_only_run_shows_captions_and_words(tmp_path):
    run, modes, members, eig, images = report_inputs(text_only=True)
    assert images is None
    index = Path(write_report(str(tmp_path / "r"), run, modes, members, eig, None))
    page = Page(index.read_text())
    assert _local_links_resolve(index, page) == ["spectrum.png", "report.js"]
    assert not (tmp_path / "r" / "modes").exists()
    words = " ".join(page.text)
    assert "a red square on a light grey background" in words
    assert "Caption words of the top 8 members" in words
    # words every caption shares (the background) are not shown as bars
    bars = [td for td in index.read_text().split('class="lab" title="')[1:]]
    assert {b.split('"')[0] for b in bars} >= {"red", "square"}
    assert not {b.split('"')[0] for b in bars} & {"background", "light"}


def test_rerun_with_fewer_modes_leaves_no_stale_images(tmp_path):
    run, modes, members, eig, images = report_inputs()
    write_report(str(tmp_path), run, modes, members, eig, images)
    keep = [m for m in members if m["mode"] < 2]
    write_report(str(tmp_path), run, modes[:2], keep, eig[:2], {0: images[0], 1: images[1]})
    assert sorted(p.name for p in (tmp_path / "modes").iterdir()) == ["mode_00", "mode_01"]
    with pytest.raises(ValueError, match="eigenvalues has 6 entries for 2 modes"):
        write_report(str(tmp_path), run, modes[:2], keep, eig, None)


def test_report_to_memory_url():
    url = f"memory://reports-{uuid.uuid4().hex}/run"
    run, modes, members, eig, images = report_inputs()
    index = write_report(url, run, modes, members, eig, {0: images[0]})
    fs = fsspec.filesystem("memory")
    assert index == f"{url}/index.html" and fs.exists(f"{url}/modes/mode_00/08.png")
    png = fs.cat_file(f"{url}/spectrum.png")
    assert Image.open(io.BytesIO(png)).format == "PNG"


def test_matrix_report_links_pairwise_runs(tmp_path):
    index = Path(
        write_matrix_report(
            str(tmp_path / "grp"), "grp<1>", ENCODERS, MATRIX, ["emb-001", "emb-002", "emb-003"]
        )
    )
    text = index.read_text()
    page = Page(text)
    assert page.links == [f"../emb-00{i}/index.html" for i in (1, 2, 3)]
    assert "grp&lt;1&gt;" in text and "0.106" in text and text.count("<td") == 9
    with pytest.raises(ValueError, match="matrix has shape .2, 2. for 3 encoders"):
        write_matrix_report(str(tmp_path), "g", ENCODERS, MATRIX[:2, :2], [])


def test_run_markdown_summarises_and_escapes():
    run, modes, _, _, _ = report_inputs()
    modes[0]["summary"] = "red | crimson\nmaroon"
    pairs = [
        {
            "encoder_x": "hue-hist",
            "encoder_y": "grad-hist",
            "spec_diff_x_over_y": 0.1064,
            "spec_diff_y_over_x": 0.0278,
            "spec_diff": 0.1064,
        }
    ]
    md = run_markdown(run, modes, pairs)
    lines = md.splitlines()
    assert lines[0] == "# SPEC run emb-001: hue-hist vs grad-hist"
    assert "| hue-hist | grad-hist | 0.1064 | 0.0278 |" in lines
    rows = [line for line in lines if line.startswith("| ") and "captured by" in line]
    assert len(rows) == len(modes)
    assert rows[0].startswith(
        "| 0 | captured by hue-hist, not by grad-hist | 0.1064 | [0.09768, 0.1152] | 0.09579 "
        "| 0.004 | 0.90 | 27.1% |"
    )
    assert rows[0].endswith("| red \\| crimson maroon |")
    # the weakest mode of each end says why it should not be read alone
    assert "not significant (p=0.400 after Holm); members not stable" in rows[2]
    assert "2 of 3 modes captured by hue-hist and not by grad-hist are significant" in md
    # a run without uncertainty keeps the plain table
    plain = [
        {k: v for k, v in m.items() if k not in uncertainty_columns(1.0, False)} for m in modes
    ]
    rows = [r for r in run_markdown(run, plain, pairs).splitlines() if "captured by" in r]
    assert rows[0].startswith("| 0 | captured by hue-hist, not by grad-hist | 0.1064 | 27.1% |")
    assert "significant" not in run_markdown(run, plain, pairs)
    assert "<script>" not in md and "&lt;script&gt;" in md
    assert run_markdown(run, [], []).rstrip().endswith("No modes reported.")
