"""The SPEC-align adapter end to end on planted data, its state round trip, and the probes."""

import json

import numpy as np
import pytest

from speclens.spec import SPEC, planted_pair
from speclens.spec.adapter import Adapter, fit_adapter
from speclens.spec.probes import knn_accuracy, linear_probe_accuracy

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _planted(n=400, seed=0):
    """X: 3 tight groups A, plus groups B at a fifth of the scale (in X, but too small for X's
    kernel to tie them together); Y: groups B only. A linear map on X can surface B."""
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, 3, n), rng.integers(0, 3, n)
    centres_a, centres_b = rng.standard_normal((3, 4)) * 3, rng.standard_normal((3, 4)) * 3
    X = np.hstack([centres_a[a], 0.2 * centres_b[b]]) + 0.05 * rng.standard_normal((n, 8))
    Y = centres_b[b] + 0.1 * rng.standard_normal((n, 4))
    return X, Y, a, b


@pytest.fixture(scope="module")
def trained():
    X, Y, a, b = _planted()
    tr, te = np.arange(200), np.arange(200, 400)
    adapter = fit_adapter(X[tr], Y[tr], kind="linear", epochs=100, batch_size=100, lr=0.05)
    return X, Y, a, b, tr, te, adapter


def _held_out_y_over_x(Z, Y, te):
    return SPEC(rff_dim=500, n_modes=1).fit(Z[te], Y[te]).spec_diff_["y_over_x"]


def test_adapter_captures_reference_groups_on_held_out_rows(trained):
    X, Y, a, b, tr, te, adapter = trained
    Z = adapter.transform(X)
    assert _held_out_y_over_x(Z, Y, te) < 0.25 * _held_out_y_over_x(X, Y, te)
    # X's own groups stay neighbours (the 'neighbours' preservation term's job)
    assert knn_accuracy(Z[tr], a[tr], Z[te], a[te]) >= 0.98
    assert knn_accuracy(Z[tr], b[tr], Z[te], b[te]) >= 0.98
    assert adapter.log[-1]["spec_diff"] < 0.25 * adapter.log[0]["spec_diff"]


def test_without_neighbour_preservation_x_loses_its_own_groups(trained):
    """Why the default preservation term is 'neighbours': the alignment alone (or with the
    kernel-MSE term) gives up X's own groups to tie the reference's groups tighter."""
    X, Y, a, _, tr, te, _ = trained
    for preserve, weight in (("none", 0.0), ("kernel", 0.3)):
        ad = fit_adapter(
            X[tr],
            Y[tr],
            kind="linear",
            epochs=100,
            batch_size=100,
            lr=0.05,
            preserve=preserve,
            preserve_weight=weight,
        )
        Z = ad.transform(X)
        assert _held_out_y_over_x(Z, Y, te) < 0.25 * _held_out_y_over_x(X, Y, te)
        assert knn_accuracy(Z[tr], a[tr], Z[te], a[te]) < 0.8


def test_state_round_trip_is_exact_and_json_friendly(trained):
    X, *_, adapter = trained
    state = adapter.state_dict()
    meta = json.loads(json.dumps({k: v for k, v in state.items() if k != "weights"}))
    again = Adapter.from_state({**meta, "weights": state["weights"]})
    np.testing.assert_array_equal(again.transform(X), adapter.transform(X))


def test_seeded_and_deterministic():
    X, Y, *_ = _planted(120)
    kw = {"kind": "mlp", "epochs": 3, "batch_size": 40, "random_state": 4}
    one, two = fit_adapter(X, Y, **kw), fit_adapter(X, Y, **kw)
    np.testing.assert_array_equal(one.transform(X), two.transform(X))
    assert one.log == two.log


@pytest.mark.parametrize("kind", ["linear", "mlp"])
def test_adapter_starts_at_identity_and_keeps_scale(kind):
    X, Y, *_ = _planted(120)
    ad = fit_adapter(X, Y, kind=kind, epochs=1, lr=1e-9, batch_size=60)
    np.testing.assert_allclose(ad.transform(X), X, atol=1e-4)


def test_power_method_trains_too():
    p = planted_pair(n=200, dx=6, dy=6, group_size=40, random_state=2)
    ad = fit_adapter(
        p.X, p.Y, method="power", kernel_x="cosine", kernel_y="cosine", epochs=3, batch_size=100
    )
    assert np.isfinite(ad.transform(p.X)).all() and len(ad.log) == 3


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"kind": "deep"}, "kind must be one of"),
        ({"preserve": "l2"}, "preserve must be one of"),
        ({"which": "both"}, "which must be one of"),
        ({"epochs": 0}, "epochs must be >= 1"),
        ({"batch_size": 1}, "batch_size must be >= 2"),
        ({"learning_rate": 1}, "unknown adapter option"),
    ],
)
def test_bad_options(kwargs, match):
    X, Y, *_ = _planted(50)
    with pytest.raises(ValueError, match=match):
        fit_adapter(X, Y, **kwargs)


def test_transform_checks_width(trained):
    *_, adapter = trained
    with pytest.raises(ValueError, match="must have shape"):
        adapter.transform(np.ones((3, 5)))


def test_probes_on_separable_and_random_labels():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 300)
    emb = np.eye(4)[labels] * 5 + rng.standard_normal((300, 4))
    assert knn_accuracy(emb[:200], labels[:200], emb[200:], labels[200:], k=5) > 0.95
    assert linear_probe_accuracy(emb[:200], labels[:200], emb[200:], labels[200:]) > 0.95
    noise = rng.standard_normal((300, 4))
    assert knn_accuracy(noise[:200], labels[:200], noise[200:], labels[200:]) < 0.45
    names = np.array(["a", "b", "c", "d"])[labels]  # any label type
    assert knn_accuracy(emb[:200], names[:200], emb[200:], names[200:], metric="cosine") > 0.9


def test_knn_tie_goes_to_closer_neighbour():
    train = np.array([[0.0], [1.0], [10.0], [11.0]])
    labels = np.array([0, 0, 1, 1])
    # k=4: two votes each; the closer pair wins
    assert knn_accuracy(train, labels, np.array([[9.0]]), np.array([1]), k=4) == 1.0
    assert knn_accuracy(train, labels, np.array([[2.0]]), np.array([0]), k=4) == 1.0
