"""Bad input to the engine: one ValueError naming the argument and the fix."""

import numpy as np
import pytest

from speclens.spec import SPEC, GaussianRFF, GramAccumulator, planted_pair

rng = np.random.default_rng(0)
X = rng.standard_normal((50, 4))
Y = rng.standard_normal((50, 6))


@pytest.mark.parametrize(
    "x, y, pattern",
    [
        (X, Y[:49], "X has 50 rows but Y has 49.*join them on sample_id"),
        (X[:, 0], Y, "X must be a 2-D array.*reshape"),
        (X, np.empty((0, 6)), "Y is empty"),
        (
            np.where(np.arange(200).reshape(50, 4) == 13, np.nan, X),
            Y,
            "X has 1 row.*NaN or Inf.*row 3",
        ),
        (X, np.where(np.arange(300).reshape(50, 6) == 7, np.inf, Y), "Y has 1 row.*NaN or Inf"),
        (X.astype(str), Y, "X must hold numbers"),
    ],
)
def test_bad_arrays(x, y, pattern):
    with pytest.raises(ValueError, match=pattern):
        SPEC(rff_dim=10, n_modes=1).fit(x, y)


@pytest.mark.parametrize(
    "params, pattern",
    [
        (dict(sigma_x=0.0), "sigma_x must be a positive number"),
        (dict(sigma_y=-1.0), "sigma_y must be a positive number"),
        (dict(rff_dim=0), "rff_dim must be >= 1"),
        (dict(eta=0), "eta must be a positive number"),
        (dict(n_modes=0), "n_modes must be >= 1"),
        (dict(kernel_x="laplace"), "kernel_x must be one of"),
        (dict(solver="arpack"), "solver must be one of"),
        (dict(dtype="float16"), "dtype must be 'float32' or 'float64'"),
        (dict(device="tpu"), "device must be 'cpu'"),
    ],
)
def test_bad_parameters(params, pattern):
    with pytest.raises(ValueError, match=pattern):
        SPEC(**{"rff_dim": 10, "n_modes": 1, **params}).fit(X, Y)


def test_n_modes_above_rank():
    with pytest.raises(
        ValueError, match=r"n_modes=6 asks for 12 eigenpairs.*rank at most 10.*n_modes <= 5"
    ):
        SPEC("cosine", "cosine", n_modes=6).fit(X, Y)
    with pytest.raises(ValueError, match=r"n_modes=30 asks for 60.*n_samples=50.*n_modes <= 25"):
        SPEC(rff_dim=100, n_modes=30).fit(X, Y)


def test_zero_norm_rows_with_cosine():
    x = X.copy()
    x[5] = 0
    with pytest.raises(ValueError, match="zero norm.*cosine"):
        SPEC("cosine", "cosine", n_modes=1).fit(x, Y)


def test_constant_embedding_needs_an_explicit_sigma():
    with pytest.raises(ValueError, match="sigma_x: the sampled rows are all identical.*pass sigma"):
        SPEC(rff_dim=10, n_modes=1).fit(np.ones((50, 4)), Y)


def test_unfitted_and_mismatched_widths():
    with pytest.raises(ValueError, match="not fitted"):
        SPEC().transform(X, Y)
    with pytest.raises(ValueError, match="not fitted"):
        GaussianRFF(1.0, 5).transform(X)
    acc = GramAccumulator(GaussianRFF(1.0, 5).fit(4), GaussianRFF(1.0, 5).fit(6))
    with pytest.raises(
        ValueError, match="y_chunk has 4 features but its feature map was fitted for 6"
    ):
        acc.update(X, X)
    with pytest.raises(ValueError, match="x_chunk has 50 rows but y_chunk has 10"):
        acc.update(X, Y[:10])


def test_solve_from_a_state_is_fully_fitted_or_says_what_is_missing():
    p = planted_pair(n=300, dx=6, dy=8, group_size=30, random_state=2)
    fx, fy = GaussianRFF(2.0, 100, 0).fit(p.X), GaussianRFF(3.0, 100, 0).fit(p.Y)
    state = GramAccumulator(fx, fy, dtype="float64").update(p.X, p.Y).state()
    bare = SPEC(rff_dim=100, n_modes=2, dtype="float64").solve(state)
    assert bare.eigenvalues_.shape == (4,) and bare.sigma_x_ is None
    for call in (
        lambda: bare.transform(p.X, p.Y),
        lambda: bare.fit_signs(p.X, p.Y),
        lambda: bare.raw_scores(p.X, p.Y),
    ):
        with pytest.raises(ValueError, match="without its feature maps.*solve\\(state, feature_x"):
            call()
    full = SPEC(rff_dim=100, n_modes=2, dtype="float64").solve(state, fx, fy)
    assert (full.sigma_x_, full.sigma_y_) == (2.0, 3.0)
    ref = SPEC(sigma_x=2.0, sigma_y=3.0, rff_dim=100, n_modes=2, dtype="float64").fit(p.X, p.Y)
    np.testing.assert_allclose(
        full.fit_signs(p.X, p.Y).transform(p.X, p.Y), ref.transform(p.X, p.Y), atol=1e-10
    )
    with pytest.raises(ValueError, match="Gram state is 400 wide with m_x=200; pass the maps"):
        SPEC(n_modes=2).solve(state, fx, GaussianRFF(3.0, 50, 0).fit(p.Y))
    with pytest.raises(ValueError, match="signs must hold \\+1 or -1 for each of the 4 modes"):
        SPEC(n_modes=2).solve(state, fx, fy, signs=[1, 1])
