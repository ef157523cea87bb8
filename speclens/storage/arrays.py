"""Small named arrays at fsspec URLs: ``.npz`` files for run artefacts (frequencies, Gram
state, solution), each written in one put."""

from __future__ import annotations

import io

import numpy as np

from speclens.storage import urls


def save_npz(url: str, **arrays) -> str:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    urls.write_bytes(url, buf.getvalue())
    return url


def load_npz(url: str) -> dict[str, np.ndarray]:
    return load_npz_bytes(urls.read_bytes(url))


def load_npz_bytes(data: bytes) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` file's bytes (already read, e.g. to check their digest)."""
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}
