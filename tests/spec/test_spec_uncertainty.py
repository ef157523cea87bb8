"""Every published number comes with its uncertainty: checked against planted truth, a real
bootstrap, replicate datasets and explicit brute-force references.

The seeded loops (40 datasets each) are the acceptance figures of the uncertainty; they print
what they measured (``pytest -s``) and run on both cores."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest

from speclens.spec import SPEC, planted_pair
from speclens.spec.inference import (
    heldout_ratio,
    holm,
    matched_stability,
    near_ties,
    plugin_se,
    z_value,
)

N = 2000
slow = pytest.mark.slow


def _null_data(seed: int, noise: float = 0.02, d: int = 16):
    """X = A + noise, Y = A R + independent noise, R a random rotation: the same kernel up to
    the noise (independent noise is itself a difference, of order noise^2: see the note)."""
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((N, d))
    R, _ = np.linalg.qr(rng.standard_normal((d, d)))
    return A + noise * rng.standard_normal(A.shape), A @ R + noise * rng.standard_normal(A.shape)


def _null_run(seed: int):
    X, Y = _null_data(seed)
    u = SPEC(rff_dim=300, n_modes=3, uncertainty=True, random_state=seed).fit(X, Y).uncertainty_
    return bool((u.p_adjusted < 0.05).any()), float(u.heldout[0]), float(u.heldout[3])


def _replicate(r: int, frac: float = 0.1, tight: float = 0.05, dx: int = 16, dy: int = 24):
    """One dataset of a fixed planted distribution: a share ``frac`` of the samples sits in a
    tight group in X only, another in Y only (fixed centres), the rest is background."""
    centres = np.random.default_rng(12345)
    cx, cy = centres.standard_normal(dx), centres.standard_normal(dy)
    rng = np.random.default_rng(r)
    X, Y = rng.standard_normal((N, dx)), rng.standard_normal((N, dy))
    u = rng.random(N)
    gx, gy = u < frac, (u >= frac) & (u < 2 * frac)
    X[gx] = cx + tight * rng.standard_normal((gx.sum(), dx))
    Y[gy] = cy + tight * rng.standard_normal((gy.sum(), dy))
    return X, Y


def _replicate_run(r: int):
    X, Y = _replicate(r)
    spec = SPEC(rff_dim=300, n_modes=2, sigma_x=2.5, sigma_y=3.0, uncertainty=True)
    u = spec.fit(X, Y).uncertainty_
    return spec.eigenvalues_, u.eigenvalue_se, u.heldout, u.heldout_se


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)  # two workers on two cores: no oversubscription


def _map(fn, items):
    """Both cores, one process each. Spawned, never forked: a fork after torch's (or
    OpenBLAS's) thread pool has started copies its held locks, and the child can wait on
    them forever (it did, in CI, at random)."""
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=2, mp_context=spawn, initializer=_one_thread) as pool:
        return list(pool.map(fn, items))


@slow
def test_no_difference_gives_no_discoveries():
    runs = _map(_null_run, range(40))
    discoveries = np.mean([r[0] for r in runs])
    top = np.array([r[1] for r in runs])
    print(
        f"no difference: any mode significant (Holm 0.05) in {discoveries:.3f} of 40 runs; "
        f"held-out SPEC-diff mean {top.mean():.5f} +- {top.std(ddof=1) / np.sqrt(40):.5f}"
    )
    assert discoveries <= 0.1
    assert abs(top.mean()) <= 2 * top.std(ddof=1) / np.sqrt(top.size)


def test_planted_difference_is_found_and_stable():
    p = planted_pair(n=N, dx=16, dy=24, group_size=200, random_state=0)
    spec = SPEC(rff_dim=500, n_modes=3, uncertainty=True).fit(p.X, p.Y)
    u = spec.uncertainty_
    for mode, group in ((0, p.group_x), (3, p.group_y)):
        members = spec.members(spec.transform(p.X, p.Y), group.size)[mode]
        assert np.isin(members, group).mean() >= 0.9  # the mode is the planted group
        assert u.p_value[mode] < 0.01 and u.p_adjusted[mode] < 0.01
        assert u.stability[mode] >= 0.75
        low, high = u.interval(spec.eigenvalues_, u.eigenvalue_se)
        assert low[mode] < spec.eigenvalues_[mode] < high[mode]
    assert u.heldout[0] > 0 > u.heldout[3]


@slow
def test_intervals_are_honest_over_replicate_datasets():
    runs = _map(_replicate_run, range(40))
    z = z_value(0.9)
    for name, value, se in (("plug-in", 0, 1), ("held-out", 2, 3)):
        v = np.array([r[value] for r in runs])[:, 0]
        s = np.array([r[se] for r in runs])[:, 0]
        sd, mean = v.std(ddof=1), v.mean()
        cover = np.mean((v - z * s <= mean) & (mean <= v + z * s))
        print(
            f"{name} top eigenvalue over 40 replicates: mean {mean:.5f}, sd {sd:.5f}, "
            f"reported se {s.mean():.5f} ({s.mean() / sd:.2f} x sd), 90% intervals cover "
            f"the mean in {cover:.0%}"
        )
        if name == "held-out":
            assert 0.7 <= s.mean() / sd <= 1.3
            assert 0.8 <= cover <= 0.97


def test_plugin_standard_error_matches_a_bootstrap():
    X, Y = _replicate(7)
    kw = dict(rff_dim=300, n_modes=2, sigma_x=2.5, sigma_y=3.0)
    spec = SPEC(uncertainty=True, **kw).fit(X, Y)
    rng = np.random.default_rng(0)
    boot = []
    for _ in range(30):
        rows = rng.integers(0, N, N)
        boot.append(SPEC(**kw).fit(X[rows], Y[rows]).eigenvalues_[[0, 2]])
    sd = np.std(boot, axis=0, ddof=1)
    ratio = spec.uncertainty_.eigenvalue_se[[0, 2]] / sd
    print(f"plug-in se / bootstrap sd, top and bottom: {ratio}")
    assert np.all((0.6 <= ratio) & (ratio <= 1.5))


@slow
def test_rff_error_is_the_spread_over_draws_of_the_frequencies():
    X, Y = _replicate(3)
    kw = dict(rff_dim=200, n_modes=2, sigma_x=2.5, sigma_y=3.0, uncertainty=True)
    fits = [SPEC(random_state=s, **kw).fit(X, Y) for s in range(16)]
    sd = np.std([f.eigenvalues_ for f in fits], axis=0, ddof=1)
    reported = np.mean([f.uncertainty_.rff_error for f in fits], axis=0)
    print(f"RFF error reported {reported}, spread over 16 draws {sd}")
    assert np.all((0.5 * sd <= reported) & (reported <= 2.0 * sd))


def test_the_random_feature_terms_sum_to_the_numbers_they_spread(monkeypatch):
    """The infinitesimal jackknife splits each number into per-column terms: they must add up
    to the plug-in eigenvalue and to the held-out value exactly."""
    from speclens.spec.crossfit import _column_terms

    X, Y = _replicate(5)
    spec = SPEC(rff_dim=100, n_modes=2, sigma_x=2.5, sigma_y=3.0, uncertainty=True).fit(X, Y)
    w, m_x = spec.directions_, spec.gram_state_.m_x
    s = np.where(np.arange(w.shape[0]) < m_x, 1.0, -1.0)
    np.testing.assert_allclose((s[:, None] * w * w).sum(axis=0), spec.eigenvalues_, rtol=1e-9)
    assert np.all(spec.uncertainty_.rff_error > 0)
    assert np.all(spec.uncertainty_.heldout_rff > 0)
    # the held-out value (eta 1: no diagonal term), from the scoring pass's state
    import speclens.spec.assessment as assessment

    seen = {}
    real = assessment.assess

    def spy(eigenvalues, state, m_x, eta, *rest):
        seen["state"], seen["m_x"] = state, m_x
        return real(eigenvalues, state, m_x, eta, *rest)

    monkeypatch.setattr(assessment, "assess", spy)
    u = SPEC(rff_dim=100, n_modes=2, sigma_x=2.5, sigma_y=3.0, uncertainty=True).fit(X, Y)
    sign = np.where(np.arange(seen["state"].g.shape[1]) < seen["m_x"], 1.0, -1.0)
    terms = _column_terms(seen["state"], sign, 16)
    np.testing.assert_allclose(terms.sum(axis=0), u.uncertainty_.heldout, rtol=1e-9)


# --- the statistics against brute force -------------------------------------------------------
def test_heldout_ratio_and_its_jackknife_equal_the_explicit_pairs():
    rng = np.random.default_rng(1)
    n, G = 120, 6
    K = rng.standard_normal((n, n))
    K = (K + K.T) / 2  # any symmetric pair kernel
    f = rng.standard_normal(n)
    groups = rng.integers(0, G, n)

    def ratio(rows):
        pairs = [(i, j) for i in rows for j in rows if groups[i] != groups[j]]
        num = np.mean([f[i] * f[j] * K[i, j] for i, j in pairs])
        return num / np.mean(f[rows] ** 2)

    # the kernel as a factor K = P S P^T, P the eigenvectors scaled: g_b = P^T f over group b
    evals, vecs = np.linalg.eigh(K)
    P = vecs * np.sqrt(np.abs(evals))
    g = np.stack([P[groups == b].T @ f[groups == b] for b in range(G)])[:, :, None]
    cross = np.einsum("bmc,m,dmc->bdc", g, np.sign(evals), g)
    counts = np.bincount(groups, minlength=G)
    sq = np.array([[(f[groups == b] ** 2).sum()] for b in range(G)])
    value, se = heldout_ratio(cross, counts, sq)
    everyone = np.arange(n)
    np.testing.assert_allclose(value[0], ratio(everyone), rtol=1e-10)
    drops = np.array([ratio(everyone[groups != b]) for b in range(G)])
    jack = np.sqrt((G - 1) / G * ((drops - drops.mean()) ** 2).sum())
    np.testing.assert_allclose(se[0], jack, rtol=1e-10)


def _overlap(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """sum_i min(p_i, q_i) of the unit-sum squares of every pair of columns."""
    p, q = p**2 / (p**2).sum(axis=0), q**2 / (q**2).sum(axis=0)
    return np.minimum(p[:, :, None], q[:, None, :]).sum(axis=0)


def test_stability_matches_swapped_modes_and_reads_noise_as_dissolved():
    rng = np.random.default_rng(3)
    n = 400
    group = np.zeros((n, 2))
    group[:60, 0], group[60:120, 1] = 1.0, 1.0  # two groups, one per mode

    def fit(noise):  # a fit's two directions: its groups with weights that vary within them
        return group * (1 + 0.3 * rng.random((n, 2))) + noise * rng.standard_normal((n, 2))

    whole, a, b = fit(0.01), fit(0.01), fit(0.01)[:, ::-1]  # half B finds them swapped
    overlap = np.stack([_overlap(whole, a), _overlap(whole, b), _overlap(a, b)])
    # the modes of one direction (n_modes 1 per end would forbid matching): both at one end
    stable = matched_stability(overlap, 2)
    pa, pb = a**2 / (a**2).sum(axis=0), b[:, ::-1] ** 2 / (b[:, ::-1] ** 2).sum(axis=0)
    exact = np.minimum(pa, pb).sum(axis=0) / np.maximum(pa, pb).sum(axis=0)
    np.testing.assert_allclose(stable, exact, rtol=1e-12)  # the weighted Jaccard
    assert np.all(stable >= 0.75)  # unequal members in a different order: still stable
    noise = [rng.standard_normal((n, 2)) for _ in range(3)]
    overlap = np.stack([_overlap(noise[0], noise[1]), _overlap(noise[0], noise[2])])
    overlap = np.concatenate([overlap, _overlap(noise[1], noise[2])[None]])
    assert np.all(matched_stability(overlap, 2) < 0.5)  # independent noise: dissolved


def test_holm_ties_and_the_plugin_formula():
    np.testing.assert_allclose(holm(np.array([0.01, 0.04, 0.03, 0.2])), [0.04, 0.09, 0.09, 0.2])
    v = np.zeros(100)
    v[:25] = 0.2  # a unit vector carried by 25 samples
    lam = 0.3
    # influence lam (n v_i^2 - 1): its variance over the samples, divided by n
    n = v.size
    influence = lam * (n * v**2 - 1)
    np.testing.assert_allclose(
        plugin_se(np.array([lam]), np.array([(v**4).sum()]), n), np.sqrt((influence**2).mean() / n)
    )
    ties = near_ties(np.array([0.5, 0.49, 0.1, -0.3, -0.1, -0.09]), np.full(6, 0.01), 3, 1.645)
    assert ties.tolist() == [True, True, False, False, True, True]


def test_bad_values_are_one_sentence():
    X, Y = _null_data(0)
    with pytest.raises(ValueError, match="confidence must be between 0 and 1"):
        SPEC(confidence=1.5, uncertainty=True).fit(X, Y)
    with pytest.raises(ValueError, match=r"held-out halves have \d+ and \d+ samples.*n_modes"):
        SPEC(n_modes=8, rff_dim=50, uncertainty=True).fit(X[:30], Y[:30])
