"""Mode matching across two runs of a series: cores by score share, Hungarian pairing of the
cores within each direction, and the planted problem's modes found again under another seed."""

import functools

import numpy as np
import pytest

from speclens.history.matching import CORE_SHARE, MIN_JACCARD, jaccard, match_modes, mode_cores
from speclens.history.model import ModeMatch
from speclens.spec import SPEC, planted_pair

X, Y = "x_over_y", "y_over_x"


def _cores(*sets) -> dict[int, frozenset]:
    return {m: frozenset(s) for m, s in enumerate(sets)}


def _ids(*ranges) -> frozenset:
    return frozenset(str(i) for r in ranges for i in r)


def _by_status(matches: list[ModeMatch], status: str) -> list[ModeMatch]:
    return [m for m in matches if m.status == status]


# ---- acceptance: the planted problem under two random-feature seeds --------------------------

N_MODES = 3
GROUP = 60


@functools.cache
def _planted():
    return planted_pair(n=600, dx=16, dy=24, group_size=GROUP, random_state=11)


@functools.cache
def _planted_run(seed: int) -> tuple[dict, dict]:
    """(cores, directions) of a SPEC fit of the planted pair with random_state=seed, through the
    members rows an audit writes (mode, score, sample_id). Each mode's top twice the group
    size: the core rule, not the member count, decides what the core is."""
    p, top = _planted(), 2 * GROUP
    spec = SPEC(rff_dim=200, n_modes=N_MODES, random_state=seed).fit(p.X, p.Y)
    ev = spec.eigenvalues_
    # the block order the directions assume: top block descending (> 0), bottom ascending (< 0)
    assert np.all(np.diff(ev[:N_MODES]) <= 0) and np.all(np.diff(ev[N_MODES:]) >= 0)
    assert ev[0] > 0 > ev[N_MODES]
    scores = spec.transform(p.X, p.Y)
    members = spec.members(scores, top)
    rows = [
        {"mode": j, "score": float(scores[r, j]), "sample_id": str(r)}
        for j in range(2 * N_MODES)
        for r in members[j]
    ]
    directions = {j: X if j < N_MODES else Y for j in range(2 * N_MODES)}
    return mode_cores(rows), directions


@pytest.mark.parametrize("seeds", [(0, 1), (0, 2)])
def test_planted_modes_persist_across_random_feature_seeds(seeds):
    """The issue's acceptance: two runs differing only in the random-feature seed; the top
    mode of each direction (the planted group tight in X only, resp. Y only) is matched to
    itself with Jaccard >= 0.75."""
    p = _planted()
    previous, d_previous = _planted_run(seeds[0])
    current, d_current = _planted_run(seeds[1])
    planted = {X: _ids(p.group_x), Y: _ids(p.group_y)}
    top = {X: 0, Y: N_MODES}
    for cores in (previous, current):  # each run's top modes are the planted groups
        for d in (X, Y):
            core = cores[top[d]]
            assert len(core & planted[d]) / len(planted[d]) >= 0.9, (d, len(core & planted[d]))
            assert len(core & planted[d]) / len(core) >= 0.9, (d, len(core))

    matches = match_modes(current, previous, d_current, d_previous)
    assert len(_by_status(matches, "persisting")) + len(_by_status(matches, "new")) == 6
    assert len(_by_status(matches, "persisting")) + len(_by_status(matches, "gone")) == 6
    for d in (X, Y):
        (m,) = [m for m in matches if m.mode == top[d]]
        assert m.direction == d
        assert m.status == "persisting"
        assert m.previous_mode == top[d]
        assert m.jaccard >= 0.75, (d, m.jaccard)
        assert m.jaccard == pytest.approx(jaccard(current[top[d]], previous[top[d]]))


# ---- mode_cores --------------------------------------------------------------------------


