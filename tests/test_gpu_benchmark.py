"""benchmarks/gpu.py starts and prints every part's figures (on the CPU, at toy sizes: the
figures themselves mean nothing here; the script is meant for a lent GPU machine)."""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys

import pytest

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "gpu.py"
NUMBER = r"([\d,]+(?:\.\d+)?)"


def _number(pattern: str, text: str) -> float:
    match = re.search(pattern, text)
    assert match, f"no line matching {pattern!r} in:\n{text}"
    return float(match.group(1).replace(",", ""))


@pytest.mark.integration
@pytest.mark.slow  # 40-80 s on the shared two-core machine: three processes, a cluster, flows
def test_gpu_benchmark_runs_on_cpu(flow_env, tmp_path):
    gram_rows, compare_rows = 3000, 1500  # 3000: the last accumulator block is a partial one
    result = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--device",
            "cpu",
            "--gram-rows",
            str(gram_rows),
            "--compare-rows",
            str(compare_rows),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
        env=flow_env,  # the session's Prefect server: the script starts none
    )
    out = result.stdout
    assert result.returncode == 0, out[-3000:] + result.stderr[-3000:]
    assert "torch " in out.splitlines()[0] and "cpu" in out.splitlines()[0]

    # (a) the accumulator and torch.mm, their rates and ratio, the rows asked for
    assert _number(rf"torch\.mm P\^T Q, same shapes\s*:\s*{NUMBER} s", out) > 0
    assert _number(rf"torch\.mm P\^T Q.*?{NUMBER} GFLOP/s", out) > 0
    assert _number(rf"update\(\) from the host\s*:.*?{NUMBER} GFLOP/s", out) > 0
    assert _number(rf"update\(\) from the host\s*:.*?{NUMBER} rows/s", out) > 0
    assert _number(rf"update\(\) from the host.*\brows {NUMBER}", out) == gram_rows
    assert _number(rf"rate ratio accumulator/torch\.mm\s*:\s*{NUMBER}", out) > 0

    # (b) the compare stages: seconds, rows/s, the Gram's row count
    assert f"(b) compare of {compare_rows:,} rows on cpu" in out
    for stage in ("plan", "gram", "solve", "scores"):
        assert _number(rf"\n  {stage}\s+{NUMBER} s", out) > 0
    assert _number(rf"\n  gram\s+[\d.]+ s\s+{NUMBER} rows/s", out) > 0
    assert _number(rf"\n  scores\s+[\d.]+ s\s+{NUMBER} rows/s", out) > 0
    assert _number(rf"\n  total\s+{NUMBER} s", out) > 0
    assert _number(rf"Gram rows {NUMBER}", out) == compare_rows

    # (c) the embed flow and the bare forward, their ratio
    assert "(c) embed open_clip:speclens-tiny-vit@random on cpu" in out
    assert _number(rf"bare model\.encode_image\s+{NUMBER} images/s", out) > 0
    assert _number(rf"pipeline, shard phase\s+{NUMBER} images/s", out) > 0
    assert _number(rf"ratio pipeline / bare\s+{NUMBER}", out) > 0

    # the summary: every target with its verdict
    summary = out[out.index("\nsummary (cpu") :]
    for target in (
        "(a) Gram rate accumulator / torch.mm",
        "(b) compare of 1,500 rows",
        "(c) embed pipeline / bare forward",
        "(c) embed pipeline images/s",
    ):
        assert target in summary, summary
    assert len(re.findall(r"\b(met|MISSED)\b", summary)) == 3, summary
    assert "FAILED" not in out
