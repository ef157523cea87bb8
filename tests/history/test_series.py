"""Audit series: the derived key, a run's series, the alert rules and the verdict line."""

import re
from datetime import UTC, datetime, timedelta

import pytest

from speclens.history.model import ModeMatch, SeriesRun
from speclens.history.series import (
    DEFAULT_RULES,
    SERIES_PATTERN,
    comparison,
    history_of,
    run_series,
    series_key,
    significant,
    verdict,
)

DATASET = "file:///data/out/datasets/imagenet_val.zarr"
BASE, CAND = "open_clip:ViT-B-32", "dinov2:vits14"
T0 = datetime(2025, 3, 1, 2, 30, tzinfo=UTC)


def _run(**over) -> dict:
    """A ``runs`` row as publish writes it (the median-heuristic bandwidths, a fixed rff_dim)."""
    run = {
        "run_id": "run-a",
        "created_at": T0,
        "dataset": DATASET,
        "parent_run_id": None,
        "encoder_x": BASE,
        "encoder_y": CAND,
        "kernel_x": "gaussian",
        "kernel_y": "gaussian",
        "sigma_x": 3.25,
        "sigma_y": 7.5,
        "rff_dim": 2000,
        "rff_dim_auto": False,
        "sigma_scale": 0.5,
        "eta": 1.0,
        "n_modes": 10,
        "seed": 0,
        "n": 50_000,
    }
    return {**run, **over}


def _key(run: dict, baseline: str = BASE, candidate: str = CAND) -> str:
    return series_key(run["dataset"], baseline, candidate, run)


# ---- series_key ----------------------------------------------------------------------------


def test_the_same_comparison_has_the_same_key_whatever_the_run():
    key = _key(_run())
    same = [
        _run(run_id="run-b", created_at=T0 + timedelta(days=3)),
        _run(n=49_000, seed=7),
        # the heuristic's bandwidths follow the data (the scale is the parameter)
        _run(sigma_x=3.3, sigma_y=7.1),
        _run(dataset="s3://bucket/elsewhere/imagenet_val.zarr/"),  # the store's name counts
        _run(eta=1),
    ]
    assert all(_key(r) == key for r in same)
    assert key.startswith("imagenet_val.open_clip_ViT-B-32.vs.dinov2_vits14.")
    assert re.fullmatch(r"[0-9a-f]{6}", key.rsplit(".", 1)[1])


@pytest.mark.parametrize(
    "change",
    [
        {"sigma_scale": 0.25},
        {"rff_dim": 4000},
        {"kernel_y": "cosine"},
        {"kernel_x": "cosine", "kernel_y": "cosine"},
        {"eta": 0.5},
        {"rff_dim_auto": True},
        {"dataset": "file:///data/out/datasets/coco_val.zarr"},
    ],
)
def test_a_different_parameter_gives_a_different_key(change):
    assert _key(_run(**change)) != _key(_run())


def test_a_different_model_name_gives_a_different_key():
    run = _run()
    key = _key(run)
    assert _key(run, candidate="dinov2:vitb14") != key
    assert _key(run, baseline="open_clip:ViT-B-16") != key
    assert _key(run, baseline=CAND, candidate=BASE) != key


def test_fixed_bandwidths_are_part_of_the_comparison():
    fixed = _run(sigma_scale=None, sigma_x=3.0, sigma_y=7.0)
    assert comparison(fixed)["sigma"] == [3.0, 7.0]
    assert "sigma_scale" not in comparison(fixed)
    assert _key(fixed) != _key(_run(sigma_scale=None, sigma_x=3.0, sigma_y=8.0))
    assert _key(fixed) == _key({**fixed, "run_id": "other", "n": 1})


def test_auto_feature_count_is_recorded_as_auto():
    auto = _run(rff_dim_auto=True, rff_dim=1000)
    assert comparison(auto)["rff_dim"] == "auto"
    # the count auto settles on changes from night to night: still the same series
    assert _key(auto) == _key(_run(rff_dim_auto=True, rff_dim=4000))
    assert comparison(_run())["rff_dim"] == 2000


def test_cosine_kernels_ignore_the_gaussian_parameters():
    cos = _run(kernel_x="cosine", kernel_y="cosine", rff_dim=None, sigma_x=None, sigma_y=None)
    assert comparison(cos) == {"kernels": ["cosine", "cosine"], "eta": 1.0}
    assert _key(cos) == _key({**cos, "sigma_scale": 0.25, "rff_dim": 4000})


