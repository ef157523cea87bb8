"""Thumbnails of a run's page, written beside its index.html as PNG files:

    modes/mode_03/01.png       a mode's members, by rank (from the mode's image stack, or from
                               the member's own image when the stack is shorter)
    samples/<hash>.png         a sample the map, its tooltips or the lowest-agreement grid show
                               (its name: a hash of the sample id, which may hold any character)

``images`` reach the report as one dict with two kinds of key: an int is a mode number whose
value is its top members' images in rank order, (k, H, W[, C]); a str is a sample id whose value
is that one sample's image, (H, W[, C]). A thumbnail is a (relative path, small) pair, small
when the image is at most :data:`SMALL_IMAGE` pixels wide (the page draws it with sharp pixels).
"""

from __future__ import annotations

import hashlib

import numpy as np

from speclens.report.plots import as_rgb, thumbnail_png
from speclens.storage import urls

SMALL_IMAGE = 96  # thumbnails at most this wide are drawn with sharp pixels

Thumb = tuple[str, bool]


def split_images(images) -> tuple[dict[int, np.ndarray], dict[str, np.ndarray]]:
    """``images`` (None or the dict above) as (mode stacks by mode number, images by sample id)."""
    stacks, singles = {}, {}
    for key, value in (images or {}).items():
        if isinstance(key, str):
            singles[key] = value
        else:
            stacks[int(key)] = value
    return stacks, singles


def _write(out_dir: str, rel: str, image: np.ndarray) -> Thumb:
    urls.write_bytes(urls.join(out_dir, rel), thumbnail_png(image))
    return rel, image.shape[1] <= SMALL_IMAGE


def _one(image) -> np.ndarray:
    """One image, (H, W[, C]) in any dtype as_rgb takes, as (H, W, 3) uint8."""
    return as_rgb(np.asarray(image)[None])[0]


def write_mode_thumbs(
    out_dir: str, mode: int, stack, members: list[dict], singles: dict[str, np.ndarray]
) -> list[Thumb | None]:
    """Write a mode's member thumbnails (every image of its ``stack``; then, for members past
    the stack, their own image from ``singles`` when there is one); returns one entry per member
    in rank order (None: no image), without trailing Nones."""
    written: dict[int, Thumb] = {}
    if stack is not None and len(stack):
        for rank, image in enumerate(as_rgb(stack), start=1):
            written[rank] = _write(out_dir, f"modes/mode_{mode:02d}/{rank:02d}.png", image)
    out: list[Thumb | None] = []
    for rank, m in enumerate(members, start=1):
        sid = m.get("sample_id")
        if rank not in written and sid in singles:
            rel = f"modes/mode_{mode:02d}/{rank:02d}.png"
            written[rank] = _write(out_dir, rel, _one(singles[sid]))
        out.append(written.get(rank))
    while out and out[-1] is None:
        out.pop()
    return out


def sample_path(sample_id: str) -> str:
    """Where a sample's own thumbnail goes, relative to the page."""
    return f"samples/{hashlib.sha1(str(sample_id).encode('utf-8')).hexdigest()[:16]}.png"


def write_sample_thumbs(
    out_dir: str, sample_ids: list[str], singles: dict[str, np.ndarray], known: dict[str, Thumb]
) -> dict[str, Thumb]:
    """Thumbnails of ``sample_ids``: the ``known`` one (a member's) or, written now, the one
    from ``singles``; samples with neither are left out."""
    out = {}
    for sid in sample_ids:
        if sid in known:
            out[sid] = known[sid]
        elif sid in singles:
            out[sid] = _write(out_dir, sample_path(sid), _one(singles[sid]))
    return out
