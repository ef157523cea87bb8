"""decode_image: every bad or unusual input is converted (recorded) or quarantined (reason)."""

from __future__ import annotations

import numpy as np
import pytest
from imagefiles import BLUE, RED, encode, halves, png_header_bomb
from PIL import Image

from speclens.datasets.decode import decode_image


def test_plain_rgb_is_ok_with_no_conversion():
    d = decode_image(encode(halves(), "PNG"), 20)
    assert d.reason == "" and d.conversions == ()
    assert d.image.shape == (20, 20, 3) and d.image.dtype == np.uint8


def test_center_crop_keeps_the_centred_square_exactly():
    arr = np.random.default_rng(0).integers(0, 256, (30, 60, 3), dtype=np.uint8)
    d = decode_image(encode(Image.fromarray(arr), "PNG"), 30)
    np.testing.assert_array_equal(d.image, arr[:, 15:45])


def test_stretch_policy_keeps_the_whole_width():
    d = decode_image(encode(halves(40, 20), "PNG"), 20, policy="stretch")
    assert tuple(d.image[10, 2]) == RED and tuple(d.image[10, 17]) == BLUE


def test_truncated_jpeg_is_quarantined():
    data = encode(halves(200, 200), "JPEG", quality=90)
    d = decode_image(data[: len(data) // 2], 32)
    assert d.image is None and d.reason.startswith("truncated image")


def test_zero_byte_file_is_quarantined():
    d = decode_image(b"", 32)
    assert d.image is None and d.reason.startswith("empty file")


def test_non_image_bytes_are_quarantined():
    d = decode_image(b"this is a text file with a .jpg name\n" * 10, 32)
    assert d.image is None and d.reason.startswith("not an image")


def test_cmyk_jpeg_is_converted_to_rgb():
    img = Image.new("CMYK", (40, 40), (0, 255, 255, 0))  # pure red in CMYK
    d = decode_image(encode(img, "JPEG", quality=95), 16)
    assert d.reason == "" and "mode CMYK->RGB" in d.conversions
    r, g, b = d.image.reshape(-1, 3).mean(axis=0)
    assert r > 230 and g < 25 and b < 25


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_grayscale_is_converted_to_rgb(fmt):
    d = decode_image(encode(Image.new("L", (20, 20), 77), fmt), 20)
    assert "mode L->RGB" in d.conversions
    assert np.abs(d.image.astype(int) - 77).max() <= 1


def test_palette_is_converted_and_transparency_goes_on_white():
    img = Image.new("P", (20, 20), 1)
    img.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    d = decode_image(encode(img, "PNG"), 20)
    assert "mode P->RGB" in d.conversions and tuple(d.image[5, 5]) == (10, 200, 30)
    img.info["transparency"] = 1
    d = decode_image(encode(img, "PNG", transparency=1), 20)
    assert d.conversions == ("mode P->RGB (transparency on white)",)
    assert tuple(d.image[5, 5]) == (255, 255, 255)


def test_rgba_is_composited_on_white():
    arr = np.zeros((20, 20, 4), np.uint8)
    arr[:, :10] = (255, 0, 0, 0)  # fully transparent red: white
    arr[:, 10:] = (0, 0, 255, 255)  # opaque blue
    d = decode_image(encode(Image.fromarray(arr, "RGBA"), "PNG"), 20)
    assert d.conversions == ("mode RGBA->RGB (alpha on white)",)
    assert tuple(d.image[10, 2]) == (255, 255, 255) and tuple(d.image[10, 17]) == (0, 0, 255)


def test_16_bit_png_is_scaled_not_clipped():
    arr = np.zeros((20, 20), np.uint16)
    arr[:, :10] = 128 * 257  # mid grey in 16 bits
    arr[:, 10:] = 10 * 257  # a naive convert would clip both halves to 255
    d = decode_image(encode(Image.fromarray(arr), "PNG"), 20)
    assert d.reason == "" and any(c.startswith("16-bit") for c in d.conversions)
    assert tuple(d.image[10, 2]) == (128, 128, 128) and tuple(d.image[10, 17]) == (10, 10, 10)


def test_exif_rotation_is_applied():
    exif = Image.Exif()
    exif[0x0112] = 6  # stored image must be turned 90 degrees clockwise to display
    d = decode_image(encode(halves(40, 20), "JPEG", quality=95, exif=exif), 16)
    assert d.conversions == ("exif orientation 6 applied",)
    top, bottom = d.image[1].astype(int), d.image[-2].astype(int)
    assert (top[:, 0] > 180).all() and (top[:, 2] < 60).all()  # the left half is now on top
    assert (bottom[:, 2] > 180).all() and (bottom[:, 0] < 60).all()


def test_pixel_limit_quarantines_large_images():
    data = encode(Image.new("RGB", (100, 60)), "PNG")
    assert decode_image(data, 16, max_pixels=6000).reason == ""
    d = decode_image(data, 16, max_pixels=5999)
    assert d.image is None and d.reason == "decompression bomb: 100x60 px > limit 5999"


def test_tiny_file_claiming_huge_dimensions_is_a_bomb():
    d = decode_image(png_header_bomb(60_000, 60_000), 16)
    assert d.image is None and d.reason.startswith("decompression bomb")
