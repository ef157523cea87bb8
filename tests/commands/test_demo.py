"""`speclens demo` end to end at a small size (the sample audit and SPEC-align; the real-digits
audit is skipped with --mnist-n 0): the command runs what `make demo` runs, so a stage whose
call no longer matches the flow it calls fails here, not on a new user's machine. And the
engine-only `--planted` demo against its planted truth and the exact eigenvalues."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


@pytest.mark.integration
def test_demo_runs_the_audit_and_the_alignment(flow_env, tmp_path):
    cmd = [os.path.join(os.path.dirname(sys.executable), "speclens"), "demo"]
    cmd += ["--root", str(tmp_path), "--n", "300", "--mnist-n", "0", "--rff-dim", "200"]
    result = subprocess.run(cmd, env=flow_env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "Audit of the embedded sample (300 images)" in out
    assert "modes captured by hue-hist and not by grad-hist are significant" in out
    assert "held-out" in out and "stability" in out  # each mode's line carries its uncertainty
    assert "SPEC-align of hog to grad-hist" in out and "report" in out
    assert (tmp_path / "reports" / "demo-align-0").is_dir()


@pytest.mark.parametrize("seed", [0, 1])
def test_planted_demo_brackets_the_exact_eigenvalues(seed):
    """`speclens demo --planted`: the planted group of each end is its top mode, found in full,
    and its exact n x n eigenvalue lies between the held-out and the plug-in value."""
    from typer.testing import CliRunner

    from speclens.cli import app

    args = ["demo", "--planted", "--n", "800", "--n-modes", "2", "--rff-dim", "300"]
    result = CliRunner().invoke(app, [*args, "--seed", str(seed)])
    assert result.exit_code == 0, result.output
    rows = [line.split() for line in result.output.splitlines() if line.strip()[:1].isdigit()]
    assert [r[0] for r in rows] == ["0", "1", "2", "3"]
    for row, planted in ((rows[0], -2), (rows[2], -1)):  # "in A" / "in B" columns
        assert row[planted] == "100%"
        plug_in, held_out, exact = float(row[2]), float(row[5]), float(row[6])
        assert min(plug_in, held_out) <= exact <= max(plug_in, held_out), row
        assert float(row[7]) < 0.01  # Holm-adjusted p