@pytest.mark.parametrize(
    "baseline, candidate",
    [
        (BASE, CAND),
        ("open_clip:ViT-B-32@/ckpt/x.pt", "open_clip:ViT-B-32@/ckpt/y.pt"),
        ("hf:org/model name (v2)", "tim m:über/ß"),
        ("::", "@@"),
    ],
)
def test_keys_match_the_series_pattern(baseline, candidate):
    key = _key(_run(), baseline, candidate)
    assert re.fullmatch(SERIES_PATTERN, key), key


def test_odd_characters_in_names_are_slugged():
    key = _key(_run(), "open_clip:ViT-B-32@/ckpt/x.pt", "open_clip:ViT-B-32@/ckpt/y.pt")
    stem, digest = key.rsplit(".", 1)
    assert stem == "imagenet_val.open_clip_ViT-B-32_ckpt_x.pt.vs.open_clip_ViT-B-32_ckpt_y.pt"
    assert re.fullmatch(SERIES_PATTERN, key)
    assert digest == _key(_run()).rsplit(".", 1)[1]  # the digest is the comparison's alone


# ---- run_series ----------------------------------------------------------------------------


def test_a_given_name_wins():
    assert run_series("nightly", (BASE, CAND), _run()) == "nightly"
    assert run_series("nightly", None, _run(sigma_scale=None)) == "nightly"


def test_a_sweep_run_gets_its_scale_appended():
    sweep = _run(parent_run_id="parent", sigma_scale=0.25)
    assert run_series("nightly", (BASE, CAND), sweep) == "nightly-s0.25"
    assert run_series("nightly", None, _run(parent_run_id="parent", sigma_scale=1.0)) == (
        "nightly-s1"
    )
    assert re.fullmatch(SERIES_PATTERN, run_series("nightly", None, sweep))
    # a child without a scale (fixed bandwidths) or a scale without a parent: the name alone
    assert run_series("nightly", None, _run(parent_run_id="parent", sigma_scale=None)) == "nightly"
    assert run_series("nightly", None, _run(sigma_scale=0.25)) == "nightly"


def test_names_alone_give_the_derived_key():
    run = _run()
    assert run_series(None, (BASE, CAND), run) == _key(run)
    assert run_series("", (BASE, CAND), run) == _key(run)


def test_no_names_no_series():
    assert run_series(None, None, _run()) is None


# ---- significant ---------------------------------------------------------------------------


def _scores(x=0.0, y=0.0, **over) -> dict:
    """A ``pair_scores`` row: plug-in values per direction, the rest given by ``over``."""
    return {"spec_diff_x_over_y": x, "spec_diff_y_over_x": y, **over}


RULES = dict(DEFAULT_RULES)


def test_heldout_above_threshold_with_small_p_fires():
    row = _scores(
        0.3,
        0.01,
        spec_diff_x_over_y_heldout=0.05,
        spec_diff_x_over_y_p=0.001,
        spec_diff_y_over_x_heldout=0.005,
        spec_diff_y_over_x_p=0.2,
    )
    (alert,) = significant(row, RULES)
    assert alert.startswith("held-out SPEC-diff x_over_y 0.05 above 0.02")
    assert "p = 0.001 < 0.01" in alert


def test_p_above_the_level_does_not_fire():
    row = _scores(0.3, 0.3, spec_diff_x_over_y_heldout=0.05, spec_diff_x_over_y_p=0.02)
    row |= {"spec_diff_y_over_x_heldout": 0.05, "spec_diff_y_over_x_p": 0.5}
    assert significant(row, RULES) == []
    assert significant({**row, "spec_diff_x_over_y_p": 0.01}, RULES) == []  # strictly below
    assert len(significant(row, {**RULES, "p_value": 0.05})) == 1


def test_the_heldout_value_decides_over_the_plugin():
    """A plug-in far above the threshold but a held-out value under it: no alert (the
    plug-in is biased upward; the held-out value is the one tested)."""
    row = _scores(0.5, 0.0, spec_diff_x_over_y_heldout=0.01, spec_diff_x_over_y_p=0.001)
    assert significant(row, RULES) == []
    row = _scores(0.5, 0.0, spec_diff_x_over_y_heldout=0.02, spec_diff_x_over_y_p=0.001)
    assert significant(row, RULES) == []  # strictly above


def test_without_uncertainty_the_plugin_value_alone_decides():
    row = _scores(0.05, 0.01, spec_diff_x_over_y_heldout=None, spec_diff_x_over_y_p=None)
    (alert,) = significant(row, RULES)
    assert alert == "SPEC-diff x_over_y 0.05 above 0.02 (no p-value)"
    assert significant(_scores(0.05, 0.01), RULES) == [alert]  # the keys absent altogether
    both = significant(_scores(0.05, 0.04), RULES)
    assert [a.split()[1] for a in both] == ["x_over_y", "y_over_x"]
    assert significant(_scores(0.01, 0.02), RULES) == []
    assert significant(_scores(0.05, 0.01), {**RULES, "spec_diff": 0.1}) == []


