"""Planted ground truth: SPEC must find the group each embedding ties together alone."""

import numpy as np
import pytest

from speclens.spec import SPEC, planted_pair


@pytest.mark.parametrize("kernel", ["gaussian", "cosine"])
def test_planted_groups_are_the_extreme_modes(kernel):
    p = planted_pair(n=1200, dx=16, dy=24, group_size=100, random_state=11)
    X, Y = p.X, p.Y
    spec = SPEC(kernel, kernel, rff_dim=600, n_modes=2).fit(X, Y)
    scores = spec.transform(X, Y)
    members = spec.members(scores, 100)
    assert spec.eigenvalues_[0] > 0 > spec.eigenvalues_[2]
    precision_x = np.isin(members[0], p.group_x).mean()  # top mode: captured by X, not by Y
    precision_y = np.isin(members[2], p.group_y).mean()  # bottom mode: captured by Y, not by X
    assert precision_x >= 0.9, precision_x
    assert precision_y >= 0.9, precision_y
    assert spec.spec_diff_["x_over_y"] == pytest.approx(spec.eigenvalues_[0])
    assert spec.spec_diff_["y_over_x"] == pytest.approx(-spec.eigenvalues_[2])
    assert spec.spec_diff_["max"] == max(spec.spec_diff_["x_over_y"], spec.spec_diff_["y_over_x"])


def test_swapping_embeddings_negates_the_spectrum():
    p = planted_pair(n=500, group_size=50, random_state=2)
    a = SPEC("cosine", "cosine", n_modes=3, dtype="float64").fit(p.X, p.Y)
    b = SPEC("cosine", "cosine", n_modes=3, dtype="float64").fit(p.Y, p.X)
    np.testing.assert_allclose(a.eigenvalues_[:3], -b.eigenvalues_[3:], atol=1e-10)
    assert a.spec_diff_["x_over_y"] == pytest.approx(b.spec_diff_["y_over_x"], abs=1e-10)


def test_eigenvalue_blocks_are_ordered_by_decreasing_magnitude():
    p = planted_pair(n=600, group_size=60, random_state=5)
    ev = SPEC(rff_dim=300, n_modes=5).fit(p.X, p.Y).eigenvalues_
    assert np.all(np.diff(ev[:5]) <= 0) and np.all(np.diff(ev[5:]) >= 0)
