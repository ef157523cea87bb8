"""The export's folder: written whole under a hidden temporary name beside ``--out``, then
renamed onto it, so a failed or interrupted export leaves no half-written folder and never
touches files already there (an ``--out`` that holds anything is refused up front)."""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

from speclens.errors import InputError


def check_out(out: Path) -> None:
    """``out`` must be new or an empty folder."""
    if out.is_dir() and not any(out.iterdir()):
        return
    if out.exists() or out.is_symlink():
        raise InputError(
            f"--out {out} already exists and is not an empty folder; pass a new or empty "
            "folder (nothing was written)."
        )


@contextlib.contextmanager
def staged(out: Path) -> Iterator[Path]:
    """A temporary folder beside ``out`` to write into; renamed onto ``out`` when the block
    ends without an error, removed when it raises."""
    check_out(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:12]}"
    tmp.mkdir()
    try:
        yield tmp
        check_out(out)  # someone may have written there meanwhile
        os.replace(tmp, out)  # onto an empty folder, too (POSIX rename)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
