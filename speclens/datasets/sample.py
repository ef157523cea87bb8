"""The embedded default dataset: generated shapes with known, independent factors.

Every image is one shape on a plain grey background (value 128) with Gaussian pixel noise
(sd 8). The factors are drawn independently and uniformly:

=========  ====================================================================
colour     red, green, blue, yellow
shape      circle, square, triangle (equal areas, so shape does not leak size)
size       small, large (circle radius 0.13 / 0.19 of the image side)
texture    solid, striped (diagonal stripes in a darker shade of the *same* hue)
x, y       centre of the shape, uniform in [0.32, 0.68] of the side (every shape fits)
=========  ====================================================================

The background stays plain on purpose: a random background swamps colour statistics and
blurs colour modes (measured in docs/benchmarks.md, "Embedded sample").

``label`` is colour x shape ("red circle", 12 classes); each image has three captions written
from its factors. Determinism: factor ``f`` of sample ``i`` depends only on (seed, f, i) and
the pixel noise of sample ``i`` only on (seed, i), so the first k samples are the same for
every n >= k and any shard can be rendered on its own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

COLOURS = ("red", "green", "blue", "yellow")
PALETTE = np.array([(205, 40, 40), (40, 165, 60), (45, 75, 215), (225, 200, 40)], dtype=np.float32)
SHAPES = ("circle", "square", "triangle")
SIZES = ("small", "large")
RADII = np.array([0.13, 0.19], dtype=np.float32)
TEXTURES = ("solid", "striped")
STRIPE_SHADE = 0.55
POSITION_RANGE = (0.32, 0.68)
BACKGROUND = 128.0
NOISE_SD = 8.0
DEFAULT_N = 3000
DEFAULT_SIZE = 64
CODED_FACTORS = {"colour": COLOURS, "shape": SHAPES, "size": SIZES, "texture": TEXTURES}
FACTOR_NAMES = {**{k: list(v) for k, v in CODED_FACTORS.items()}, "x": None, "y": None}
LABEL_NAMES = [f"{c} {s}" for c in COLOURS for s in SHAPES]


@dataclass
class SampleFactors:
    """Ground truth of ``n`` generated samples; ``x``/``y`` are fractions of the side."""

    colour: np.ndarray
    shape: np.ndarray
    size: np.ndarray
    texture: np.ndarray
    x: np.ndarray
    y: np.ndarray

    @property
    def n(self) -> int:
        return int(self.colour.shape[0])

    @property
    def label(self) -> np.ndarray:
        return (self.colour.astype(np.int32) * len(SHAPES) + self.shape).astype(np.int32)

    def as_dict(self) -> dict[str, np.ndarray]:
        return {k: getattr(self, k) for k in FACTOR_NAMES}

    def take(self, index) -> SampleFactors:
        return SampleFactors(**{k: v[index] for k, v in self.as_dict().items()})


def _stream(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def draw_factors(n: int, seed: int = 0) -> SampleFactors:
    """The factors of samples 0..n-1 (each factor from its own seeded stream)."""
    coded = {
        name: _stream(seed, 0, k).integers(0, len(values), size=n).astype(np.int8)
        for k, (name, values) in enumerate(CODED_FACTORS.items())
    }
    lo, hi = POSITION_RANGE
    x = (lo + (hi - lo) * _stream(seed, 0, 10).random(n)).astype(np.float32)
    y = (lo + (hi - lo) * _stream(seed, 0, 11).random(n)).astype(np.float32)
    return SampleFactors(**coded, x=x, y=y)


def sample_ids(indices) -> list[str]:
    return [f"shapes/{int(i):06d}" for i in indices]


def captions(f: SampleFactors) -> list[list[str]]:
    """Three captions per sample, each naming some of its factors."""
    lo, hi = POSITION_RANGE
    third = (hi - lo) / 3
    out = []
    for c, s, z, t, x, y in zip(f.colour, f.shape, f.size, f.texture, f.x, f.y, strict=True):
        colour, shape, size = COLOURS[c], SHAPES[s], SIZES[z]
        col = ("left", "centre", "right")[min(int((x - lo) / third), 2)]
        row = ("top", "middle", "bottom")[min(int((y - lo) / third), 2)]
        where = "centre" if (row, col) == ("middle", "centre") else f"{row} {col}"
        out.append(
            [
                f"a {size} {colour} {shape}" + (" with stripes" if t else ""),
                f"a {TEXTURES[t]} {colour} {shape} on a grey background",
                f"a {colour} {shape} in the {where} of the picture",
            ]
        )
    return out


def render(
    f: SampleFactors, indices, seed: int = 0, image_size: int = DEFAULT_SIZE, batch: int = 64
) -> np.ndarray:
    """Images (k, S, S, 3) uint8 of the samples whose factors are ``f`` and global indices
    ``indices`` (the indices seed the pixel noise)."""
    indices = np.asarray(indices)
    k, s = f.n, int(image_size)
    if indices.shape != (k,):
        raise ValueError(f"indices must have shape ({k},), got {indices.shape}")
    out = np.empty((k, s, s, 3), dtype=np.uint8)
    coords = (np.arange(s, dtype=np.float32) + 0.5) / s
    u, v = coords[None, None, :], coords[None, :, None]
    period = max(2, round(s / 10))
    band = np.floor((np.arange(s)[None, :] + np.arange(s)[:, None]) / (period / 2)) % 2 == 1
    for a in range(0, k, batch):
        b = slice(a, min(a + batch, k))
        r = RADII[f.size[b]][:, None, None]
        dx, dy = u - f.x[b][:, None, None], v - f.y[b][:, None, None]
        circle = dx * dx + dy * dy <= r * r
        half = r * (math.sqrt(math.pi) / 2)
        square = (np.abs(dx) <= half) & (np.abs(dy) <= half)
        height = r * math.sqrt(math.pi * math.sqrt(3))  # equilateral, area pi r^2
        triangle = (dy <= height / 3) & (np.abs(dx) * math.sqrt(3) <= dy + 2 * height / 3)
        shape = f.shape[b][:, None, None]
        mask = np.where(shape == 0, circle, np.where(shape == 1, square, triangle))
        shade = np.where((f.texture[b][:, None, None] == 1) & band[None], STRIPE_SHADE, 1.0)
        colour = PALETTE[f.colour[b]][:, None, None, :] * shade[..., None]
        img = np.where(mask[..., None], colour, np.float32(BACKGROUND))
        for j, i in enumerate(indices[b]):
            noise = _stream(seed, 1, int(i)).standard_normal((s, s, 3), dtype=np.float32)
            out[a + j] = np.clip(np.rint(img[j] + NOISE_SD * noise), 0, 255).astype(np.uint8)
    return out


def generate(n: int = DEFAULT_N, seed: int = 0, image_size: int = DEFAULT_SIZE):
    """All of it in memory: (images, factors, captions). For tests and exports."""
    f = draw_factors(n, seed)
    return render(f, np.arange(n), seed, image_size), f, captions(f)
