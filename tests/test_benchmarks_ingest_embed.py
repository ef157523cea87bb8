"""The ingest and embed benchmarks still run (at toy sizes: their figures are not checked
here, only that they run to the end and print what they promise)."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

BENCHMARKS = pathlib.Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.mark.integration
@pytest.mark.parametrize(
    ("script", "args", "prints"),
    [
        (
            "ingest.py",
            "--n 48 --side 96 --size 32 --shard-size 16 --repeats 1",
            "ratio ingest(1 worker) / bare:",
        ),
        (
            "embed.py",
            "--encoder timm:resnet18@random --n 16 --image-size 32 --batch-size 8 --repeats 1 "
            "--min-seconds 0 --skip-gpu",
            "bare, channels_last on",
        ),
    ],
)
def test_a_benchmark_runs_at_toy_size(script, args, prints, tmp_path):
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args.split()],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert prints in result.stdout
