"""Bytes -> RGB uint8 (size, size, 3), or a quarantine reason; never raises on bad input.

Resize policies (``policy``):

* ``center-crop`` (default): scale so the shorter side is ``size``, keep the centred square.
* ``stretch``: scale the whole image to ``size x size``, ignoring the aspect ratio.

Both resample once with bicubic filtering from the (EXIF-upright) source. JPEGs are first
decoded at a reduced DCT scale when that still leaves at least ``size`` pixels on the
shorter side (``draft``), which is what makes decoding large photos cheap.

Conversions (the row stays ``ok``; each is recorded in the row's ``conversion``):
CMYK, grayscale, palette, YCbCr/LAB/HSV and 1-bit images become RGB; images with an alpha
channel are composited on white; 16-bit images are scaled to 8 bits (value / 257);
EXIF orientation is applied.

Quarantine reasons (``category: detail``; the category is what gets counted):
``empty file``, ``not an image``, ``truncated image``, ``corrupt image``,
``decompression bomb`` (more pixels than ``max_pixels``), plus the read failures of
:func:`read_source`: ``missing file``, ``unreadable file``.
"""

from __future__ import annotations

import hashlib
import io
import time
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from speclens.storage import urls

#: Default pixel limit (width x height): Pillow's own default, ~89 megapixels.
DEFAULT_MAX_PIXELS = 89_478_485
POLICIES = ("center-crop", "stretch")
WHITE = (255, 255, 255)
_ORIENTATION = 0x0112
_NOT_RETRIED = {
    FileNotFoundError: "missing file",
    PermissionError: "unreadable file",
    IsADirectoryError: "unreadable file",
    NotADirectoryError: "unreadable file",
}


@dataclass
class Decoded:
    image: np.ndarray | None  # (size, size, 3) uint8, None when quarantined
    reason: str = ""  # quarantine reason, "" when ok
    conversions: tuple[str, ...] = ()


@dataclass
class SourceBytes:
    data: bytes | None
    reason: str = ""  # why the bytes could not be read, "" when read


def read_source(url: str, attempts: int = 3, backoff_s: float = 0.2) -> SourceBytes:
    """Read a source file. A missing, forbidden or non-regular file is quarantined at once;
    other OS errors are tried ``attempts`` times before the file is quarantined."""
    for attempt in range(attempts):
        try:
            return SourceBytes(urls.read_bytes(url))
        except tuple(_NOT_RETRIED) as exc:
            kind = next(v for k, v in _NOT_RETRIED.items() if isinstance(exc, k))
            return SourceBytes(None, f"{kind}: {exc.strerror or type(exc).__name__}")
        except OSError as exc:
            if attempt + 1 == attempts:
                return SourceBytes(None, f"unreadable file: {exc}")
            time.sleep(backoff_s * (attempt + 1))
    raise AssertionError("unreachable")


def sha256_hex(data: bytes | None) -> str:
    return hashlib.sha256(data).hexdigest() if data is not None else ""


def decode_image(
    data: bytes,
    size: int,
    *,
    policy: str = "center-crop",
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> Decoded:
    """Decode ``data`` to an RGB uint8 array of shape (size, size, 3), or say why not."""
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")
    if not data:
        return Decoded(None, "empty file: 0 bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        return Decoded(None, f"decompression bomb: {exc}")
    except UnidentifiedImageError:
        return Decoded(None, "not an image: no image format recognises the bytes")
    except (OSError, ValueError, SyntaxError) as exc:
        return Decoded(None, f"corrupt image: {exc}")
    width, height = img.size
    if width * height > max_pixels:
        return Decoded(None, f"decompression bomb: {width}x{height} px > limit {max_pixels}")
    if width == 0 or height == 0:
        return Decoded(None, f"corrupt image: {width}x{height} px")
    try:
        return _convert(img, size, policy)
    except Image.DecompressionBombError as exc:
        return Decoded(None, f"decompression bomb: {exc}")
    except OSError as exc:
        text = str(exc)
        if "truncated" in text or "broken data stream" in text or "end of file" in text.lower():
            return Decoded(None, f"truncated image: {text}")
        return Decoded(None, f"corrupt image: {text}")
    except (ValueError, SyntaxError, EOFError, Image.UnidentifiedImageError) as exc:
        return Decoded(None, f"corrupt image: {exc}")


def _convert(img: Image.Image, size: int, policy: str) -> Decoded:
    conversions: list[str] = []
    try:
        orientation = img.getexif().get(_ORIENTATION, 1)
    except Exception:  # a broken EXIF block only loses the orientation
        orientation = 1
    if img.format == "JPEG" and img.mode in ("RGB", "L", "CMYK"):
        scale = size / min(img.size)
        img.draft(
            img.mode, (max(size, int(img.size[0] * scale)), max(size, int(img.size[1] * scale)))
        )
    img.load()
    if orientation not in (1, None):
        img = ImageOps.exif_transpose(img)
        conversions.append(f"exif orientation {orientation} applied")
    img, mode_note = _to_rgb(img)
    if mode_note:
        conversions.append(mode_note)
    w, h = img.size
    if policy == "center-crop":
        side = min(w, h)
        box = ((w - side) / 2, (h - side) / 2, (w + side) / 2, (h + side) / 2)
    else:
        box = (0, 0, w, h)
    if img.size != (size, size) or box != (0, 0, size, size):
        img = img.resize((size, size), Image.Resampling.BICUBIC, box=box)
    arr = np.asarray(img, dtype=np.uint8)
    return Decoded(arr, "", tuple(conversions))


def _to_rgb(img: Image.Image) -> tuple[Image.Image, str]:
    mode = img.mode
    if mode == "RGB":
        return img, ""
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        arr = np.asarray(img)
        if mode == "I" and arr.max(initial=0) <= 255:
            out = arr.clip(0, 255).astype(np.uint8)
            return Image.fromarray(out, "L").convert("RGB"), "mode I->RGB"
        out = np.round(arr.astype(np.float64) / 257.0).clip(0, 255).astype(np.uint8)
        return Image.fromarray(out, "L").convert("RGB"), f"16-bit {mode}->8-bit RGB"
    if mode == "F":
        out = np.asarray(img).clip(0, 255).astype(np.uint8)
        return Image.fromarray(out, "L").convert("RGB"), "mode F->RGB"
    if mode == "P":
        has_alpha = "transparency" in img.info or img.palette.mode == "RGBA"
        img = img.convert("RGBA" if has_alpha else "RGB")
        if not has_alpha:
            return img, "mode P->RGB"
        return _on_white(img), "mode P->RGB (transparency on white)"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        return _on_white(img.convert("RGBA")), f"mode {mode}->RGB (alpha on white)"
    return img.convert("RGB"), f"mode {mode}->RGB"


def _on_white(rgba: Image.Image) -> Image.Image:
    background = Image.new("RGB", rgba.size, WHITE)
    background.paste(rgba, mask=rgba.getchannel("A"))
    return background
