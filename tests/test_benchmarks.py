"""The benchmark scripts still run (at toy sizes: their figures are not checked here, only
that they run to the end and print what they promise)."""

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
            "compare.py",
            "--n 600 --dx 8 --dy 8 --rff-dim 16 --shard 200 --workers 1",
            "with/without uncertainty at n=600",
        ),
        ("gram.py", "--n 2000 --dx 8 --dy 8 --rff-dim 16 --chunk 500", "CPU rate ratio"),
        ("align.py", "--n 200 --epochs 2", "label "),
        (
            "bandwidth.py",
            "--n 100 --scales 0.5 --dims 50,100 --seeds 2 --n-modes 2",
            "auto (target 5%): tried",
        ),
        (
            "uncertainty.py",
            "--n 100 --rff-dim 50 --n-modes 2 --replicates 3",
            "exact between plug-in and held-out",
        ),
        (
            "ingest.py",
            "--n 48 --side 96 --size 32 --shard-size 16 --repeats 1",
            "ratio ingest(1 worker) / bare:",
        ),
        ("commands.py", "--n 10", "speclens info"),
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
