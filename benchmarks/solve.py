"""Benchmark the compare flow's solve stage (``solve_spectrum``) at m = 4,000: the old way and
the new way side by side, per part, in one process.

Builds one realistic Gram state first (not timed): n rows of random data (dx, dy), Gaussian
random features at half the median distance, accumulated per half of the samples as the flow
does with the uncertainty (the halves sum to the plain state), saved as ``gram.npz`` and
``gram-halves.npz`` with the frequencies. Then ``repeats`` times, interleaved, it runs the real
task ``solve_spectrum.fn`` without and with the uncertainty, once as it is and once with the
old internals put back (the functions of commit daf32d4, copied below: ``np.load`` through the
zip stream; Cholesky, T by one triangular product then symmetrised, ARPACK to machine
precision, the whole spectrum by OpenBLAS's float32 ``eigvalsh``; the check's four half-width
solves by ARPACK to 1e-8 from sub-blocks of a second copy of G). Prints per part the fastest
of the repeats, old, new and old / new, and how far the new numbers are from the old.

    python benchmarks/solve.py                               # n = 30,000, rff_dim 1000: m 4,000
    python benchmarks/solve.py --n 2000 --rff-dim 100 --repeats 1   # quick
    python benchmarks/solve.py --uncertainty off --repeats 3         # one setting only
    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 python benchmarks/solve.py --clock cpu
        # the CPU seconds of each part, single-threaded: steadier when other work shares the machine
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import tempfile
import time
from collections import defaultdict
from unittest import mock

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")

import numpy as np  # noqa: E402
import scipy.linalg  # noqa: E402
import scipy.sparse.linalg  # noqa: E402
from scipy.linalg.blas import dtrmm, dtrmv  # noqa: E402

TIMES: dict = defaultdict(float)
CLOCK = {"now": time.perf_counter}
#: the parts inside SPEC.solve (the others are the task's own calls)
INNER = ("factor", "reduce", "lanczos", "spectrum")
PARTS = ("load", *INNER, "solve (all)", "check", "halves", "save")


@contextlib.contextmanager
def part(name: str):
    t0 = CLOCK["now"]()
    try:
        yield
    finally:
        TIMES[name] += CLOCK["now"]() - t0


def timed(name: str, fn):
    def wrapper(*args, **kwargs):
        with part(name):
            return fn(*args, **kwargs)

    return wrapper


# ---- the old internals (commit daf32d4), timed by part ---------------------------------
def old_load_npz(url: str) -> dict:
    from speclens.storage import urls

    with np.load(io.BytesIO(urls.read_bytes(url)), allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def old_factor(G, n_samples):
    from scipy.linalg.lapack import dpstrf

    m = G.shape[0]
    if n_samples is None or n_samples >= m:
        try:
            L = scipy.linalg.cholesky(G, lower=True, check_finite=False)
            if np.all(np.isfinite(L)) and np.all(np.diag(L) > 0):
                return L.T, "cholesky"
        except np.linalg.LinAlgError:
            pass
    c, piv, rank, info = dpstrf(G, lower=1, tol=-1.0)
    B = np.zeros((rank, m))
    B[:, piv - 1] = np.tril(c[:, :rank]).T
    return B, "pivoted-cholesky"


def old_reduced(B, s, triangular):
    if triangular:
        L = np.asfortranarray(B.T)
        T = dtrmm(1.0, L, np.multiply(B, s, order="F"), side=1, lower=1, overwrite_b=1)
    else:
        T = (B * s) @ B.T
    return (T + T.T) / 2.0


def old_lanczos(T, k, random_state, tol=0.0):
    rng = np.random.default_rng(random_state)
    v0 = rng.standard_normal(T.shape[0])
    ncv = min(T.shape[0], max(4 * k + 1, 32))
    values, vectors = scipy.sparse.linalg.eigsh(T, k=2 * k, which="BE", v0=v0, ncv=ncv, tol=tol)
    order = np.argsort(values)
    pick = np.concatenate([order[::-1][:k], order[:k]])
    return values[pick], vectors[:, pick]


def old_solve_modes(G, m_x, n_modes, solver="auto", random_state=0, n_samples=None,
                    spectrum=True, tol=0.0, factor=None):  # fmt: skip
    from speclens.spec.eigen import Modes, side_signs

    if factor is not None:  # a state that kept its rows: the old solve formed its Gram
        G = factor.T @ factor

    inner = TIMES.get("_inside", False)
    tick = part if inner else (lambda name: contextlib.nullcontext())
    with tick("factor"):
        B, how = old_factor(G, n_samples)
    r, s = B.shape[0], side_signs(G.shape[0], m_x)
    use_eigh = solver == "eigh" or (solver == "auto" and spectrum and r <= 1200)
    use_eigh = use_eigh or 2 * n_modes + 1 >= r
    whole = np.empty(0)
    with tick("reduce"):
        if use_eigh or spectrum:
            T = old_reduced(B, s, how == "cholesky")
        else:
            L = np.asfortranarray(B.T)
            prod = lambda v: dtrmv(L, s * dtrmv(L, v, lower=1, trans=0), lower=1, trans=1)  # noqa: E731
            T = scipy.sparse.linalg.LinearOperator((r, r), matvec=prod, dtype=np.float64)
    if use_eigh:
        evals, U = scipy.linalg.eigh(T, check_finite=False)
        whole, top, bottom = evals[::-1], np.arange(r - 1, r - 1 - n_modes, -1), np.arange(n_modes)
        eigenvalues = np.concatenate([evals[top], evals[bottom]])
        U = np.concatenate([U[:, top], U[:, bottom]], axis=1)
    else:
        with tick("lanczos"):
            eigenvalues, U = old_lanczos(T, n_modes, random_state, tol)
        if isinstance(T, np.ndarray):
            with tick("spectrum"):
                big = T.astype(np.float32) if r > 1200 else T
                whole = scipy.linalg.eigvalsh(big, check_finite=False)[::-1].astype(np.float64)
    directions = s[:, None] * (B.T @ U)
    used = "eigh" if use_eigh else "lanczos"
    return Modes(eigenvalues, directions, r, how, used, whole if spectrum else np.empty(0))


def old_gram_check(
    state, feature_x, feature_y, eta, eigenvalues, n_modes, seed=0, splits=2, factor=None
):  # factor: the new check's low-rank shortcut, which the old internals did not have
    from speclens.spec.gram import gram_from_state
    from speclens.spec.rff_check import check_from_solver, keep_units
    from speclens.spec.rff_error import frequency_units

    col_units, D = frequency_units(feature_x, feature_y)
    G = gram_from_state(state, eta)

    def solve(units):
        keep, scale = keep_units(col_units, D, units)
        sub = G[np.ix_(keep, keep)] * np.outer(scale, scale)
        m_x = int((keep < state.m_x).sum())
        return old_solve_modes(
            sub, m_x, n_modes, "auto", seed, state.count, False, 1e-8
        ).eigenvalues

    return check_from_solver(solve, eigenvalues, D, splits, seed)


# ---- the fixture and the runs ------------------------------------------------------------
def build(a, root: str) -> tuple:
    from speclens.spec import GaussianRFF, GramAccumulator, merge_states
    from speclens.spec.crossfit import HalfGram, groups_of
    from speclens.spec.features import median_distance
    from speclens.storage.arrays import save_npz
    from speclens.tasks.mapreduce import save_frequencies
    from speclens.tasks.uncertainty import save_halves

    rng = np.random.default_rng(1)
    X = rng.standard_normal((a.n, a.dx), dtype=np.float32)
    Y = rng.standard_normal((a.n, a.dy), dtype=np.float32)
    sx, sy = 0.5 * median_distance(X), 0.5 * median_distance(Y)
    fx, fy = GaussianRFF(sx, a.rff_dim, 0).fit(X), GaussianRFF(sy, a.rff_dim, 0).fit(Y)
    groups = groups_of(np.arange(a.n), 0)
    halves = HalfGram(lambda: GramAccumulator(fx, fy)).update(X, Y, groups).states()
    save_halves(f"{root}/gram-halves.npz", halves)
    save_npz(f"{root}/gram.npz", **merge_states(*halves).to_arrays())
    freq = save_frequencies(f"{root}/frequencies.npz", fx, fy)
    prep = {"frequencies": freq, "rff_dim": a.rff_dim, "sigma_x": sx, "sigma_y": sy}
    return prep, f"{root}/gram.npz"


def run_task(old: bool, uncertainty: bool, prep: dict, gram_url: str, root: str, a) -> dict:
    """One ``solve_spectrum.fn``; returns its result and the seconds of each part."""
    import speclens.spec.eigen as eigen
    import speclens.tasks.compare as compare
    from speclens.spec import SPEC
    from speclens.tasks.params import CompareParams

    params = CompareParams(rff_dim=a.rff_dim, n_modes=5, uncertainty=uncertainty)
    TIMES.clear()
    solve = SPEC.solve

    def timed_solve(*args, **kwargs):
        TIMES["_inside"] = True
        try:
            with part("solve (all)"):
                return solve(*args, **kwargs)
        finally:
            TIMES["_inside"] = False

    def inner(name, fn):
        return lambda *x, **k: timed(name, fn)(*x, **k) if TIMES.get("_inside") else fn(*x, **k)

    patches = [
        mock.patch.object(SPEC, "solve", timed_solve),
        mock.patch.object(compare, "gram_check", timed("check", compare.gram_check)),
        mock.patch.object(compare, "solve_halves", timed("halves", compare.solve_halves)),
        mock.patch.object(compare, "save_npz", timed("save", compare.save_npz)),
        mock.patch.object(compare, "load_npz", timed("load", compare.load_npz)),
    ]
    if old:
        patches += [
            # SPEC.solve and the halves' fits both reach it through eigen.state_modes
            mock.patch("speclens.spec.eigen.solve_modes", old_solve_modes),
            mock.patch.object(compare, "gram_check", timed("check", old_gram_check)),
            mock.patch.object(compare, "load_npz", timed("load", old_load_npz)),
            mock.patch("speclens.tasks.uncertainty.load_npz", old_load_npz),
        ]
    else:
        patches += [
            mock.patch.object(eigen, n, inner(p, getattr(eigen, n)))
            for n, p in (("_factor", "factor"), ("_reduced", "reduce"),
                         ("_lanczos_ends", "lanczos"), ("whole_spectrum", "spectrum"))
        ]  # fmt: skip
    with contextlib.ExitStack() as stack:
        for p in patches:
            stack.enter_context(p)
        t0 = CLOCK["now"]()
        result = compare.solve_spectrum.fn(gram_url, params, prep, root)
        total = CLOCK["now"]() - t0
    times = {k: v for k, v in TIMES.items() if not k.startswith("_")}
    return {"result": result, "times": times | {"total": total}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--n", type=int, default=30_000)
    p.add_argument("--dx", type=int, default=512)
    p.add_argument("--dy", type=int, default=768)
    p.add_argument("--rff-dim", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--uncertainty", choices=("off", "on", "both"), default="both")
    p.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="wall: seconds elapsed; cpu: CPU seconds of the process (all its threads), steadier "
        "on a machine other work shares (run with OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 for "
        "the work of each part alone)",
    )
    a = p.parse_args()
    CLOCK["now"] = time.perf_counter if a.clock == "wall" else time.process_time
    import speclens.tasks.compare  # noqa: F401  (prefect, torch: imported outside the timings)
    from speclens.storage.arrays import load_npz

    with tempfile.TemporaryDirectory(prefix="speclens-solve-") as root:
        t0 = time.perf_counter()
        prep, gram_url = build(a, root)
        print(
            f"solve benchmark: n={a.n:,} dx={a.dx} dy={a.dy} rff_dim={a.rff_dim} "
            f"(m={4 * a.rff_dim}), n_modes=5; Gram state built in {time.perf_counter() - t0:.1f} s "
            f"(not timed); {a.clock} seconds, fastest of {a.repeats}, old / new interleaved",
            flush=True,
        )
        best: dict = {}
        runs: dict = {}
        settings = {"off": (False,), "on": (True,), "both": (False, True)}[a.uncertainty]
        for _ in range(a.repeats):
            for unc in settings:
                for old in (True, False):
                    r = run_task(old, unc, prep, gram_url, root, a)
                    runs[old, unc] = r
                    if unc:
                        runs[old, unc]["halves"] = load_npz(f"{root}/solution.npz")
                    for k, v in r["times"].items():
                        best[old, unc, k] = min(best.get((old, unc, k), np.inf), v)
        for unc in settings:
            print(f"\nuncertainty {'on' if unc else 'off'}:     old (s)   new (s)   old / new")
            names = [*PARTS, "total"] if unc else [n for n in (*PARTS, "total") if n != "halves"]
            for name in names:
                o, n = best.get((True, unc, name), 0.0), best.get((False, unc, name), 0.0)
                ratio = f"{o / n:9.2f}" if n > 0 else "        -"
                print(f"  {name:12s} {o:9.3f} {n:9.3f} {ratio}")
        if True in settings:
            report_differences(runs)


def report_differences(runs: dict) -> None:
    """How far the new numbers are from the old ones (the same state, seed and modes)."""
    old, new = runs[True, True]["result"], runs[False, True]["result"]
    lam_o, lam_n = np.array(old["eigenvalues"]), np.array(new["eigenvalues"])
    scale = np.abs(lam_o).max()
    wo, wn = runs[True, True]["halves"], runs[False, True]["halves"]
    diff = {}
    for key in ("weights", "weights_a", "weights_b"):
        a, b = wo[key], wn[key]
        b = b * np.sign(np.sum(a * b, axis=0))  # a direction's sign is arbitrary
        diff[key] = float(np.max(np.linalg.norm(a - b, axis=0) / np.linalg.norm(a, axis=0)))
    mass = abs(new["abs_mass"] - old["abs_mass"]) / old["abs_mass"]
    bias = np.max(np.abs(np.array(new["rff_bias"]) - old["rff_bias"])) / scale
    print(
        f"\nnew against old: eigenvalues {np.max(np.abs(lam_n - lam_o)) / scale:.1e} of the "
        f"largest; score weights (relative, per mode) whole {diff['weights']:.1e}, half A "
        f"{diff['weights_a']:.1e}, half B {diff['weights_b']:.1e}; absolute mass {mass:.1e} "
        f"(relative); random-feature bias {bias:.1e} of the largest eigenvalue"
    )


if __name__ == "__main__":
    main()
