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
    with np.load(io.BytesIO(urls.read_bytes(url)), allow_pickle=False) as data:
        return {k: data[k] for k in data.files}
