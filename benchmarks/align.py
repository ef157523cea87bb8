"""SPEC-align on the embedded sample: held-out SPEC-diff and k-NN label accuracy before and after.

Embeds the generated sample with two weight-free encoders, trains an adapter on a seeded half
of the rows to align X (``--x``) to the reference Y (``--y``) and measures, on the other half:

* SPEC-diff both ways (``x_over_y``: groups X ties together and Y does not; ``y_over_x``: the
  reference's groups X misses, the side SPEC-align lowers) with Gaussian kernels at the
  default bandwidth (half the median distance), the aligned embedding's bandwidth recomputed
  by that heuristic, and again with X's bandwidth kept fixed; plus at the full median
  (``--sigma-scale``) to see whether a change depends on the bandwidth;
* k-NN accuracy (k=10) of the label (colour x shape) and of each factor.

    .venv/bin/python benchmarks/align.py                     # hog aligned to grad-hist
    .venv/bin/python benchmarks/align.py --x pixels --y hue-hist --kind mlp --preserve-weight 0
    .venv/bin/python benchmarks/align.py --x hue-hist --y grad-hist --which x_over_y
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from speclens.datasets import sample
from speclens.encoders import get_encoder
from speclens.spec import SPEC
from speclens.spec.adapter import fit_adapter
from speclens.spec.probes import knn_accuracy

FACTORS = ("label", "colour", "shape", "size", "texture")


def spec_diff(x, y, sigma_scale=0.5, sigma_x=None, seed=0):
    spec = SPEC(
        rff_dim=1000, n_modes=1, sigma_scale=sigma_scale, sigma_x=sigma_x, random_state=seed
    ).fit(x, y)
    return spec.spec_diff_, spec.sigma_x_


def measure(n=2000, x_id="hog", y_id="grad-hist", seed=0, **adapter):
    images, factors, _ = sample.generate(n, seed=seed)
    X = get_encoder(x_id, device="cpu").encode(images)
    Y = get_encoder(y_id, device="cpu").encode(images)
    perm = np.random.default_rng(seed).permutation(n)
    tr, te = np.sort(perm[: n // 2]), np.sort(perm[n // 2 :])
    t0 = time.perf_counter()
    ad = fit_adapter(X[tr], Y[tr], random_state=seed, **adapter)
    seconds = time.perf_counter() - t0
    Z = ad.transform(X)
    labels = {f: getattr(factors, f) for f in FACTORS if f != "label"}
    labels["label"] = factors.label
    out = {"seconds": seconds, "config": ad.config}
    for scale in (0.5, 1.0):
        before, sx = spec_diff(X[te], Y[te], scale, seed=seed)
        after, _ = spec_diff(Z[te], Y[te], scale, seed=seed)
        fixed, _ = spec_diff(Z[te], Y[te], scale, sigma_x=sx, seed=seed)
        out[scale] = {"before": before, "after": after, "after_fixed_sigma": fixed}
    out["knn"] = {
        f: (knn_accuracy(X[tr], v[tr], X[te], v[te]), knn_accuracy(Z[tr], v[tr], Z[te], v[te]))
        for f, v in ((f, labels[f]) for f in FACTORS)
    }
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--x", default="hog")
    p.add_argument("--y", default="grad-hist")
    p.add_argument("--kind", default="linear")
    p.add_argument("--which", default="y_over_x")
    p.add_argument("--preserve", default="neighbours")
    p.add_argument("--preserve-weight", type=float, default=0.01)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=None, help="default: the adapter's")
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    r = measure(
        a.n,
        a.x,
        a.y,
        a.seed,
        kind=a.kind,
        which=a.which,
        preserve=a.preserve,
        preserve_weight=a.preserve_weight,
        epochs=a.epochs,
        lr=a.lr,
        **({} if a.batch_size is None else {"batch_size": a.batch_size}),
    )
    print(
        f"X={a.x} aligned to Y={a.y}: n={a.n} (half train, half held out), adapter {a.kind}, "
        f"which={a.which}, preserve={a.preserve} x {a.preserve_weight}, {r['seconds']:.1f} s"
    )
    for scale in (0.5, 1.0):
        print(f"held-out SPEC-diff, Gaussian kernels at {scale} x median distance:")
        s = r[scale]
        for side in ("x_over_y", "y_over_x"):
            b, af, fx = s["before"][side], s["after"][side], s["after_fixed_sigma"][side]
            print(
                f"  {side:9s} before {b:.4f}  after {af:.4f} (ratio {af / b:.2f})  "
                f"after, X's sigma kept {fx:.4f} (ratio {fx / b:.2f})"
            )
    print("held-out k-NN accuracy (k=10), before -> after:")
    for f, (b, af) in r["knn"].items():
        print(f"  {f:8s} {b:.3f} -> {af:.3f}  ({100 * (af - b):+.1f} points)")


if __name__ == "__main__":
    main()
