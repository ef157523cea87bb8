"""Weight-free encoders: shapes, exact values where known, and which image factor each one sees."""

import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from speclens.encoders import EncoderError, get_encoder

SIZE = 48
RED, BLUE, GREEN = (210, 40, 40), (40, 70, 220), (40, 170, 60)


def draw(shape: str, colour, cx=0.5, cy=0.5, seed=0, noise=6.0) -> np.ndarray:
    """One shape of area ~ (0.35 side)^2 on a grey background with pixel noise."""
    yy, xx = (np.mgrid[0:SIZE, 0:SIZE] + 0.5) / SIZE
    half = 0.175
    if shape == "square":
        mask = (np.abs(xx - cx) <= half) & (np.abs(yy - cy) <= half)
    else:
        mask = (xx - cx) ** 2 + (yy - cy) ** 2 <= (2 * half) ** 2 / np.pi
    img = np.where(mask[..., None], np.array(colour, float), 128.0)
    img = img + np.random.default_rng(seed).normal(0, noise, img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def batch(*images):
    return np.stack(images)


def dist(a, b):
    return float(np.linalg.norm(a - b))


@pytest.mark.parametrize(
    "name,dim", [("pixels", 768), ("hue-hist", 12), ("grad-hist", 18), ("hog", 288)]
)
def test_contract(name, dim):
    enc = get_encoder(name, device="cpu")
    assert (enc.id, enc.modality, enc.dim, enc.dtype, enc.input_size) == (
        name,
        "image",
        dim,
        np.float32,
        None,
    )
    images = batch(draw("square", RED), draw("circle", BLUE, seed=1), draw("square", GREEN, 0.4))
    out = enc.encode(images)
    assert out.shape == (3, dim) and out.dtype == np.float32 and np.isfinite(out).all()
    np.testing.assert_array_equal(out, enc.embed(enc.prepare(images)))
    # any image size works; rows do not depend on the other rows of the batch
    np.testing.assert_allclose(enc.encode(images[1:2]), out[1:2], rtol=1e-5, atol=1e-6)
    assert enc.encode(np.zeros((2, 20, 33, 3), np.uint8)).shape == (2, dim)
    prov = enc.provenance()
    json.dumps(prov)
    assert prov["weights_sha256"] == "none" and prov["output_dim"] == dim
    assert prov["normalisation"].startswith("none") and prov["dtype"] == "float32"
    assert prov["library_versions"]["torch"]


def test_prepare_is_thread_safe_and_rejects_bad_input():
    enc = get_encoder("grad-hist", device="cpu")
    images = [batch(draw("square", RED, seed=i), draw("circle", BLUE, seed=i)) for i in range(6)]
    with ThreadPoolExecutor(3) as pool:
        prepared = list(pool.map(enc.prepare, images))
    for p, imgs in zip(prepared, images, strict=True):
        np.testing.assert_array_equal(enc.embed(p), enc.encode(imgs))
    with pytest.raises(EncoderError, match="uint8"):
        enc.prepare(images[0].astype(np.float32))
    with pytest.raises(EncoderError, match=r"\(B, H, W, 3\)"):
        enc.prepare(images[0][..., 0])


def test_pixels_is_an_area_average_in_unit_range():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    out = get_encoder("pixels", device="cpu").encode(images)
    expected = images.reshape(2, 16, 2, 16, 2, 3).mean(axis=(2, 4)) / 255.0
    np.testing.assert_allclose(out, expected.reshape(2, -1), atol=1e-6)
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_hue_hist_sees_colour_not_shape():
    enc = get_encoder("hue-hist", device="cpu")
    red_sq, red_ci, blue_sq, green_ci = enc.encode(
        batch(
            draw("square", RED),
            draw("circle", RED, 0.35, 0.6, seed=1),
            draw("square", BLUE, seed=2),
            draw("circle", GREEN, seed=3),
        )
    )
    same_colour = dist(red_sq, red_ci)
    assert same_colour < 0.1
    assert dist(red_sq, blue_sq) > 5 * same_colour
    assert dist(red_ci, green_ci) > 5 * same_colour
    # Hellinger form: unit L2 norm, squares are the histogram; red sits at hue ~ 0 degrees
    # (bins 11 and 0), the grey background's noise spreads thinly over all bins
    np.testing.assert_allclose(np.linalg.norm(red_sq), 1.0, atol=1e-5)
    assert (red_sq[[11, 0]] ** 2).sum() > 0.5
    assert int(np.argmax(blue_sq)) in (7, 8)  # ~ 228 degrees
    # a colourless image has no hue
    grey = np.full((1, SIZE, SIZE, 3), 128, np.uint8)
    np.testing.assert_array_equal(enc.encode(grey), np.zeros((1, 12), np.float32))


def test_grad_hist_sees_shape_not_colour_or_position():
    enc = get_encoder("grad-hist", device="cpu")
    red_sq, blue_sq, moved_sq, red_ci, green_ci = enc.encode(
        batch(
            draw("square", RED),
            draw("square", BLUE, seed=1),
            draw("square", GREEN, 0.35, 0.62, seed=2),
            draw("circle", RED, seed=3),
            draw("circle", GREEN, 0.6, 0.4, seed=4),
        )
    )
    same_shape = max(dist(red_sq, blue_sq), dist(red_sq, moved_sq), dist(red_ci, green_ci))
    assert same_shape < 0.25  # pixel noise among the strongest 10% keeps it above zero
    assert dist(red_sq, red_ci) > 2 * same_shape
    assert dist(blue_sq, green_ci) > 2 * same_shape
    # a square's edges are horizontal and vertical: bins around 0 and 90 degrees dominate
    axis_bins = red_sq[[0, 17, 8, 9]] ** 2
    assert axis_bins.sum() > 0.7
    np.testing.assert_allclose(np.linalg.norm(red_sq), 1.0, atol=1e-5)


def test_grad_hist_orientation_is_unsigned():
    # a dark-on-light and a light-on-dark edge give the same histogram
    img = np.full((1, SIZE, SIZE, 3), 60, np.uint8)
    img[:, :, SIZE // 2 :] = 200
    a = get_encoder("grad-hist", device="cpu").encode(np.concatenate([img, 255 - img]))
    np.testing.assert_allclose(a[0], a[1], atol=1e-6)
    assert a[0, [0, 17]].sum() > 1.0  # vertical edge: gradient along x, orientation ~ 0 degrees


def test_hog_pools_to_grad_hist_exactly():
    """Summing each orientation bin's square over the 16 cells gives grad-hist squared."""
    images = batch(draw("square", RED), draw("circle", BLUE, 0.3, 0.7, seed=1))
    odd = np.random.default_rng(0).integers(0, 256, (2, 37, 53, 3), dtype=np.uint8)
    for imgs in (images, odd):
        hog = get_encoder("hog", device="cpu").encode(imgs)
        grad = get_encoder("grad-hist", device="cpu").encode(imgs)
        pooled = (hog.reshape(len(imgs), 16, 18) ** 2).sum(axis=1)
        np.testing.assert_allclose(pooled, grad**2, atol=1e-6)
        np.testing.assert_allclose(np.linalg.norm(hog, axis=1), 1.0, atol=1e-5)


def test_hog_sees_shape_and_position_not_colour():
    enc = get_encoder("hog", device="cpu")
    red_sq, blue_sq, moved_sq = enc.encode(
        batch(draw("square", RED), draw("square", BLUE, seed=1), draw("square", RED, 0.3, 0.3, 2))
    )
    # the cells a centred square's edges fall in, and nothing in the far corner cell
    cells = (red_sq.reshape(4, 4, 18) ** 2).sum(axis=2)
    assert cells[0, 0] < 0.03 and cells[1:3, 1:3].sum() > 0.8
    # recolouring moves it by pixel noise only; moving the square changes the cells
    assert dist(red_sq, blue_sq) < 0.5
    assert dist(red_sq, moved_sq) > 2 * dist(red_sq, blue_sq)


WEIGHT_FREE = ["pixels", "hue-hist", "grad-hist", "hog"]


def _torch_twin(name):
    """The same encoder on torch's CPU device: the code a CUDA device runs."""
    torch = pytest.importorskip("torch")
    from speclens.encoders import classical
    from speclens.encoders.registry import parse_encoder_id

    cls = {
        "pixels": classical.PixelsEncoder,
        "hue-hist": classical.HueHistEncoder,
        "grad-hist": classical.GradHistEncoder,
        "hog": classical.HogEncoder,
    }[name]
    return cls(parse_encoder_id(name), torch.device("cpu"))


@pytest.mark.parametrize("name", WEIGHT_FREE)
@pytest.mark.parametrize("shape", [(3, 48, 48), (2, 20, 33), (40, 64, 64), (1, 3, 3)])
def test_the_numpy_path_equals_the_torch_path(name, shape):
    """The CPU's numpy code against the torch code, on noise and on flat shapes (many equal
    gradient magnitudes at the strongest-10% cut): equal to float32 rounding. Batches of 40
    run in pieces on two threads: equal to one image at a time (the histograms bit for bit;
    the pixels' pooling products may block differently by batch size)."""
    rng = np.random.default_rng(sum(shape))
    images = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    flat = np.full((*shape, 3), 128, np.uint8)
    flat[:, shape[1] // 4 : shape[1] // 2, shape[2] // 3 : 2 * shape[2] // 3] = RED
    numpy_enc, torch_enc = get_encoder(name, device="cpu"), _torch_twin(name)
    assert str(numpy_enc.device) == "cpu" and numpy_enc.provenance()["backend"] == "numpy"
    for imgs in (images, flat):
        a, b = numpy_enc.encode(imgs), torch_enc.encode(imgs)
        assert a.dtype == np.float32 and a.shape == b.shape
        # float32 rounding of the inputs to the soft bins, times the bins' slope (x 18)
        np.testing.assert_allclose(a, b, atol=2e-4 if imgs is flat else 5e-6, rtol=0)
        one_by_one = np.vstack([numpy_enc.encode(imgs[i : i + 1]) for i in range(len(imgs))])
        if name == "pixels":
            np.testing.assert_allclose(a, one_by_one, atol=1e-6, rtol=0)
        else:
            np.testing.assert_array_equal(a, one_by_one)


def test_ties_at_the_cut_keep_the_lowest_pixel_indices():
    """Of magnitudes equal to the k-th largest, both paths keep the lowest indices."""
    torch = pytest.importorskip("torch")
    from speclens.encoders import classical, classical_numpy

    mag = np.array([[1.0, 3.0, 2.0, 2.0, 2.0, 0.0, 2.0]], dtype=np.float32)
    np.testing.assert_array_equal(classical_numpy.strongest(mag, 3), [[1, 2, 3]])
    np.testing.assert_array_equal(classical._strongest(torch.from_numpy(mag), 3), [[1, 2, 3]])
    rng = np.random.default_rng(0)
    mag = rng.integers(0, 5, (6, 50)).astype(np.float32)
    for k in (1, 7, 50):
        a = classical_numpy.strongest(mag, k)
        b = classical._strongest(torch.from_numpy(mag), k).numpy()
        np.testing.assert_array_equal(a, b)
        kept = np.take_along_axis(mag, a, 1)
        assert np.all(np.sort(kept, 1)[:, ::-1] == -np.sort(-mag, 1)[:, :k])


def test_a_cpu_embed_of_a_weight_free_encoder_imports_no_torch():
    code = (
        "import sys, numpy as np\n"
        "from speclens.encoders import get_encoder\n"
        "for name in ('pixels', 'hue-hist', 'grad-hist', 'hog'):\n"
        "    for device in ('cpu', 'auto'):\n"
        "        enc = get_encoder(name, device=device)\n"
        "        enc.encode(np.zeros((2, 16, 16, 3), np.uint8))\n"
        "        enc.provenance()\n"
        "print('torch' in sys.modules)\n"
    )
    import subprocess
    import sys

    from speclens.encoders.base import cuda_impossible

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    # 'auto' asks torch only where a GPU driver is present
    assert out.stdout.strip() == ("False" if cuda_impossible() else out.stdout.strip())
    if cuda_impossible():
        assert out.stdout.strip() == "False"
