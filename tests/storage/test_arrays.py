"""``.npz`` artefacts: what ``save_npz`` writes ``load_npz`` reads back exactly (dtypes, shapes,
memory order, writable copies), on local and in-memory filesystems, and archives written
otherwise (compressed, or by hand with other members) read as ``np.load`` reads them."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest

from speclens.storage.arrays import load_npz, load_npz_bytes, save_npz

ARRAYS = {
    "gram_sum": np.random.default_rng(0).standard_normal((40, 40)),
    "fortran": np.asfortranarray(np.arange(12.0).reshape(3, 4)),
    "count": np.int64(30_000),
    "identical": np.bool_(False),
    "empty": np.zeros((0, 3)),
    "none": np.zeros(0, dtype=np.float32),
    "big_endian": np.arange(7, dtype=">f4"),
    "text": np.array(["cos", "sin"]),
    "ints": np.arange(10, dtype=np.int16).reshape(2, 5),
}


def _same(got: dict, want: dict) -> None:
    assert got.keys() == want.keys()
    for k, v in want.items():
        v = np.asarray(v)
        assert got[k].dtype == v.dtype and got[k].shape == v.shape, k
        assert np.array_equal(got[k], v), k
        assert got[k].flags.writeable, k
    assert got["fortran"].flags.f_contiguous


@pytest.mark.parametrize("root", ["local", "memory://speclens-arrays-test"])
def test_what_save_npz_writes_load_npz_reads(root, tmp_path):
    base = str(tmp_path) if root == "local" else root
    url = save_npz(f"{base}/run/state.npz", **ARRAYS)
    got = load_npz(url)
    _same(got, ARRAYS)
    got["gram_sum"][0, 0] = 1.0  # a copy: changing it changes nothing on disk
    assert load_npz(url)["gram_sum"][0, 0] == ARRAYS["gram_sum"][0, 0]


def test_compressed_and_mixed_archives_read_as_np_load_reads_them():
    buf = io.BytesIO()
    np.savez_compressed(buf, **ARRAYS)
    _same(load_npz_bytes(buf.getvalue()), ARRAYS)
    buf = io.BytesIO()
    np.savez(buf, **ARRAYS)
    with zipfile.ZipFile(buf, "a", compression=zipfile.ZIP_DEFLATED) as z:  # one member deflated
        with z.open("extra.npy", "w") as f:
            np.lib.format.write_array(f, np.arange(5.0))
    got = load_npz_bytes(buf.getvalue())
    _same({k: v for k, v in got.items() if k != "extra"}, ARRAYS)
    assert np.array_equal(got["extra"], np.arange(5.0))
