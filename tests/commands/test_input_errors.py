"""A mistake in a command's input is one sentence on stderr and exit code 2, found before any
Prefect server or Dask cluster starts, with no traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def _run(args: list[str], tmp_path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}  # else one is used
    env.update(
        PREFECT_HOME=str(tmp_path / "prefect"),
        HF_HUB_OFFLINE="1",
        HF_HUB_CACHE=str(tmp_path / "hub"),
        TORCH_HOME=str(tmp_path / "torch"),
    )
    return subprocess.run(
        [sys.executable, "-m", "speclens.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )


@pytest.mark.parametrize(
    ("args", "sentence"),
    [
        (
            ["embed", "--dataset", "{ds}", "--encoder", "open_clip:ViT-B-32@laion2b_s34b_b79"],
            "open_clip has no pretrained tag 'laion2b_s34b_b79' for ViT-B-32 (known tags:",
        ),
        (
            ["embed", "--dataset", "{ds}", "--encoder", "open_clip:ViT-B-32@laion2b_s34b_b79k"],
            "weights for open_clip model ViT-B-32 with tag 'laion2b_s34b_b79k' were not found",
        ),
        (
            ["embed", "--dataset", "{ds}", "--encoder", "hue-hist", "--encoder", "hue_hist"],
            "unknown encoder 'hue_hist'",
        ),
        (
            ["embed", "--dataset", "{ds}", "--encoder", "hue-hist"],
            "is not a speclens dataset store (nothing is there)",
        ),
        (
            ["compare", "--dataset", "{ds}", "--encoder", "hue-hist", "--encoder", "grad-hist"],
            "is not a speclens dataset store (nothing is there)",
        ),
        (
            ["compare", "--dataset", "{ds}", "--encoder", "a", "--encoder", "b", "--n-modes", "0"],
            "compare.n_modes: must be greater than 0, got 0",
        ),
        (
            [
                "audit",
                "--sample",
                "10",
                "--encoder",
                "hue-hist",
                "--encoder",
                "open_clip:ViT-B-3@openai",
            ],
            "open_clip has no architecture 'ViT-B-3' (close matches",
        ),
        (
            [
                "align",
                "--dataset",
                "{ds}",
                "--encoder",
                "hog",
                "--reference",
                "grad-hist",
                "--mode",
                "finetune",
            ],
            "--mode finetune fine-tunes an open_clip image tower",
        ),
        (["ingest", "folder", "{ds}", "--out", "{out}"], "image folder"),
        (
            [
                *("compare", "--dataset", "{ds}", "--encoder", "a", "--encoder", "b"),
                *("--sigma-scale", "0.5,-1"),
            ],
            "compare.sigma_scale: -1.0 is not a number > 0; use numbers > 0, e.g. 0.25,0.5,1,2",
        ),
        (
            [
                "compare",
                "--dataset",
                "{ds}",
                "--encoder",
                "a",
                "--encoder",
                "b",
                "--rff-dim",
                "lots",
            ],
            "compare.rff_dim: 'lots' is not a whole number > 0 or auto",
        ),
        (
            [
                *("align", "--dataset", "{ds}", "--encoder", "hog", "--reference", "grad-hist"),
                *("--sigma-scale", "0.3,0.6"),
            ],
            "align compares before and after at one bandwidth",
        ),
    ],
)
def test_input_errors_end_before_any_server_in_one_sentence(tmp_path, args, sentence):
    ds, out = str(tmp_path / "missing.zarr"), str(tmp_path / "out.zarr")
    result = _run([a.format(ds=ds, out=out) for a in args], tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("error: ") and sentence in result.stderr, result.stderr
    listed = "problem(s), nothing was run:" in lines[0]  # a config: one indented line each
    assert len(lines) == 1 or (listed and all(line.startswith("  ") for line in lines[1:]))
    assert "Traceback" not in result.stdout + result.stderr
    assert "temporary server" not in result.stdout + result.stderr  # nothing was started
    assert not os.path.exists(out)
