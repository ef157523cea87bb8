"""``--format parquet``: one Parquet file, ``samples.parquet``, of the flat rows (see
:mod:`speclens.export.rows`) and a column ``image``: the path, relative to the folder, of the
sample's PNG thumbnail under ``images/`` (null: no image). Plain columns and files any tool
reads: DuckDB, pandas, Spark, a spreadsheet, an image viewer."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from speclens.export.rows import Batch, described, flat_schema
from speclens.export.run import ExportRun

FILE = "samples.parquet"


def image_path(i: int) -> str:
    """Where row ``i``'s thumbnail goes: 1,000 files a folder."""
    return f"images/{i // 1000:04d}/{i:07d}.png"


def write(er: ExportRun, folder: Path, batches) -> dict:
    """Write the rows of ``batches`` and their thumbnails into ``folder``."""
    schema = described(flat_schema(er.n_modes).append(pa.field("image", pa.string())), er)
    start = with_images = 0
    with pq.ParquetWriter(folder / FILE, schema) as writer:
        for batch in batches:
            paths = save_images(batch, folder, start)
            writer.write_table(batch.table.append_column("image", pa.array(paths, pa.string())))
            start += batch.table.num_rows
            with_images += sum(p is not None for p in paths)
    return {"files": [FILE, "images/"], "rows": start, "with_images": with_images}


def save_images(batch: Batch, folder: Path, start: int) -> list[str | None]:
    """Each thumbnail of ``batch`` as a file; the relative paths (None: no image)."""
    paths: list[str | None] = []
    for i, data in enumerate(batch.images, start):
        if data is None:
            paths.append(None)
            continue
        path = image_path(i)
        target = folder / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        paths.append(path)
    return paths
