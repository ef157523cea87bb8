"""SPEC-align on the embedded sample (issue 6's acceptance), small and quick.

Sign convention: with X the embedding being aligned and Y the reference, ``y_over_x`` is the
reference's groups that X misses (what the align flow reports as the reference-over-encoder
``x_over_y``, since it compares with the reference as X): the side SPEC-align lowers.

* ``pixels`` aligned to ``hue-hist``: the colour groups are in the pixels, so an adapter
  halves the held-out gap, with the aligned bandwidth recomputed by the heuristic and with
  X's bandwidth kept; colour stays perfectly separable.
* ``hue-hist`` aligned to ``grad-hist``: a hue histogram holds no shape information, so no map
  of it can capture grad-hist's shape groups; the gap stays where it was.
* The acceptance's second clause (label k-NN, colour x shape, within 2 points) does not hold
  for pixels: alignment to hue-hist trades pixels' weak shape cue for hue-hist's texture and
  size groups (see benchmarks/align.py); recorded as an expected failure.
"""

import numpy as np
import pytest

from speclens.datasets import sample
from speclens.encoders import get_encoder
from speclens.spec import SPEC
from speclens.spec.adapter import fit_adapter
from speclens.spec.probes import knn_accuracy

pytestmark = pytest.mark.usefixtures("torch_one_thread")

N = 600


@pytest.fixture(scope="module")
def embedded():
    images, factors, _ = sample.generate(N, seed=0)
    emb = {e: get_encoder(e, device="cpu").encode(images) for e in ("pixels", "hue-hist",
                                                                   "grad-hist")}
    perm = np.random.default_rng(0).permutation(N)
    return emb, factors, np.sort(perm[: N // 2]), np.sort(perm[N // 2 :])


def _align(embedded, x_id, y_id, **options):
    emb, factors, tr, te = embedded
    X, Y = emb[x_id], emb[y_id]
    Z = fit_adapter(X[tr], Y[tr], kind="mlp", epochs=60, batch_size=150, **options).transform(X)
    before = SPEC(rff_dim=500, n_modes=1).fit(X[te], Y[te])
    after = SPEC(rff_dim=500, n_modes=1).fit(Z[te], Y[te]).spec_diff_
    kept = SPEC(rff_dim=500, n_modes=1, sigma_x=before.sigma_x_).fit(Z[te], Y[te]).spec_diff_
    return X, Z, before.spec_diff_, after, kept


@pytest.fixture(scope="module")
def pixels_to_hue(embedded):
    return _align(embedded, "pixels", "hue-hist", preserve_weight=0.0)


def _knn(embedded, Z, factor):
    _, factors, tr, te = embedded
    y = getattr(factors, factor)
    return knn_accuracy(Z[tr], y[tr], Z[te], y[te], k=10)


def test_pixels_aligned_to_hue_hist_halves_the_reference_gap(embedded, pixels_to_hue):
    X, Z, before, after, kept = pixels_to_hue
    assert after["y_over_x"] <= 0.5 * before["y_over_x"]
    assert kept["y_over_x"] <= 0.5 * before["y_over_x"]
    assert _knn(embedded, Z, "colour") >= 0.99


def test_hue_hist_cannot_capture_shape_groups(embedded):
    _, _, before, after, _ = _align(embedded, "hue-hist", "grad-hist")
    assert after["y_over_x"] >= 0.9 * before["y_over_x"]


@pytest.mark.xfail(strict=True, reason="pixels' weak shape cue is traded for hue-hist's "
                   "texture/size groups: label k-NN drops 4-11 points (benchmarks/align.py)")
def test_label_knn_within_two_points(embedded, pixels_to_hue):
    X, Z, *_ = pixels_to_hue
    assert _knn(embedded, Z, "label") >= _knn(embedded, X, "label") - 0.02
