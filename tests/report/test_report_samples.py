"""The samples' sections of a run's page (the warehouse ``samples`` rows): the map's data island
against the rows, the lowest-agreement grid and the samples table in agreement order, the caps
on points, images and rows, escaping, thumbnails for members past their mode's images, and
runs without samples (in a browser: test_report_browser.py)."""

from __future__ import annotations

import json
import re
from html import unescape
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from report_inputs import HOSTILE, report_inputs, report_samples

from speclens.report import interactive, write_report

ISLAND = re.compile(r'<script type="application/json" id="samples-data">(.*?)</script>', re.S)


def _page(tmp_path: Path, top: int = 20, unmapped: int = 2, **changes):
    """Write a run's page with its samples; (index path, page text, samples)."""
    run, modes, members, eig, images = report_inputs(top=top)
    samples, sample_images = report_samples(members, len(modes), unmapped=unmapped)
    for s in samples:
        s.update(changes)
    out = tmp_path / "r"
    index = Path(
        write_report(
            str(out), run, modes, members, eig, {**images, **sample_images}, samples=samples
        )
    )
    return index, index.read_text(), samples


def _island(text: str) -> dict:
    found = ISLAND.findall(text)
    assert len(found) == 1
    return json.loads(found[0])


def _by_agreement(samples: list[dict]) -> list[str]:
    ranked = sorted(samples, key=lambda s: s["local_agreement"])
    return [s["sample_id"] for s in ranked]


def test_map_data_matches_the_mapped_samples(tmp_path):
    index, text, samples = _page(tmp_path)
    data = _island(text)
    mapped = {s["sample_id"]: s for s in samples if s["map_x"] is not None}
    assert len(mapped) == len(samples) - 2 and sorted(data["id"]) == sorted(mapped)
    x, y = np.array(data["x"]), np.array(data["y"])
    assert x.min() >= 0 and x.max() <= interactive.WIDTH and y.max() <= interactive.HEIGHT
    # one scale for both axes, y drawn upwards: the layout is the rows' up to a similarity
    mx = np.array([mapped[i]["map_x"] for i in data["id"]])
    my = np.array([mapped[i]["map_y"] for i in data["id"]])
    sx, sy = np.polyfit(mx, x, 1)[0], np.polyfit(my, y, 1)[0]
    assert sx > 0 and sy == pytest.approx(-sx, rel=1e-3)
    assert np.abs(x - np.polyval(np.polyfit(mx, x, 1), mx)).max() < 0.1  # rounding only
    for k, sid in enumerate(data["id"]):
        mode = mapped[sid]["top_mode"]
        assert data["mode"][k] == mode and data["label"][k] == mapped[sid]["label"]
        assert data["colours"]["none" if mode is None else str(mode)] == interactive.mode_colour(
            mode
        )
        assert data["thumb"][k] and (index.parent / data["thumb"][k]).is_file()
    assert data["mode"][: data["mode"].count(None)] == [None] * data["mode"].count(None)


def test_lowest_grid_and_samples_table_follow_local_agreement(tmp_path):
    index, text, samples = _page(tmp_path)
    lowest = text.split('<h2 id="lowest">')[1].split("<h2")[0]
    titles = [unescape(t) for t in re.findall(r'<figure title="([^"]*?): ', lowest)]
    assert titles == _by_agreement(samples)[: interactive.LOWEST_SHOWN]
    mode = {s["sample_id"]: s["top_mode"] for s in samples}
    assert [mode[t] for t in titles[:20]] == [0] * 20  # as planted: mode 0's 20 members
    table = text.split('id="samples-table"')[1].split("</table>")[0]
    ids = [
        (k, unescape(sid))
        for k, sid in re.findall(r'<tr id="sample-(\d+)"><td class="id">([^<]*)</td>', table)
    ]
    assert [int(k) for k, _ in ids] == list(range(len(samples)))  # fewer than SAMPLE_ROWS
    assert [sid for _, sid in ids] == _by_agreement(samples)
    assert f"All {len(samples)} samples, lowest local agreement first" in text
    data = _island(text)
    for k, row in enumerate(data["row"]):  # a point names its row of the table
        assert ids[row][1] == data["id"][k]
    # every sample thumbnail written is one the page or its map uses
    used = set(re.findall(r'src="(samples/[0-9a-f]+\.png)"', text)) | set(data["thumb"])
    assert {f"samples/{p.name}" for p in (index.parent / "samples").iterdir()} <= used