def _new(mode=4, status="new", significant=True, label="goldfish", direction="y_over_x"):
    prev = None if status == "new" else 1
    mode = None if status == "gone" else mode
    return ModeMatch(direction, mode, prev, status, None, label, significant)


def test_a_new_significant_mode_fires():
    quiet = _scores(0.0, 0.0)
    assert significant(quiet, RULES, [_new()]) == [
        "new significant mode 4 (y_over_x, label goldfish)"
    ]
    assert significant(quiet, RULES, [_new(label=None)]) == ["new significant mode 4 (y_over_x)"]


@pytest.mark.parametrize(
    "match",
    [
        _new(significant=False),
        _new(significant=None),  # no uncertainty: no significance to speak of
        _new(status="persisting"),
        _new(status="gone"),
    ],
)
def test_only_new_and_significant_modes_fire(match):
    assert significant(_scores(0.0, 0.0), RULES, [match]) == []


def test_new_mode_rule_can_be_switched_off():
    assert significant(_scores(0.0, 0.0), {**RULES, "new_mode": False}, [_new()]) == []
    rules = {k: v for k, v in RULES.items() if k != "new_mode"}
    assert significant(_scores(0.0, 0.0), rules, [_new()]) == []


def test_threshold_and_new_mode_alerts_add_up():
    row = _scores(0.05, 0.0)
    assert len(significant(row, RULES, [_new(), _new(mode=5), _new(significant=False)])) == 3


# ---- verdict -------------------------------------------------------------------------------


def _series_run(i: int, sig: bool) -> SeriesRun:
    per = {"x_over_y": 0.01, "y_over_x": 0.01}
    none = dict.fromkeys(per)
    return SeriesRun(
        f"run-{i}",
        T0 + timedelta(days=i, minutes=7 * i),
        BASE,
        CAND,
        dict(per),
        dict(none),
        dict(none),
        dict(none),
        dict(none),
        sig,
    )


def _runs(*flags) -> list[SeriesRun]:
    return [_series_run(i, f) for i, f in enumerate(flags)]


def test_verdict_of_no_runs_or_a_quiet_latest_run():
    assert verdict([]) == "no significant change"
    assert verdict(_runs(False)) == "no significant change"
    assert verdict(_runs(True, True, False)) == "no significant change"


def test_verdict_dates_the_latest_unbroken_stretch_of_significant_runs():
    # run i was made at T0 + i days + 7 i minutes: 2025-03-01 02:30, 03-02 02:37, 03-03 02:44
    assert verdict(_runs(False, True, True)) == "changed significantly since 2025-03-02 02:37 UTC"
    assert verdict(_runs(True, False, True)) == "changed significantly since 2025-03-03 02:44 UTC"
    assert verdict(_runs(True, True, True)) == "changed significantly since 2025-03-01 02:30 UTC"
    assert verdict(_runs(True)) == "changed significantly since 2025-03-01 02:30 UTC"


# ---- history_of ----------------------------------------------------------------------------


def test_history_of_orders_runs_and_judges_each_by_its_rules():
    runs = [
        _run(run_id="c", created_at=T0 + timedelta(days=2)),
        _run(run_id="a", created_at=T0, alert_rules='{"spec_diff": 0.5}'),
        _run(run_id="b", created_at=T0 + timedelta(days=1), alerts='["x"]'),
    ]
    scores = {
        "a": _scores(0.1, 0.0),  # above the default, under its own rule
        "b": _scores(0.1, 0.0),
        "c": _scores(0.0, 0.0),
    }
    new = _new()
    matches = {"b": [], "c": [new]}  # c: quiet scores, but a new significant mode
    h = history_of("s", runs, scores, matches)
    assert [r.run_id for r in h.runs] == ["a", "b", "c"]
    assert [r.significant for r in h.runs] == [False, True, True]
    assert h.runs[1].alerts == ["x"] and h.runs[0].alerts == []
    assert h.runs[0].heldout == {"x_over_y": None, "y_over_x": None}
    assert h.runs[0].spec_diff == {"x_over_y": 0.1, "y_over_x": 0.0}
    assert h.verdict == "changed significantly since 2025-03-02 02:30 UTC"
    assert h.matches == [new] and h.previous_run_id == "b"
    assert (h.series, h.dataset, h.baseline, h.candidate) == ("s", DATASET, BASE, CAND)
    first = history_of("s", runs[1:2], scores, {})
    assert first.previous_run_id is None and first.matches == []
    assert first.verdict == "no significant change"
