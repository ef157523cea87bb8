"""``--format atlas``: a folder that Apple's Embedding Atlas (``pip install embedding-atlas``)
opens with the run's own 2-D map, the samples' thumbnails and their text.

What embedding-atlas reads (its CLI, ``embedding_atlas/cli.py``, and its frontend): a Parquet
file loaded with pandas; ``--x``/``--y`` name precomputed coordinate columns (given both, it
computes no projection); ``--text`` a text column (search, tooltips, automatic map labels);
``--image`` an image column, which its frontend shows when a value is image bytes (a binary
column, or a ``{bytes, path}`` struct) or a ``data:``/``http(s):`` URL string, not a relative
file path, so the thumbnails go into the file as PNG bytes; ``--vector`` a list-of-floats
column it projects itself with UMAP, used here when the run has no map. The folder's
``open.sh`` and ``README.md`` hold the command line.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from speclens.export.rows import described, flat_schema
from speclens.export.run import ExportRun

FILE = "samples.parquet"
MAPPED = "SELECT * FROM data WHERE map_x IS NOT NULL AND map_y IS NOT NULL"


def command(er: ExportRun) -> list[str]:
    """The embedding-atlas command line: the run's map when every sample is on it; only the
    mapped samples when some are; else a UMAP of the mode scores computed by embedding-atlas."""
    args = ["embedding-atlas", FILE, "--text", "text", "--image", "image"]
    mapped = er.samples.num_rows - max(er.samples.column(c).null_count for c in ("map_x", "map_y"))
    if mapped == 0:
        return [*args, "--vector", "scores"]
    args += ["--x", "map_x", "--y", "map_y"]
    return args if mapped == er.samples.num_rows else [*args, "--query", MAPPED]


def write(er: ExportRun, folder: Path, batches) -> dict:
    """Write the rows of ``batches`` with their thumbnails as bytes, then the command."""
    schema = flat_schema(er.n_modes)
    schema = described(
        schema.append(pa.field("text", pa.string()))
        .append(pa.field("scores", pa.list_(pa.float64())))
        .append(pa.field("image", pa.binary())),
        er,
    )
    rows = with_images = 0
    with pq.ParquetWriter(folder / FILE, schema) as writer:
        for batch in batches:
            table = batch.table
            table = table.append_column("text", text_column(table))
            table = table.append_column("scores", batch.scores.cast(pa.list_(pa.float64())))
            table = table.append_column("image", pa.array(batch.images, pa.binary()))
            writer.write_table(table)
            rows += table.num_rows
            with_images += sum(b is not None for b in batch.images)
    args = command(er)
    write_opener(folder, args)
    (folder / "README.md").write_text(readme(er, args), encoding="utf-8")
    return {
        "files": [FILE, "open.sh", "README.md"],
        "rows": rows,
        "with_images": with_images,
        "command": shlex.join(args),
    }


def text_column(table: pa.Table) -> pa.Array:
    """What embedding-atlas searches and labels the map with: the caption, else the label,
    else the sample id."""
    return pc.coalesce(table.column("caption"), table.column("label"), table.column("sample_id"))


def write_opener(folder: Path, args: list[str]) -> None:
    """``open.sh``: the command, run from the folder, extra flags passed on (``--port``)."""
    script = (
        "#!/bin/sh\n"
        "# Open this export in Embedding Atlas (pip install embedding-atlas); extra flags are\n"
        "# passed on, e.g. sh open.sh --port 5056 --host 0.0.0.0\n"
        f'cd "$(dirname "$0")" && exec {shlex.join(args)} "$@"\n'
    )
    path = folder / "open.sh"
    path.write_text(script, encoding="utf-8")
    path.chmod(0o755)


def readme(er: ExportRun, args: list[str]) -> str:
    """How to open the folder, and what its columns are."""
    run = er.run
    return f"""# Run {run["run_id"]} in Embedding Atlas

{er.samples.num_rows} samples of `{run["dataset"]}`: where `{run["encoder_x"]}` and
`{run["encoder_y"]}` differ (SPEC), exported by `speclens export`.

Open it (`pip install embedding-atlas`; it serves on http://localhost:5055):

```bash
{shlex.join(args)}
```

or `sh open.sh` (extra flags are passed on, e.g. `--port 5056`). embedding-atlas loads the
whole file, thumbnails included, into memory: for a large run add `--sample 100000`.

Columns: `map_x`, `map_y` the run's 2-D map ({run.get("map_method") or "no map"});
`mode_label` the mode the sample belongs to most (colour the map by it),
`mode_captured_by` the encoder that ties that mode's samples together; `score_<mode>` every
mode's score; `local_agreement` the overlap of the sample's nearest neighbours in the two
embeddings (low: its neighbourhood changed); `image` a PNG thumbnail; `text` the caption,
else the label.
"""