def test_points_images_and_rows_are_capped(tmp_path, monkeypatch):
    for name, cap in (("MAP_POINTS", 30), ("MAP_THUMBNAILS", 10), ("SAMPLE_ROWS", 15)):
        monkeypatch.setattr(interactive, name, cap)
    monkeypatch.setattr(interactive, "LOWEST_SHOWN", 5)
    index, text, samples = _page(tmp_path, top=40)
    wanted = interactive.sample_image_ids(samples)
    assert wanted[:5] == _by_agreement(samples)[:5] and 10 < len(wanted) <= 15
    data = _island(text)
    assert len(data["x"]) == 30 and "Drawn: 30 of them, evenly spread." in text
    assert len(list((index.parent / "samples").iterdir())) <= len(wanted)
    assert text.count('<tr id="sample-') == 15
    assert "The 15 samples of 248, lowest local agreement first (the warehouse" in text
    assert sum(r >= 0 for r in data["row"]) <= 15
    assert interactive.sample_image_ids(None) == []


def test_user_strings_in_samples_stay_text(tmp_path):
    _, text, samples = _page(tmp_path)
    assert any(s["label"] == HOSTILE for s in samples)  # mode 4's members, ids too
    assert HOSTILE not in text and text.count("<script") == 2  # the data island and report.js
    data = _island(text)
    assert HOSTILE in data["label"] and any(HOSTILE in i for i in data["id"])


def test_runs_without_samples_or_without_their_parts(tmp_path):
    index, text, _ = _page(tmp_path)
    assert (index.parent / "samples").is_dir() and "Map of the samples" in text
    run, modes, members, eig, images = report_inputs()
    text = Path(write_report(str(tmp_path / "r"), run, modes, members, eig, images)).read_text()
    assert "samples-data" not in text and "Map of the samples" not in text
    assert 'id="lowest"' not in text and not (tmp_path / "r" / "samples").exists()  # none stale
    # no local agreement (--no-local-agreement) and no map: the table alone, in row order
    index, text, samples = _page(tmp_path, local_agreement=None, map_x=None, map_y=None)
    assert "samples-data" not in text and 'id="lowest"' not in text
    assert f"All {len(samples)} samples, in the warehouse's order</summary>" in text
    ids = re.findall(r'<tr id="sample-\d+"><td class="id">([^<]*)</td>', text)
    assert [unescape(i) for i in ids] == [s["sample_id"] for s in samples]


def test_members_past_their_modes_images_use_their_own(tmp_path):
    run, modes, members, eig, images = report_inputs(top=20)
    stacks = {j: stack[:16] for j, stack in images.items()}
    own = {
        m["sample_id"]: images[m["mode"]][m["rank"] - 1] for m in members if m["rank"] in (17, 19)
    }
    index = Path(write_report(str(tmp_path), run, modes, members, eig, {**stacks, **own}))
    card = index.read_text().split('id="mode-3"')[1].split("</section>")[0]
    assert card.count("<figure") == 19 and card.count('class="noimg"') == 1  # #18: no image
    thumb = Image.open(tmp_path / "modes" / "mode_03" / "19.png")
    assert np.array_equal(np.asarray(thumb), images[3][18])
    assert not (tmp_path / "modes" / "mode_03" / "20.png").exists()


def test_text_only_run_lists_its_lowest_agreement_captions(tmp_path):
    run, modes, members, eig, _ = report_inputs(text_only=True)
    samples, _ = report_samples(members, len(modes))
    index = write_report(str(tmp_path), run, modes, members, eig, None, samples=samples)
    lowest = Path(index).read_text().split('<h2 id="lowest">')[1].split("<h2")[0]
    items = re.findall(r"<li><b>[^<]*</b>agreement ([0-9.]+) · ", lowest)
    assert len(items) == interactive.LOWEST_SHOWN and "<figure" not in lowest
    assert [float(a) for a in items] == sorted(float(a) for a in items)
    assert "a red square on a light grey background" in lowest
    assert _island(Path(index).read_text())["thumb"] == [None] * (len(samples))
