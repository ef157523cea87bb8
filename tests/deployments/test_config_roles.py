"""An audit's roles, series and alerts in its config: what they become (pairs, names, the ids
embedded), and bad ones as one line per problem before anything runs, the series reused for
another dataset included (read from the warehouse)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner
from warehouse_rows import run_rows

from speclens.cli import app
from speclens.config import ConfigError, validate_config
from speclens.errors import ConfigError as SeriesError
from speclens.storage.warehouse import Warehouse
from speclens.tasks.checks import check_series

SAMPLE = {"source": {"kind": "sample", "n": 50}}


def _problems(raw: dict) -> list[str]:
    with pytest.raises(ConfigError) as info:
        validate_config({**SAMPLE, **raw})
    return info.value.problems


def test_a_baseline_and_candidates_become_pairs_names_and_embeddings(tmp_path):
    store = tmp_path / "x.zarr"
    store.mkdir()
    cfg = validate_config(
        {
            **SAMPLE,
            "baseline": "hue-hist",
            "candidates": ["hue-hist", {"encoder": "grad-hist", "name": "nightly"}, str(store)],
            "alerts": {"p_value": 0.05},
        }
    )
    assert cfg.roles == [
        ("hue-hist", "hue-hist"),
        ("hue-hist", "hue-hist"),
        ("grad-hist", "nightly"),
        (str(store), str(store)),
    ]
    assert cfg.pairs == [(0, 1), (0, 2), (0, 3)]
    assert cfg.embed_ids == ["hue-hist", "grad-hist"]  # each id once; a store is not embedded
    assert cfg.alerts.p_value == 0.05 and cfg.alerts.spec_diff == 0.02 and cfg.alerts.new_mode
    every = validate_config({**SAMPLE, "encoders": ["hue-hist", "grad-hist", "pixels"]})
    assert every.pairs == [(0, 1), (0, 2), (1, 2)] and every.roles[2] == ("pixels", "pixels")


@pytest.mark.parametrize(
    "raw, lines",
    [
        (
            {"baseline": "clip", "candidates": ["grad-hist"]},
            ["baseline: unknown encoder 'clip'"],
        ),
        (
            {"baseline": "hue-hist", "candidates": [{"encoder": "grad-hist", "nam": "x"}]},
            ["candidates[0].nam: unknown key; did you mean 'name'?"],
        ),
        (
            {"baseline": "hue-hist", "candidates": ["/nowhere/emb.zarr"]},
            ["candidates[0].encoder: no embedding store at /nowhere/emb.zarr"],
        ),
        ({"baseline": "hue-hist"}, ["candidates: missing; list the encoders compared"]),
        (
            {"baseline": "hue-hist", "candidates": ["grad-hist"], "encoders": ["a", "b"]},
            ["encoders[0]: unknown encoder 'a'", "encoders[1]: unknown encoder 'b'"],
        ),
        (
            {"baseline": "hue-hist", "candidates": ["grad-hist"], "encoders": ["pixels", "hog"]},
            ["encoders: given with baseline/candidates"],
        ),
        (
            {"baseline": "hue-hist", "candidates": ["grad-hist", "pixels"], "series": "s"},
            ["series: names one comparison but this audit makes 2"],
        ),
        (
            {
                "encoders": ["hue-hist", "grad-hist"],
                "alerts": {"p_value": 1.5, "spec_diff": -1, "jacard": 0.5},
            },
            [
                "alerts.spec_diff: must be greater than or equal to 0, got -1; set a held-out",
                "alerts.p_value: must be less than 1, got 1.5; set a significance level",
                "alerts.jacard: unknown key; did you mean 'jaccard'?",
            ],
        ),
        (
            {"encoders": ["hue-hist", "grad-hist"], "alerts": {"jaccard": 0}},
            ["alerts.jaccard: must be greater than 0, got 0; set the member overlap"],
        ),
    ],
)
def test_bad_roles_and_alerts_are_one_line_each(raw, lines):
    problems = _problems(raw)
    assert len(problems) == len(lines), problems
    for got, want in zip(problems, lines, strict=True):
        assert got.startswith(want) and ";" in got, got


def _series_run(wh: Warehouse, run_id: str, series: str, dataset: str) -> None:
    row = run_rows(0, run_id)["runs"][0]
    row.update(series=series, dataset=dataset)
    wh.write("runs", run_id, [row])


def test_a_series_name_already_used_for_another_dataset_is_refused(tmp_path):
    wh_url = str(tmp_path / "warehouse")
    check_series(wh_url, "nightly", "/data/a.zarr")  # an empty warehouse: any name is free
    _series_run(Warehouse(wh_url), "r1", "nightly", "/data/a.zarr")
    check_series(wh_url, "nightly", "/data/a.zarr")  # the same dataset: the series goes on
    with pytest.raises(SeriesError) as info:
        check_series(wh_url, "nightly", "/data/b.zarr")
    (line,) = info.value.problems
    assert line.startswith("series: 'nightly' already holds runs of /data/a.zarr") and ";" in line


def test_the_cli_refuses_a_reused_series_before_anything_runs(tmp_path):
    wh_url, root = str(tmp_path / "warehouse"), tmp_path / "out"
    _series_run(Warehouse(wh_url), "r1", "nightly", "/data/a.zarr")
    args = ["audit", "--sample", "20", "--baseline", "hue-hist", "--candidate", "grad-hist"]
    args += ["--series", "nightly", "--root", str(root), "--warehouse", wh_url]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "nothing was run" in result.output and "series: 'nightly' already holds" in result.output
    assert not root.exists()
