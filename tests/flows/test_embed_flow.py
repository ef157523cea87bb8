"""The embed flow on the embedded sample: exact vectors, text towers, resume after SIGKILL,
refusals, and precomputed-vector import."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from speclens.datasets.sources import IngestSource
from speclens.encoders import get_encoder
from speclens.errors import InputError
from speclens.flows.embed import embed
from speclens.flows.ingest import ingest
from speclens.storage import urls
from speclens.storage.dataset_store import DatasetStore
from speclens.storage.embedding_store import EmbeddingStore
from speclens.storage.layout import Layout
from speclens.tasks.embed import DELAY_ENV
from speclens.tasks.vector_import import import_vectors

pytestmark = pytest.mark.integration
N, SEED, SHARD = 96, 5, 16
TINY = "speclens-tiny-vit"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, dask_address):
    out = str(tmp_path_factory.mktemp("embed") / "datasets" / "sample.zarr")
    ingest(
        IngestSource.sample(N, SEED), out, shard_size=SHARD, address=dask_address, progress=False
    )
    return out


def test_default_location_sits_beside_the_datasets_folder(dataset):
    root = dataset.rsplit("/datasets/", 1)[0]
    assert Layout.embedding(dataset, "hue-hist") == f"{root}/embeddings/sample/hue-hist.zarr"
    assert Layout.embedding(dataset, "open_clip:ViT-B-32@openai").endswith(
        "/embeddings/sample/open_clip_ViT-B-32@openai.zarr"
    )


def test_classical_encoders_store_exact_vectors_with_provenance(dataset, prefect_api):
    summaries = embed(
        dataset, ["hue-hist", "grad-hist"], device="cpu", batch_size=10, progress=False
    )
    assert [s["valid"] for s in summaries] == [N, N]
    images = DatasetStore.open(dataset).images()
    for encoder_id, s in zip(["hue-hist", "grad-hist"], summaries, strict=True):
        store = EmbeddingStore.open(s["out"])
        vectors, valid = store.rows()
        assert valid.all() and store.complete
        ref = get_encoder(encoder_id, device="cpu").encode(images)
        np.testing.assert_allclose(vectors, ref, rtol=0, atol=1e-6)
        meta = store.meta
        assert meta["encoder_id"] == encoder_id and meta["normalisation"] == "none"
        assert meta["dataset_input_hash"] == DatasetStore.open(dataset).input_hash
        assert "library_versions" in meta and meta["preprocessing"]
        np.testing.assert_array_equal(store.sample_ids(), DatasetStore.open(dataset).sample_ids())


def test_open_clip_image_and_text_towers(dataset, prefect_api, tmp_path):
    img_out, txt_out = str(tmp_path / "img.zarr"), str(tmp_path / "txt.zarr")
    embed(
        dataset,
        [f"open_clip:{TINY}@random", f"open_clip-text:{TINY}@random"],
        outs=[img_out, txt_out],
        device="cpu",
        batch_size=32,
        normalize=True,
        progress=False,
    )
    img = EmbeddingStore.open(img_out)
    vec, valid = img.rows()
    assert valid.all() and vec.shape == (N, 32) and img.meta["normalisation"] == "l2"
    np.testing.assert_allclose(np.linalg.norm(vec, axis=1), 1.0, atol=1e-5)
    txt = EmbeddingStore.open(txt_out)
    rows = txt.caption_rows()
    caps = DatasetStore.open(dataset).captions()
    assert rows.num_rows == caps.num_rows  # one row per caption
    per_caption = np.asarray(rows["embedding"].to_pylist(), dtype=np.float32)
    ref = get_encoder(f"open_clip-text:{TINY}@random", device="cpu").encode(
        caps["caption"].to_pylist()
    )
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    np.testing.assert_allclose(per_caption, ref, atol=1e-5)
    # the per-image row is the mean of that image's caption vectors
    first = rows["sample_id"][0].as_py()
    mine = per_caption[np.asarray(rows["sample_id"].to_pylist()) == first].mean(axis=0)
    row = list(txt.sample_ids()).index(first)
    np.testing.assert_allclose(txt.rows()[0][row], mine, atol=1e-6)


def _embed_cmd(dataset, out):
    return [
        sys.executable,
        "-m",
        "speclens.cli",
        "embed",
        "--dataset",
        dataset,
        "--encoder",
        "grad-hist",
        "--out",
        out,
        "--device",
        "cpu",
        "--no-progress",
    ]


def test_sigkill_then_rerun_gives_identical_arrays(dataset, flow_env, tmp_path):
    reference = str(tmp_path / "reference.zarr")
    embed(dataset, "grad-hist", outs=[reference], device="cpu", progress=False)
    out = str(tmp_path / "killed.zarr")
    env = {**flow_env, DELAY_ENV: "1.0"}
    proc = subprocess.Popen(
        _embed_cmd(dataset, out),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 120
    while time.time() < deadline and len(urls.list_names(urls.join(out, "_shards"))) < 2:
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    store = EmbeddingStore.open(out)
    done = set(store.markers())
    assert 2 <= len(done) < store.n_shards, "the kill must land mid-run"
    rerun = subprocess.run(_embed_cmd(dataset, out), env=flow_env, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{store.n_shards} shards, {store.n_shards - len(done)} to embed (resuming)" in (
        rerun.stdout + rerun.stderr
    )
    a, b = EmbeddingStore.open(out), EmbeddingStore.open(reference)
    np.testing.assert_array_equal(a.rows()[0], b.rows()[0])
    np.testing.assert_array_equal(a.rows()[1], b.rows()[1])


def test_reusing_a_store_for_another_encoder_is_refused(dataset, prefect_api, tmp_path):
    out = str(tmp_path / "e.zarr")
    embed(dataset, "hue-hist", outs=[out], device="cpu", progress=False)
    with pytest.raises(InputError, match="already holds embeddings of another.*--overwrite"):
        embed(dataset, "grad-hist", outs=[out], device="cpu", progress=False)
    embed(dataset, "grad-hist", outs=[out], device="cpu", overwrite=True, progress=False)
    assert EmbeddingStore.open(out).encoder_id == "grad-hist"


def test_an_input_error_inside_the_flow_is_logged_as_its_sentence(dataset, flow_env, tmp_path):
    """Found by a task (the store holds another encoder's embedding): exit 2, the sentence on
    stderr, and no traceback anywhere in the output, the flow's own log included."""
    out = str(tmp_path / "e.zarr")
    embed(dataset, "hue-hist", outs=[out], device="cpu", progress=False)
    cmd = [
        sys.executable,
        "-m",
        "speclens.cli",
        "embed",
        "--dataset",
        dataset,
        "--encoder",
        "grad-hist",
        "--out",
        out,
        "--device",
        "cpu",
        "--no-progress",
    ]
    result = subprocess.run(cmd, env=flow_env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 2
    output = result.stdout + result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(f"error: {out} already holds")
    logged = [line for line in output.splitlines() if "Task run 'plan-embed" in line]
    assert any(line.endswith("choose another --out.") for line in logged), output  # the sentence
    assert "Traceback" not in output
    assert EmbeddingStore.open(out).encoder_id == "hue-hist"  # nothing was overwritten


def test_a_location_holding_other_files_is_refused_and_kept(dataset, prefect_api, tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    for out in (str(folder), dataset):
        with pytest.raises(InputError, match="which writing an embedding there would delete"):
            embed(dataset, "hue-hist", outs=[out], device="cpu", progress=False)
    assert (folder / "notes.txt").read_text() == "keep me"
    assert DatasetStore.open(dataset).n_samples == N
    np.savez(
        tmp_path / "v.npz",
        embeddings=np.ones((N, 3), np.float32),
        ids=np.array(DatasetStore.open(dataset).sample_ids().tolist(), dtype=str),
    )
    with pytest.raises(InputError, match="which writing an embedding there would delete"):
        import_vectors(str(tmp_path / "v.npz"), dataset, "mine", out=str(folder), overwrite=True)
    assert (folder / "notes.txt").read_text() == "keep me"


def test_missing_weights_fail_fast_through_the_cli(dataset, flow_env, tmp_path):
    env = {**flow_env, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hub")}
    t0 = time.time()
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "speclens.cli",
            "embed",
            "--dataset",
            dataset,
            "--encoder",
            "open_clip:ViT-B-32@openai",
            "--device",
            "cpu",
            "--no-progress",
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2
    assert "open_clip:ViT-B-32@openai" in out.stderr and "safetensors" in out.stderr
    assert time.time() - t0 < 60  # server start included; the encoder itself fails in < 5 s


def _ids_and_vectors(dataset, dim=6):
    ids = DatasetStore.open(dataset).sample_ids()
    rng = np.random.default_rng(0)
    return np.array(ids.tolist(), dtype=str), rng.standard_normal((len(ids), dim)).astype(
        np.float32
    )


def test_import_npz_npy_parquet_in_any_order(dataset, tmp_path):
    ids, vec = _ids_and_vectors(dataset)
    perm = np.random.default_rng(1).permutation(len(ids))
    np.savez(tmp_path / "v.npz", embeddings=vec[perm], ids=ids[perm])
    np.save(tmp_path / "v.npy", vec[perm])
    (tmp_path / "ids.txt").write_text("\n".join(ids[perm]))
    pq.write_table(
        pa.table({"sample_id": ids[perm], "embedding": vec[perm].tolist()}), tmp_path / "v.parquet"
    )
    for name, kw in [
        ("v.npz", {}),
        ("v.npy", {"ids": str(tmp_path / "ids.txt")}),
        ("v.parquet", {}),
    ]:
        s = import_vectors(
            str(tmp_path / name), dataset, f"mine-{name}", out=str(tmp_path / f"{name}.zarr"), **kw
        )
        stored, valid = EmbeddingStore.open(s["out"]).rows()
        assert valid.all()
        np.testing.assert_array_equal(stored, vec)  # back in dataset row order


@pytest.mark.parametrize(
    "case, pattern",
    [
        ("short", "96 vectors but 95 ids"),
        ("unknown", "1 sample_id\\(s\\) are not in the dataset.*'nope'"),
        ("missing", "1 of the dataset's 96 usable samples have no vector.*--allow-missing"),
        ("duplicate", "appear more than once"),
        ("nan", "hold NaN or Inf"),
    ],
)
def test_import_mismatch_is_refused(dataset, tmp_path, case, pattern):
    ids, vec = _ids_and_vectors(dataset)
    if case == "short":
        ids = ids[:-1]
    elif case == "unknown":
        ids = ids.copy()
        ids[3] = "nope"
    elif case == "missing":
        ids, vec = ids[:-1], vec[:-1]
    elif case == "duplicate":
        ids = ids.copy()
        ids[1] = ids[0]
    elif case == "nan":
        vec = vec.copy()
        vec[4, 2] = np.nan
    np.savez(tmp_path / "v.npz", embeddings=vec, ids=ids)
    out = str(tmp_path / "never.zarr")
    with pytest.raises(InputError, match=pattern):
        import_vectors(str(tmp_path / "v.npz"), dataset, "mine", out=out)
    assert not urls.exists(out)  # nothing written


def test_loader_thread_and_inline_prepare_give_the_same_vectors():
    """On CPU each batch is prepared inline; on an accelerator on the loader thread. The
    threaded path (otherwise run only on CUDA machines) must give the same rows in order."""
    from types import SimpleNamespace

    from speclens.datasets import sample
    from speclens.tasks.embed import _batches, _run_pipelined

    enc = get_encoder("hue-hist", device="cpu")
    images = sample.generate(23, SEED)[0]
    batches = _batches(np.arange(23), 5)
    inline, t_inline = _run_pipelined(enc, lambda b: images[b], batches, enc.dim)
    accelerator = SimpleNamespace(
        device=SimpleNamespace(type="cuda"), prepare=enc.prepare, embed=enc.embed
    )
    threaded, t_threaded = _run_pipelined(accelerator, lambda b: images[b], batches, enc.dim)
    np.testing.assert_array_equal(inline, threaded)
    np.testing.assert_array_equal(inline, enc.embed(enc.prepare(images)))
    assert set(t_inline) == set(t_threaded) == {"prepare_s", "compute_s"}
