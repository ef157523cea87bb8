"""``speclens export``: a run's ``samples`` rows with each sample's image, in forms other tools
open: ``parquet`` (one file and PNG thumbnails beside it), ``atlas`` (a folder Apple's
Embedding Atlas opens) and ``hf`` (a Hugging Face dataset folder that
``datasets.load_dataset`` loads).

:func:`export_run` checks every input first (:mod:`speclens.export.run`), writes the folder
under a temporary name and renames it onto ``out`` at the end (:mod:`speclens.export.folder`);
the rows come in batches with their thumbnails (:mod:`speclens.export.rows`).
"""

from __future__ import annotations

from pathlib import Path

from speclens.export import atlas, folder, hf, parquet
from speclens.export.rows import THUMBNAIL, batches
from speclens.export.run import load_run, local_out

__all__ = ["FORMATS", "export_run"]

#: Format name -> writer(run, folder, batches) -> summary.
FORMATS = {"parquet": parquet.write, "atlas": atlas.write, "hf": hf.write}


def export_run(
    run_id: str,
    fmt: str,
    out: str,
    root: str = "speclens-out",
    warehouse: str | None = None,
    dataset: str | None = None,
    thumbnail: int = THUMBNAIL,
    progress: bool = True,
) -> dict:
    """Export run ``run_id`` as ``fmt`` into the new (or empty) folder ``out``; returns what
    was written: ``out``, ``format``, ``rows``, ``with_images``, ``files`` (and ``command``
    for atlas)."""
    from speclens.errors import InputError

    if fmt not in FORMATS:
        raise InputError(f"unknown export format {fmt!r}; pass one of {', '.join(FORMATS)}.")
    if thumbnail < 1:
        raise InputError(f"--thumbnail {thumbnail} is not a size; pass pixels >= 1.")
    target = Path(local_out(out))
    folder.check_out(target)
    er = load_run(run_id, root, warehouse, dataset)
    with folder.staged(target) as tmp:
        summary = FORMATS[fmt](er, tmp, batches(er, thumbnail, progress=progress))
    return {"out": str(target), "format": fmt, "run_id": run_id, **summary}