def test_mode_cores_keep_members_at_or_above_half_the_top_score():
    assert CORE_SHARE == 0.5
    rows = [
        {"mode": 0, "score": 1.0, "sample_id": "a"},
        {"mode": 0, "score": 0.5, "sample_id": "b"},  # exactly half: kept
        {"mode": 0, "score": 0.49, "sample_id": "c"},
        {"mode": 0, "score": -0.9, "sample_id": "d"},
        {"mode": 1, "score": 0.2, "sample_id": "a"},
        {"mode": 1, "score": 0.15, "sample_id": "e"},
        {"mode": 1, "score": 0.05, "sample_id": "f"},
    ]
    cores = mode_cores(rows)
    assert cores == {0: frozenset({"a", "b"}), 1: frozenset({"a", "e"})}
    assert mode_cores(rows, share=0.1)[1] == frozenset({"a", "e", "f"})


def test_mode_cores_order_and_mode_types_do_not_matter():
    rows = [
        {"mode": "2", "score": 0.1, "sample_id": "x"},
        {"mode": np.int64(2), "score": np.float32(0.8), "sample_id": "y"},
        {"mode": 2, "score": 0.6, "sample_id": "z"},
    ]
    assert mode_cores(rows) == {2: frozenset({"y", "z"})}
    assert mode_cores(reversed(rows)) == mode_cores(rows)


def test_mode_cores_are_empty_when_every_score_is_zero():
    rows = [{"mode": 0, "score": 0.0, "sample_id": s} for s in "abc"]
    rows += [{"mode": 1, "score": 1.0, "sample_id": "a"}]
    assert mode_cores(rows) == {0: frozenset(), 1: frozenset({"a"})}
    assert mode_cores([]) == {}


# ---- match_modes on hand-made cores --------------------------------------------------------


def test_identical_runs_persist_every_mode_with_jaccard_one():
    cores = _cores(_ids(range(0, 10)), _ids(range(10, 25)), _ids(range(30, 40)), _ids([50, 51]))
    dirs = {0: X, 1: X, 2: Y, 3: Y}
    matches = match_modes(cores, dict(cores), dirs, dict(dirs))
    assert [(m.direction, m.mode, m.previous_mode, m.status, m.jaccard) for m in matches] == [
        (X, 0, 0, "persisting", 1.0),
        (X, 1, 1, "persisting", 1.0),
        (Y, 2, 2, "persisting", 1.0),
        (Y, 3, 3, "persisting", 1.0),
    ]


def test_reordered_modes_are_matched_by_members_not_index():
    a, b, c = _ids(range(0, 10)), _ids(range(10, 20)), _ids(range(20, 30))
    previous = {0: a, 1: b, 2: c}
    # tonight: the eigenvalues reordered and a member or two moved
    current = {0: c, 1: a - {"0"}, 2: b | {"99"}}
    dirs = dict.fromkeys(range(3), X)
    matches = match_modes(current, previous, dirs, dirs)
    assert all(m.status == "persisting" for m in matches)
    assert {(m.mode, m.previous_mode) for m in matches} == {(0, 2), (1, 0), (2, 1)}
    assert [m.mode for m in matches] == [0, 1, 2]  # persisting pairs in mode order
    by_mode = {m.mode: m.jaccard for m in matches}
    assert by_mode == {0: 1.0, 1: pytest.approx(0.9), 2: pytest.approx(10 / 11)}


def test_a_mode_whose_members_all_changed_is_new_and_the_old_one_gone():
    kept, old, fresh = _ids(range(0, 10)), _ids(range(10, 20)), _ids(range(100, 110))
    previous, current = {0: kept, 1: old}, {0: kept, 1: fresh}
    dirs = {0: X, 1: X}
    matches = match_modes(current, previous, dirs, dirs)
    assert matches == [
        ModeMatch(X, 0, 0, "persisting", 1.0),
        ModeMatch(X, 1, None, "new", None),
        ModeMatch(X, None, 1, "gone", None),
    ]


def test_modes_in_different_directions_never_match():
    core = _ids(range(10))
    matches = match_modes({0: core}, {0: core}, {0: X}, {0: Y})
    assert matches == [ModeMatch(X, 0, None, "new", None), ModeMatch(Y, None, 0, "gone", None)]
    # the identical core across the directions loses to a worse one in the same direction
    previous = {0: core, 1: core | _ids(range(100, 105))}
    matches = match_modes({0: core}, previous, {0: X}, {0: Y, 1: X})
    assert matches == [
        ModeMatch(X, 0, 1, "persisting", pytest.approx(10 / 15)),
        ModeMatch(Y, None, 0, "gone", None),
    ]


