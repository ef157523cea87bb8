"""``--format hf``: a Hugging Face dataset folder: Parquet shards under ``data/`` and a dataset
card, ``README.md``, whose YAML front matter declares the ``default`` config (``configs:``,
the ``train`` split = ``data/train-*``) and the features, the thumbnails as an ``Image``
feature. ``datasets.load_dataset(folder)`` loads it, and pushed to the Hub
(``huggingface-cli upload``) its viewer shows the images.

The ``image`` column is what ``datasets`` writes for an ``Image`` feature: a struct of the PNG
``bytes`` and a file name ``path``; each shard's schema carries the features too (the
``huggingface`` metadata key), so one shard read on its own decodes its images as well.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from speclens.export.rows import described, flat_schema
from speclens.export.run import ExportRun

#: Rows per shard: at most 10,000 thumbnails (tens of MB) a file.
SHARD_ROWS = 10_000
IMAGE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
DTYPES = {pa.string(): "string", pa.int32(): "int32", pa.float64(): "float64"}


def features(schema: pa.Schema) -> dict:
    """The ``datasets`` features of the flat columns and the image (JSON form)."""
    out = {f.name: {"dtype": DTYPES[f.type], "_type": "Value"} for f in schema}
    out["image"] = {"_type": "Image"}
    return out


def write(er: ExportRun, folder: Path, batches, shard_rows: int | None = None) -> dict:
    """Write the rows of ``batches`` as shards of ``shard_rows`` rows (default
    :data:`SHARD_ROWS`), then the card."""
    shard_rows = shard_rows or SHARD_ROWS
    flat = flat_schema(er.n_modes)
    feats = features(flat)
    hf_meta = {b"huggingface": json.dumps({"info": {"features": feats}}).encode()}
    schema = described(flat.append(pa.field("image", IMAGE)), er, hf_meta)
    n = er.samples.num_rows
    (folder / "data").mkdir()
    shards = Shards(folder, schema, max(1, -(-n // shard_rows)), shard_rows)
    with_images = 0
    try:
        for batch in batches:
            shards.write(with_image(batch, shards.rows))
            with_images += sum(b is not None for b in batch.images)
    finally:
        shards.close()
    (folder / "README.md").write_text(card(er, feats, shards.rows), encoding="utf-8")
    return {"files": ["README.md", *shards.names], "rows": shards.rows, "with_images": with_images}


def with_image(batch, start: int) -> pa.Table:
    """The batch's flat rows and their ``Image`` structs (null: no image)."""
    values = [
        None if data is None else {"bytes": data, "path": f"{i:07d}.png"}
        for i, data in enumerate(batch.images, start)
    ]
    return batch.table.append_column("image", pa.array(values, IMAGE))


class Shards:
    """``data/train-<k>-of-<total>.parquet``, ``shard_rows`` rows each, written in order."""

    def __init__(self, folder: Path, schema: pa.Schema, total: int, shard_rows: int):
        self.folder, self.schema, self.shard_rows = folder, schema, shard_rows
        self.names = [f"data/train-{k:05d}-of-{total:05d}.parquet" for k in range(total)]
        self.rows = 0
        self.writer: pq.ParquetWriter | None = None

    def write(self, table: pa.Table) -> None:
        """Append ``table``, starting the next shard where one is full."""
        offset = 0
        while offset < table.num_rows:
            if self.rows % self.shard_rows == 0:
                self.close()
                name = self.names[self.rows // self.shard_rows]
                self.writer = pq.ParquetWriter(self.folder / name, self.schema)
            part = table.slice(offset, self.shard_rows - self.rows % self.shard_rows)
            self.writer.write_table(part)
            offset += part.num_rows
            self.rows += part.num_rows

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def card(er: ExportRun, feats: dict, n: int) -> str:
    """The dataset card: YAML front matter (configs, features), then what the rows are."""
    run = er.run
    front = {
        "configs": [
            {
                "config_name": "default",
                "data_files": [{"split": "train", "path": "data/train-*"}],
            }
        ],
        "dataset_info": {
            "features": [
                {"name": k, "dtype": "image" if v["_type"] == "Image" else v["dtype"]}
                for k, v in feats.items()
            ]
        },
        "tags": ["speclens", "embedding-comparison"],
    }
    return f"""---
{yaml.safe_dump(front, sort_keys=False).rstrip()}
---

# speclens run {run["run_id"]}: {run["encoder_x"]} vs {run["encoder_y"]}

{n} samples of `{run["dataset"]}` with where the two embeddings differ, by SPEC (spectral
pairwise embedding comparison), exported by `speclens export`.

```python
from datasets import load_dataset

ds = load_dataset("path/to/this/folder", split="train")
```

Columns: `score_<mode>` every mode's score of the sample; `top_mode`, `mode_label` the mode it
belongs to most, `mode_captured_by` the encoder that ties that mode's samples together (the
other does not); `local_agreement` the Jaccard overlap of its nearest neighbours in the two
embeddings (low: its neighbourhood changed); `map_x`, `map_y` its place on the run's 2-D map
({run.get("map_method") or "no map"}); `image` a PNG thumbnail (null: no image).
The modes:

{mode_lines(er)}
"""


def mode_lines(er: ExportRun) -> str:
    """One line per mode: number, eigenvalue, direction, summary."""
    if not er.modes:
        return "(no modes rows)"
    return "\n".join(
        f"- mode {m['mode']}: eigenvalue {m['eigenvalue']:.4g} ({m['direction']}), {m['summary']}"
        for m in er.modes
    )
