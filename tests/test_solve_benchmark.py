"""benchmarks/solve.py still runs (at toy size: its figures are not checked, only that it runs
to the end, prints both settings, and finds the new numbers equal to the old ones)."""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys

import pytest

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "solve.py"


@pytest.mark.integration
def test_the_solve_benchmark_runs_at_toy_size(tmp_path):
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--n", "600", "--rff-dim", "60", "--repeats", "1"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    assert "uncertainty off:" in out and "uncertainty on:" in out and "total" in out
    found = re.search(r"eigenvalues ([0-9.e+-]+) of the largest", out)
    assert found and float(found.group(1)) < 1e-10, out[-800:]