def test_uneven_mode_counts_leave_the_extra_modes_new_or_gone():
    a, b, c = _ids(range(0, 10)), _ids(range(10, 20)), _ids(range(20, 30))
    dirs3, dirs1 = dict.fromkeys(range(3), Y), {0: Y}
    grown = match_modes({0: b, 1: a, 2: c}, {0: a}, dirs3, dirs1)
    assert [(m.mode, m.previous_mode, m.status) for m in grown] == [
        (1, 0, "persisting"),
        (0, None, "new"),
        (2, None, "new"),
    ]
    shrunk = match_modes({0: a}, {0: b, 1: a, 2: c}, dirs1, dirs3)
    assert [(m.mode, m.previous_mode, m.status) for m in shrunk] == [
        (0, 1, "persisting"),
        (None, 0, "gone"),
        (None, 2, "gone"),
    ]
    assert match_modes({}, {}, {}, {}) == []


def test_hungarian_picks_the_globally_best_pairing_where_greedy_would_not():
    """Blocks A (5 ids), B (4), C (2): previous 0 = A+B, previous 1 = B+C; current 0 = A+B+C,
    current 1 = A. J = [[9/11, 6/11], [5/9, 0]]: greedy gives current 0 its first choice
    (previous 0, the largest entry) and leaves current 1 with nothing (total 0.82); the
    assignment pairs across (total 1.10) and both pairs persist."""
    A, B, C = _ids(range(5)), _ids(range(10, 14)), _ids([20, 21])
    previous = {0: A | B, 1: B | C}
    current = {0: A | B | C, 1: A}
    J = np.array([[jaccard(current[i], previous[j]) for j in (0, 1)] for i in (0, 1)])
    np.testing.assert_allclose(J, [[9 / 11, 6 / 11], [5 / 9, 0]])
    assert J[0, 0] == J.max() and J[0, 0] + J[1, 1] < J[0, 1] + J[1, 0]  # greedy is worse
    dirs = {0: X, 1: X}
    matches = match_modes(current, previous, dirs, dirs)
    assert matches == [
        ModeMatch(X, 0, 1, "persisting", pytest.approx(6 / 11)),
        ModeMatch(X, 1, 0, "persisting", pytest.approx(5 / 9)),
    ]


def test_min_jaccard_is_respected_inclusively():
    prev = _ids(range(10))
    half = _ids(range(5), range(100, 105))  # 5 shared of 15: 1/3
    exact = _ids(range(10), range(100, 110))  # 10 shared of 20: 1/2
    dirs = {0: X}
    assert jaccard(half, prev) == pytest.approx(1 / 3) and jaccard(exact, prev) == 0.5
    (m,) = _by_status(match_modes({0: exact}, {0: prev}, dirs, dirs), "persisting")
    assert m.jaccard == MIN_JACCARD == 0.5  # at the threshold: the same mode
    assert not _by_status(match_modes({0: exact}, {0: prev}, dirs, dirs, 0.51), "persisting")
    low = match_modes({0: half}, {0: prev}, dirs, dirs)
    assert [m.status for m in low] == ["new", "gone"]
    (m,) = _by_status(match_modes({0: half}, {0: prev}, dirs, dirs, min_jaccard=0.3), "persisting")
    assert m.jaccard == pytest.approx(1 / 3)


def test_a_pair_above_the_threshold_is_not_traded_for_two_below_it():
    b = _ids(range(1, 11))
    c = _ids(range(1, 5), [11, 12], range(21, 25))
    a = _ids(range(1, 9), [11, 12])
    d = _ids(range(5, 11), range(31, 35))
    assert jaccard(a, b) == pytest.approx(8 / 12)  # the same mode by the threshold
    assert jaccard(a, c) == jaccard(d, b) == pytest.approx(6 / 14)  # each below it
    assert jaccard(d, c) == 0
    dirs = {0: X, 1: X}
    matches = match_modes({0: a, 1: d}, {0: b, 1: c}, dirs, dirs)
    assert [(m.mode, m.previous_mode, m.status) for m in matches] == [
        (0, 0, "persisting"),
        (1, None, "new"),
        (None, 1, "gone"),
    ]
