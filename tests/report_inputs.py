"""Synthetic report inputs: a colour-vs-shape run of generated 64x64 images (coloured shapes
on grey), with warehouse-shaped rows, a text-only variant, and the run's ``samples`` rows with
their images."""

from __future__ import annotations

import numpy as np
from warehouse_rows import run_rows, sample_rows

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


def report_inputs(text_only: bool = False, top: int = 8, hostile: bool = True):
    """(run, modes, members, eigenvalues, images) like the compare flow passes them."""
    rows = run_rows(0)
    run = {**rows["runs"][0], "library_versions": '{"numpy": "2.1.3"}'}
    modes = rows["modes"]
    if hostile:  # a label straight from a user's folder names (False: a picture for the docs)
        modes[4]["label"] = HOSTILE
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
            if j == 4 and r == 0 and hostile:
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


def _map_place(mode, share, n_modes: int, rng) -> tuple[float, float]:
    """A UMAP-like place: each mode a blob on a circle (its top members at the centre), samples
    in no mode scattered around the middle."""
    if mode is None:
        return tuple(float(v) for v in rng.normal(0, 0.8, 2))
    angle = 2 * np.pi * mode / n_modes
    spread = 0.3 + 0.7 * (1 - min(max(share or 0, 0), 1))
    x, y = 3 * np.cos(angle), 3 * np.sin(angle)
    return float(x + rng.normal(0, spread)), float(y + rng.normal(0, spread))


def report_samples(members: list[dict], n_modes: int, unmapped: int = 0, seed: int = 1):
    """(samples, images by sample id) for ``report_inputs``' members: a row per distinct member
    (warehouse_rows.sample_rows: mode 0's members have the lowest local agreement), then 8 in no
    mode; agreements made distinct (row order breaks no tie), the last ``unmapped`` rows off the
    map, and a grey-shape image for every sample."""
    rng = np.random.default_rng(seed)
    samples = sample_rows(members, n_modes, rng)
    for i, s in enumerate(samples):
        s["local_agreement"] = round(min(s["local_agreement"], 0.95) + 0.0001 * i, 4)
        s["map_x"], s["map_y"] = _map_place(s.get("top_mode"), s.get("top_share"), n_modes, rng)
    for s in samples[len(samples) - unmapped :]:
        s["map_x"] = s["map_y"] = None
    images = {
        s["sample_id"]: shape_image("grey", SHAPES[i % 3], rng) for i, s in enumerate(samples)
    }
    return samples, images
