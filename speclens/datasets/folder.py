"""Generic image folder reader: every file with an image extension under a root, unlabelled.

``sample_id`` is the path relative to the root; subfolders are walked recursively; files
without an image extension are skipped and counted. Labels are -1 (use the ImageNet train
reader for a ``<class>/<image>`` layout with labels).
"""

from __future__ import annotations

from speclens.datasets.plan import Plan, build_plan, list_files, require_dir, require_rows


def plan_folder(root: str) -> Plan:
    require_dir(root, "image folder", "pass an existing folder of images")
    entries, dropped = list_files(root)
    table = build_plan(
        rel_ids=[e.rel for e in entries],
        sources=[e.url for e in entries],
        sizes=[e.size for e in entries],
        labels=[-1] * len(entries),
    )
    require_rows(
        table,
        f"image folder {root}",
        "it needs files ending in .jpg, .jpeg, .png, .bmp, .gif, .webp or .tif",
    )
    return Plan(
        table, [], {"kind": "folder", "path": root}, dropped={k: v for k, v in dropped.items() if v}
    )
