"""The audit config: the shipped example is valid and matches prefect.yaml; a malformed config
yields one line per problem (key and fix), all at once, and `speclens audit` then runs nothing."""

from __future__ import annotations

import inspect
import json
import pathlib

import pytest
import yaml
from typer.testing import CliRunner

from speclens.cli import app
from speclens.config import ConfigError, load_config, validate_config
from speclens.tasks.params import CompareParams

REPO = pathlib.Path(__file__).parents[2]
EXAMPLE = REPO / "deployments" / "audit.yaml"
PREFECT_YAML = REPO / "deployments" / "prefect.yaml"


def _problems(raw: dict) -> list[str]:
    with pytest.raises(ConfigError) as info:
        validate_config(raw)
    return info.value.problems


def test_the_shipped_example_is_valid_and_its_schedule_is_the_deployments():
    cfg = load_config(str(EXAMPLE))
    assert cfg.encoders == ["hue-hist", "grad-hist"] and cfg.source.kind == "sample"
    assert cfg.dataset == "speclens-out/datasets/sample.zarr"
    assert cfg.warehouse_url == "speclens-out/warehouse"
    deployments = yaml.safe_load(PREFECT_YAML.read_text())["deployments"]
    nightly = next(d for d in deployments if d["name"] == "nightly")
    assert nightly["schedules"][0]["cron"] == cfg.schedule
    assert nightly["parameters"]["config"] == "deployments/audit.yaml"


def test_overrides_and_defaults_are_laid_key_by_key():
    cfg = load_config(
        str(EXAMPLE),
        overrides={"source": {"n": 200}, "compare": {"rff_dim": 64}},
        defaults={"root": "/from/variable", "warehouse": "s3://bucket/wh"},
    )
    assert (cfg.source.n, cfg.source.seed) == (200, 0)
    assert cfg.compare.rff_dim == 64 and cfg.compare.n_modes == 4
    assert cfg.root == "/from/variable" and cfg.warehouse_url == "s3://bucket/wh"
    assert load_config(str(EXAMPLE), defaults={"root": "/x"}, overrides={"root": "/y"}).root == "/y"


def test_every_problem_is_reported_at_once_with_its_key_and_fix(tmp_path):
    problems = _problems(
        {
            "name": "my data",
            "source": {"kind": "coco", "images": str(tmp_path / "nope"), "n": 5},
            "encoders": ["hue-hist", "clip"],
            "compare": {"kernel": "rbf", "rff_dim": -5, "n_mode": 3},
            "device": "gpu",
            "schedule": "61 * * * *",
            "dask_adress": "tcp://h:1",
        }
    )
    expected = [
        ("name:", "letters, digits"),
        ("source.images:", "no folder at"),
        ("source.captions:", "missing (needed by kind 'coco')"),
        ("source.n:", "not used by kind 'coco'"),
        ("encoders[1]:", "unknown encoder 'clip'"),
        ("compare.kernel:", "'gaussian' or 'cosine'"),
        ("compare.rff_dim:", "-5 is not a whole number > 0 or auto"),
        ("compare.n_mode:", "did you mean 'n_modes'"),
        ("device:", "use auto, cpu, cuda or cuda:N"),
        ("schedule:", "not a cron expression"),
        ("dask_adress:", "did you mean 'dask_address'"),
    ]
    assert len(problems) == len(expected), problems
    for line, (key, text) in zip(problems, expected, strict=True):
        assert line.startswith(key) and text in line and ";" in line, line


def _minimal(**keys) -> dict:
    return {"source": {"kind": "sample"}, "encoders": ["hue-hist", "grad-hist"], **keys}


