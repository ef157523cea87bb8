"""The embedded sample: deterministic, factors independent, pixels agree with the factors."""

from __future__ import annotations

import colorsys
from itertools import product

import numpy as np

from speclens.datasets import sample


def test_same_seed_same_images_and_prefix_stable():
    a, fa, ca = sample.generate(40, seed=5)
    b, fb, cb = sample.generate(90, seed=5)
    np.testing.assert_array_equal(a, b[:40])
    for name, values in fa.as_dict().items():
        np.testing.assert_array_equal(values, fb.as_dict()[name][:40])
    assert ca == cb[:40]
    c, _, _ = sample.generate(40, seed=6)
    assert not np.array_equal(a, c)


def test_shard_rendering_equals_whole_rendering():
    f = sample.draw_factors(30, seed=2)
    whole = sample.render(f, np.arange(30), seed=2)
    part = sample.render(f.take(slice(10, 20)), np.arange(10, 20), seed=2)
    np.testing.assert_array_equal(whole[10:20], part)


def test_factors_are_independent_and_balanced():
    f = sample.draw_factors(6000, seed=0)
    coded = {k: f.as_dict()[k] for k in sample.CODED_FACTORS}
    for (na, a), (nb, b) in product(coded.items(), coded.items()):
        if na >= nb:
            continue
        ka, kb = a.max() + 1, b.max() + 1
        table = np.zeros((ka, kb))
        np.add.at(table, (a, b), 1)
        expected = np.outer(table.sum(1), table.sum(0)) / table.sum()
        chi2 = ((table - expected) ** 2 / expected).sum()
        dof = (ka - 1) * (kb - 1)
        assert chi2 < dof + 6 * np.sqrt(2 * dof), (na, nb, chi2)  # far below dependence
    for name, values in coded.items():
        share = np.bincount(values) / values.size
        assert np.allclose(share, 1 / len(sample.CODED_FACTORS[name]), atol=0.03), name
    assert np.corrcoef(f.x, f.size)[0, 1] ** 2 < 0.01


def _hue(rgb) -> float:
    return colorsys.rgb_to_hsv(*(np.asarray(rgb) / 255.0))[0]


def test_pixels_show_the_planted_factors():
    images, f, caps = sample.generate(200, seed=1)
    s = images.shape[1]
    palette_hues = [_hue(c) for c in sample.PALETTE]
    for i in range(200):
        img = images[i].astype(float)
        cx, cy = int(f.x[i] * s), int(f.y[i] * s)
        patch = img[cy - 1 : cy + 2, cx - 1 : cx + 2].reshape(-1, 3)
        if f.texture[i] == 0:
            centre = patch.mean(axis=0)
        else:  # striped: the brightest pixel of the patch is the undarkened colour
            centre = patch[patch.sum(1).argmax()]
        hue = _hue(np.clip(centre, 0, 255))
        dist = [min(abs(hue - h), 1 - abs(hue - h)) for h in palette_hues]
        assert int(np.argmin(dist)) == f.colour[i], i
        corners = np.concatenate([img[:3, :3], img[:3, -3:], img[-3:, :3], img[-3:, -3:]])
        assert abs(corners.mean() - sample.BACKGROUND) < 6  # plain background
        words = " ".join(caps[i])
        assert sample.COLOURS[f.colour[i]] in words and sample.SHAPES[f.shape[i]] in words
    assert (f.label == f.colour * 3 + f.shape).all()


def test_shapes_have_equal_areas_so_shape_does_not_leak_size():
    images, f, _ = sample.generate(400, seed=4)
    diff = np.abs(images.astype(float) - sample.BACKGROUND).mean(axis=3)
    area = (diff > 30).sum(axis=(1, 2))
    for size in (0, 1):
        means = [
            area[(f.shape == k) & (f.size == size) & (f.texture == 0)].mean() for k in range(3)
        ]
        assert max(means) / min(means) < 1.12, means
    small = area[(f.size == 0) & (f.texture == 0)].mean()
    large = area[(f.size == 1) & (f.texture == 0)].mean()
    assert large / small > 1.8
