"""timm backbones on CPU: random weights, preprocessing, strict local checkpoints, cache lookup."""

import hashlib

import numpy as np
import pytest
import torch

timm = pytest.importorskip("timm")

from PIL import Image  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

from speclens.encoders import EncoderError, get_encoder  # noqa: E402

SMALL = "resnet10t"  # ~5M parameters, builds in ~0.1 s


pytestmark = pytest.mark.usefixtures("few_threads")


def images(n=2, h=60, w=80, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([120 + 90 * np.sin(xx / 6 + c) * np.cos(yy / 9) for c in range(3)], -1)
    return np.clip(base + rng.normal(0, 5, (n, h, w, 3)), 0, 255).astype(np.uint8)


def seeded(name, seed, **kwargs):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return timm.create_model(name, pretrained=False, **kwargs).eval()


def test_resnet18_random_on_cpu():
    enc = get_encoder("timm:resnet18@random", device="cpu", seed=0)
    assert (enc.modality, enc.dim, enc.input_size, enc.dtype) == ("image", 512, 224, np.float32)
    prepared = enc.prepare(images(2))
    assert prepared.shape == (2, 3, 224, 224) and prepared.dtype == torch.uint8
    out = enc.embed(prepared)
    assert out.shape == (2, 512) and np.isfinite(out).all()
    model = seeded("resnet18", 0, num_classes=0)
    with torch.no_grad():
        ref = model(enc.transform(torch.from_numpy(images(2)))).numpy()
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5)
    prov = enc.provenance()
    assert prov["weights_sha256"] == "random:0" and prov["timm_name"] == "resnet18"
    assert prov["preprocessing"]["resize"] == 235 and prov["preprocessing"]["crop"] == 224
    assert prov["library_versions"]["timm"] == timm.__version__


def test_vit_pooled_features():
    enc = get_encoder("timm:test_vit@random", device="cpu", seed=2)
    out = enc.encode(images(3))
    assert out.shape == (3, enc.dim) and enc.dim == seeded("test_vit", 0).num_features


def test_preprocessing_matches_timm_eval_transform():
    enc = get_encoder(f"timm:{SMALL}@random", device="cpu")
    ref = timm.data.create_transform(**timm.data.resolve_model_data_config(enc.model))
    for img in list(images(2)) + list(images(1, 300, 200, seed=3)):
        ours = enc.transform(torch.from_numpy(img[None]))[0]
        theirs = ref(Image.fromarray(img))
        assert ours.shape == theirs.shape
        diff = (ours - theirs).abs()
        assert float(diff.max()) < 0.04 and float(diff.mean()) < 2e-3


@pytest.mark.parametrize("with_classifier", [False, True])
def test_local_checkpoint_reproduces_the_saved_model(tmp_path, with_classifier):
    # a checkpoint saved from the full classifier model or from the pooled-feature model
    model = seeded(SMALL, 5, num_classes=1000 if with_classifier else 0)
    path = tmp_path / "resnet10t.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, path)
    enc = get_encoder(f"timm:{SMALL}@{path}", device="cpu")
    batch = images(2)
    model.reset_classifier(0)
    with torch.no_grad():
        ref = model(enc.transform(torch.from_numpy(batch))).numpy()
    np.testing.assert_allclose(enc.encode(batch), ref, rtol=1e-5, atol=1e-6)
    if not with_classifier:  # the same draws as the seeded random encoder
        again = get_encoder(f"timm:{SMALL}@random", device="cpu", seed=5)
        np.testing.assert_array_equal(enc.encode(batch), again.encode(batch))
    assert enc.provenance()["weights_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


def test_checkpoint_of_another_model_is_refused(tmp_path):
    path = tmp_path / "r18.pt"
    torch.save(seeded("resnet18", 0).state_dict(), path)
    with pytest.raises(EncoderError, match=f"does not fit timm model {SMALL}"):
        get_encoder(f"timm:{SMALL}@{path}", device="cpu")


def test_pretrained_tag_loads_from_the_local_cache(empty_caches):
    cfg = timm.models.get_pretrained_cfg(SMALL)  # the default tag
    with pytest.raises(EncoderError, match=f"timm model {SMALL} with tag '{cfg.tag}'") as err:
        get_encoder(f"timm:{SMALL}@pretrained", device="cpu")
    assert f"hf download {cfg.hf_hub_id}" in str(err.value)

    commit = "89abcdef0123456789abcdef0123456789abcdef"
    repo_dir = empty_caches / "hf" / ("models--" + cfg.hf_hub_id.replace("/", "--"))
    (repo_dir / "snapshots" / commit).mkdir(parents=True)
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text(commit)
    model = seeded(SMALL, 9)
    save_file(
        {k: v.contiguous() for k, v in model.state_dict().items()},
        repo_dir / "snapshots" / commit / "model.safetensors",
    )
    batch = images(2)
    model.reset_classifier(0)
    for tag in ("pretrained", cfg.tag):
        enc = get_encoder(f"timm:{SMALL}@{tag}", device="cpu")
        with torch.no_grad():
            ref = model(enc.transform(torch.from_numpy(batch))).numpy()
        np.testing.assert_allclose(enc.encode(batch), ref, rtol=1e-5, atol=1e-6)
        assert enc.provenance()["weights_source"] == f"hf-hub:{cfg.hf_hub_id}/model.safetensors"