@pytest.mark.parametrize(
    "raw, line",
    [
        (
            {"source": {"kind": "sample"}, "encoders": ["hue-hist"]},
            "encoders: needs at least two encoder ids, got 1; add another (e.g. grad-hist)",
        ),
        (
            {"source": {"kind": "sample"}, "encoders": ["hue-hist", "hue-hist"]},
            "encoders: hue-hist named twice; list distinct encoders",
        ),
        (
            {"source": {"kind": "webdataset"}, "encoders": ["hue-hist", "grad-hist"]},
            "source.kind: unknown kind 'webdataset'; use one of sample, imagenet, coco, folder, dataset",
        ),
        (
            {"encoders": ["hue-hist", "grad-hist"]},
            "source: missing; add e.g. `source: {kind: sample, n: 2000}`",
        ),
        (
            _minimal(compare={"sigma_scale": [0.5, -1]}),
            "compare.sigma_scale: -1 is not a number > 0; use numbers > 0, e.g. 0.25,0.5,1,2",
        ),
        (
            _minimal(compare={"sigma_scale": [0.5, 1], "sigma_x": 2.0}),
            "compare: several sigma_scale values sweep the median heuristic, but sigma_x",
        ),
        (
            {"source": {"kind": "dataset"}, "encoders": ["hue-hist", "grad-hist"]},
            "source.url: missing (needed by kind 'dataset')",
        ),
    ],
)
def test_single_problems_read_as_one_sentence(raw, line):
    problems = _problems(raw)
    assert len(problems) == 1 and problems[0].startswith(line), problems


