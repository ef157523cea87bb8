"""How far random-feature eigenvalues are from the exact ones on real images, what speclens
estimates that distance to be, and what ``rff_dim='auto'`` chooses.

Takes n of the packaged MNIST digits embedded by the demo's two packaged models (cached as
``benchmarks/uncertainty.py`` caches them) and, for each bandwidth scale and feature count,
prints over several seeds of the frequencies: the leading eigenvalue of each direction against
the exact n x n one (mean relative error and its spread), the run's own estimate of that error
(``runs.rff_rel_error``: halves of its frequencies), and the ratio of successive shifts
(``lam(D/4) - lam(D/2)`` over ``lam(D/2) - lam(D)``: 2 under a 1/D law, 1.41 under 1/sqrt D).
Then ``--rff-dim auto`` at each scale: the count it chose and the error left against exact.

    python benchmarks/bandwidth.py                 # 500 digits, scales 0.3 and 0.5
    python benchmarks/bandwidth.py --n 2000 --scales 0.3
"""

from __future__ import annotations

import argparse
import pathlib

import numpy as np
from uncertainty import embed_digits  # noqa: I001 (the sibling script: same digits, same cache)


def leading(values: np.ndarray, k: int) -> np.ndarray:
    return np.asarray(values)[[0, k]]


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--n", type=int, default=500)
    p.add_argument("--scales", default="0.3,0.5")
    p.add_argument("--dims", default="250,500,1000,2000,4000")
    p.add_argument("--seeds", type=int, default=4)
    p.add_argument("--n-modes", type=int, default=3)
    p.add_argument("--cache", default=None, help="embeddings .npz (default: next to the cwd)")
    a = p.parse_args()
    from speclens.spec import SPEC, GaussianRFF
    from speclens.spec.exact import exact_ends
    from speclens.spec.rff_check import choose_rff_dim, gram_check, relative_error

    x, y, _ = embed_digits(a.n, pathlib.Path(a.cache or f"speclens-bench-digits-{a.n}.npz"))
    x, y, k = x.astype(np.float64), y.astype(np.float64), a.n_modes
    print(f"{a.n} MNIST digits, EfficientNet-Lite0 (X) vs DINOv2-initialised ViT (Y)")
    for scale in (float(s) for s in a.scales.split(",")):
        ref = SPEC(rff_dim=8, n_modes=k, sigma_scale=scale).fit(x, y)
        sx, sy = ref.sigma_x_, ref.sigma_y_
        exact = leading(exact_ends(x, y, k, sigma_x=sx, sigma_y=sy), k)
        print(
            f"\nscale {scale}: exact leading eigenvalues {exact[0]:+.5f} (x_over_y) "
            f"{exact[1]:+.5f} (y_over_x)"
        )
        print("  rff_dim   actual error (mean over seeds, sd)   estimated   shift ratio")
        for D in (int(d) for d in a.dims.split(",")):
            actual, estimated, ratios = [], [], []
            for seed in range(a.seeds):
                s = SPEC(
                    rff_dim=D, n_modes=k, sigma_x=sx, sigma_y=sy, random_state=seed, dtype="float64"
                ).fit(x, y)
                c = gram_check(s.gram_state_, s.feature_x_, s.feature_y_, 1.0, s.eigenvalues_, k)
                lam = leading(s.eigenvalues_, k)
                actual.append(np.max(np.abs(lam - exact) / np.abs(exact)))
                estimated.append(relative_error(c, k))
                half = leading(c.half_mean, k)
                if D >= 8:
                    q = SPEC(
                        rff_dim=D // 2,
                        n_modes=k,
                        sigma_x=sx,
                        sigma_y=sy,
                        random_state=seed,
                        dtype="float64",
                    ).fit(x, y)
                    cq = gram_check(
                        q.gram_state_, q.feature_x_, q.feature_y_, 1.0, q.eigenvalues_, k
                    )
                    ratios.append(np.median((leading(cq.half_mean, k) - half) / (half - lam)))
            print(
                f"  {D:>7}   {np.mean(actual):7.1%} ({np.std(actual, ddof=1):.1%})"
                f"                   {np.mean(estimated):7.1%}     {np.median(ratios):5.2f}"
            )

        def features(D, sx=sx, sy=sy):
            fx, fy = GaussianRFF(sx, D, 0).fit(x.shape[1]), GaussianRFF(sy, D, 0).fit(y.shape[1])
            return np.hstack([fx.transform(x), fy.transform(y)]), fx, fy

        auto = choose_rff_dim(features, 1.0, k, 500, 4000, 0.05)
        s = SPEC(
            rff_dim=auto.rff_dim, n_modes=k, sigma_x=sx, sigma_y=sy, random_state=0, dtype="float64"
        ).fit(x, y)
        lam = leading(s.eigenvalues_, k)
        trail = ", ".join(f"{d}: {r:.1%}" for d, r in auto.trail)
        print(
            f"  auto (target 5%): tried {trail} -> rff_dim {auto.rff_dim}; leading "
            f"{lam[0]:+.5f} {lam[1]:+.5f}, actual error "
            f"{np.max(np.abs(lam - exact) / np.abs(exact)):.1%}"
        )


if __name__ == "__main__":
    main()
