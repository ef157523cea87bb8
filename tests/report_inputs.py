"""Synthetic report inputs: a colour-vs-shape run of generated 64x64 images (coloured shapes
on grey), with warehouse-shaped rows, and a text-only variant."""

from __future__ import annotations

import numpy as np
from warehouse_rows import run_rows

COLOURS = {
    "red": (220, 38, 38),
    "green": (22, 163, 74),
    "blue": (37, 99, 235),
    "yellow": (234, 179, 8),
    "grey": (150, 150, 150),
}
SHAPES = ("square", "circle", "triangle")
HOSTILE = '<script>alert("x")</script> & "quoted"'


def shape_image(colour: str, shape: str, rng, size: int = 64) -> np.ndarray:
    img = np.full((size, size, 3), 200, np.uint8) + rng.integers(0, 12, (size, size, 3), np.uint8)
    yy, xx = np.mgrid[:size, :size]
    cy, cx, r = rng.integers(20, 44), rng.integers(20, 44), rng.integers(10, 16)
    if shape == "square":
        mask = (abs(yy - cy) <= r) & (abs(xx - cx) <= r)
    elif shape == "circle":
        mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    else:
        mask = (yy - cy + r >= 0) & (yy - cy <= r) & (abs(xx - cx) <= (yy - cy + r) / 2)
    img[mask] = COLOURS[colour]
    return img


def report_inputs(text_only: bool = False, top: int = 8):
    """(run, modes, members, eigenvalues, images) like the compare flow passes them."""
    rows = run_rows(0)
    run = {**rows["runs"][0], "library_versions": '{"numpy": "2.1.3"}'}
    modes = rows["modes"]
    modes[4]["label"] = HOSTILE  # a label straight from a user's folder names
    rng = np.random.default_rng(0)
    members, images = [], {}
    for m in modes:
        j, label = m["mode"], m["label"]
        imgs = []
        for r in range(top):
            is_colour = label in COLOURS
            colour = label if is_colour else list(COLOURS)[r % 4]
            shape = label if label in SHAPES else SHAPES[r % 3]
            if r >= round(m["label_share"] * top):
                colour, shape = "grey", SHAPES[(r + 1) % 3]
            lab = colour if is_colour else (shape if label in SHAPES else label)
            caption = f"a {colour} {shape} on a light grey background"
            if j == 4 and r == 0:
                caption = HOSTILE
            members.append(
                {
                    "run_id": run["run_id"],
                    "mode": j,
                    "rank": r + 1,
                    "sample_id": f"train/{lab}/{100 * j + r:05d}.png",
                    "score": 0.09 - 0.004 * r,
                    "label": None if text_only else lab,
                    "caption": caption,
                }
            )
            imgs.append(shape_image(colour, shape, rng))
        images[j] = np.stack(imgs)
    eig = np.array([m["eigenvalue"] for m in modes])
    return run, modes, members, eig, None if text_only else images