def test_unreadable_files_are_one_problem(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("source: {kind: sample\nencoders: [a, b]\n")
    with pytest.raises(ConfigError) as info:
        load_config(str(bad))
    assert len(info.value.problems) == 1 and "not valid YAML at line" in info.value.problems[0]
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(str(tmp_path / "missing.yaml"))


def test_cli_prints_every_problem_exits_2_and_creates_nothing(tmp_path):
    cfg = tmp_path / "audit.yaml"
    root = tmp_path / "out"
    cfg.write_text(
        yaml.safe_dump(
            {
                "source": {"kind": "sample", "n": 0},
                "encoders": ["hue-hist"],
                "compare": {"eta": 0},
                "root": str(root),
            }
        )
    )
    result = CliRunner().invoke(app, ["audit", "--config", str(cfg)])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert "3 problem(s), nothing was run" in lines[0]
    assert [x.strip().split(":")[0] for x in lines[1:]] == ["source.n", "encoders", "compare.eta"]
    assert not root.exists()


def test_cli_flags_build_the_same_config_and_override_the_file(monkeypatch, tmp_path):
    seen = []
    monkeypatch.setattr(
        "speclens.flows.audit.audit_config", lambda cfg, progress: seen.append(cfg) or []
    )
    monkeypatch.setattr("speclens.tasks.checks.check_audit", lambda *args: None)  # no stores
    runner = CliRunner()
    result = runner.invoke(
        app,
        [
            "audit",
            "--sample",
            "300",
            "--encoder",
            "hue-hist",
            "--encoder",
            "pixels",
            "--root",
            str(tmp_path),
            "--rff-dim",
            "64",
        ],
    )
    assert result.exit_code == 0, result.output
    result = runner.invoke(
        app,
        [
            "audit",
            "--config",
            str(EXAMPLE),
            "--dataset",
            str(tmp_path),
            "--n-modes",
            "2",
            "--warehouse",
            "memory://wh",
        ],
    )
    assert result.exit_code == 0, result.output
    flags, mixed = seen
    assert flags.source.n == 300 and flags.encoders == ["hue-hist", "pixels"]
    assert flags.compare.rff_dim == 64 and flags.dataset == f"{tmp_path}/datasets/sample.zarr"
    assert mixed.source.kind == "dataset" and mixed.dataset == str(tmp_path)
    assert mixed.compare.n_modes == 2
    assert mixed.compare.rff_dim == CompareParams.model_fields["rff_dim"].default
    assert mixed.warehouse_url == "memory://wh" and mixed.encoders == ["hue-hist", "grad-hist"]
    result = runner.invoke(app, ["audit", "--sample", "10", "--folder", str(tmp_path)])
    assert result.exit_code == 2 and "pass one source" in result.output


def test_deployment_entrypoints_take_json_parameters():
    """Every deployment names a flow that exists; the parameters it sets are parameters of that
    flow; every default is JSON (what a deployment's parameter form holds) and round-trips."""
    import importlib

    from prefect import Flow

    deployments = yaml.safe_load(PREFECT_YAML.read_text())["deployments"]
    assert len(deployments) == 6
    for d in deployments:
        path, name = d["entrypoint"].split(":")
        assert (REPO / path).is_file(), d["entrypoint"]
        flow = getattr(importlib.import_module(path[:-3].replace("/", ".")), name)
        assert isinstance(flow, Flow), d["entrypoint"]
        params = inspect.signature(flow.fn).parameters
        assert set(d.get("parameters", {})) <= set(params), d["name"]
        for p in params.values():
            if p.default is not inspect.Parameter.empty:
                assert json.loads(json.dumps(p.default)) == p.default, (d["name"], p.name)
        assert json.loads(json.dumps(d.get("parameters", {}))) == d.get("parameters", {})


def test_the_readme_example_error_is_what_speclens_prints(tmp_path):
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    block = readme.split("error: audit.yaml: 3 problem(s), nothing was run:\n", 1)[1]
    shown = [line.strip() for line in block.split("```", 1)[0].strip().splitlines()]
    problems = _problems(
        {
            "source": {"kind": "coco", "images": str(tmp_path)},
            "encoders": ["hue-hist"],
            "compare": {"n_mode": 3},
        }
    )
    assert problems == shown


@pytest.mark.parametrize("command", ["compare", "audit", "align"])
def test_every_compare_parameter_is_an_option_with_its_one_default(command):
    """One definition: each CompareParams field is an option of every comparing command,
    with the field's default (audit: unset, so its config file's keys win), and a key of the
    audit config that the shipped example documents."""
    import typer.main

    params = {p.name: p for p in typer.main.get_command(app).commands[command].params}
    example = EXAMPLE.read_text()
    for name, field in CompareParams.model_fields.items():
        if command == "align" and name == "seed":  # align's --seed seeds its split too
            continue
        option = params[name]
        flag = "--" + name.replace("_", "-")
        assert option.opts == [flag]
        if field.annotation is bool:  # switches come with their negation
            assert option.secondary_opts == ["--no-" + flag[2:]]
        text = (field.json_schema_extra or {}).get("cli") == "text"  # parsed by the field
        default = str(field.default) if text else field.default
        assert option.default == (None if command == "audit" else default), name
        assert option.help == field.description
        assert name in example, f"deployments/audit.yaml does not document compare.{name}"
        value = (
            field.default
            if field.default is not None
            else {"kernel_x": "cosine", "kernel_y": "cosine"}.get(name, 1.5)
        )
        assert getattr(validate_config(_minimal(compare={name: value})).compare, name) == value


def test_a_sweep_and_auto_features_read_from_a_config():
    cfg = validate_config(_minimal(compare={"sigma_scale": [0.25, 0.5, 1], "rff_dim": "auto"}))
    assert cfg.compare.scales == (0.25, 0.5, 1.0) and cfg.compare.rff_dim == "auto"
    assert [p.sigma_scale for p in cfg.compare.sweep()] == [0.25, 0.5, 1.0]


def test_compare_options_from_the_command_line_reach_the_flow(monkeypatch, tmp_path):
    seen = {}
    monkeypatch.setattr("speclens.flows.compare.compare", lambda *a, **kw: seen.update(kw) or [])
    monkeypatch.setattr("speclens.tasks.checks.check_compare", lambda *args: None)  # no stores
    result = CliRunner().invoke(
        app,
        [
            "compare",
            "--dataset",
            str(tmp_path),
            "--encoder",
            "a",
            "--encoder",
            "b",
            "--members",
            "7",
            "--kernel-y",
            "cosine",
            "--sigma-scale",
            "0.25",
        ],
    )
    assert result.exit_code == 0, result.output
    params = seen["params"]
    assert (params.members, params.kernel_y_used, params.sigma_scale) == (7, "cosine", 0.25)
    assert (params.uncertainty, params.confidence) == (True, 0.9)
    base = ["compare", "--dataset", str(tmp_path), "--encoder", "a", "--encoder", "b"]
    result = CliRunner().invoke(app, [*base, "--no-uncertainty", "--confidence", "0.95"])
    assert result.exit_code == 0, result.output
    assert (seen["params"].uncertainty, seen["params"].confidence) == (False, 0.95)
    result = CliRunner().invoke(app, [*base, "--confidence", "1.5"])
    assert result.exit_code == 2
    assert "compare.confidence: must be less than 1, got 1.5" in result.output
    result = CliRunner().invoke(
        app,
        [
            "compare",
            "--dataset",
            str(tmp_path),
            "--encoder",
            "a",
            "--encoder",
            "b",
            "--rff-dim",
            "0",
            "--eta",
            "-1",
        ],
    )
    assert result.exit_code == 2
    assert "compare options: 2 problem(s), nothing was run" in result.output
    assert "compare.rff_dim: 0 is not a whole number > 0 or auto" in result.output
