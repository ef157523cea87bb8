"""open_clip image and text towers on CPU: random weights, preprocessing, local checkpoints, cache."""

import hashlib
import json

import numpy as np
import pytest
import torch

open_clip = pytest.importorskip("open_clip")

from PIL import Image  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

from speclens.encoders import EncoderError, get_encoder  # noqa: E402

TINY = "test-tiny-vit"  # not a shipped name: the registry is global to the process
TINY_OTHER = "test-tiny-vit-wide"
CAPTIONS = ["a red square on a grey background", "a blue circle", "a green triangle", ""]


def tiny_cfg(width):
    return {
        "embed_dim": 24,
        "vision_cfg": {
            "image_size": 32,
            "layers": 1,
            "width": width,
            "head_width": 16,
            "patch_size": 8,
        },
        "text_cfg": {
            "context_length": 77,
            "vocab_size": 49408,
            "width": 32,
            "heads": 2,
            "layers": 1,
        },
    }


@pytest.fixture(scope="module", autouse=True)
def tiny_configs(tmp_path_factory):
    """Two tiny architectures (build in milliseconds) for tests where the size is not the point."""
    folder = tmp_path_factory.mktemp("open_clip_configs")
    (folder / f"{TINY}.json").write_text(json.dumps(tiny_cfg(32)))
    (folder / f"{TINY_OTHER}.json").write_text(json.dumps(tiny_cfg(48)))
    open_clip.add_model_config(folder)
    threads = torch.get_num_threads()
    torch.set_num_threads(min(2, threads))  # small models: more threads only add overhead
    yield
    torch.set_num_threads(threads)


def images(n=3, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:40, 0:56]
    out = []
    for i in range(n):
        base = np.stack(
            [100 + 80 * np.sin(xx / (5 + i) + c) * np.cos(yy / 7) for c in range(3)], -1
        )
        base[8:20, 10 + 5 * i : 30 + 5 * i] = rng.integers(0, 256, 3)
        out.append(np.clip(base + rng.normal(0, 4, base.shape), 0, 255).astype(np.uint8))
    return np.stack(out)


def seeded_model(arch, seed):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return open_clip.create_model(arch, pretrained=None).eval()


def reference_transform(arch):
    """open_clip's own eval transform for an architecture's default preprocessing."""
    from open_clip.transform import PreprocessCfg, image_transform_v2

    size = open_clip.get_model_config(arch)["vision_cfg"]["image_size"]
    return image_transform_v2(PreprocessCfg(size=size), is_train=False)


@pytest.fixture(scope="module")
def vit_b_32():
    return get_encoder("open_clip:ViT-B-32@random", device="cpu", seed=0)


def test_vit_b_32_random_on_cpu(vit_b_32):
    enc = vit_b_32
    assert (enc.modality, enc.dim, enc.input_size, enc.dtype) == ("image", 512, 224, np.float32)
    batch = images(2)
    prepared = enc.prepare(batch)
    assert prepared.shape == (2, 3, 224, 224) and prepared.dtype == torch.uint8
    out = enc.embed(prepared)
    assert out.shape == (2, 512) and out.dtype == np.float32 and np.isfinite(out).all()
    prov = enc.provenance()
    json.dumps(prov)
    assert prov["weights_sha256"] == "random:0" and prov["seed"] == 0
    pre = prov["preprocessing"]
    assert (pre["resize"], pre["crop"], pre["interpolation"]) == (224, 224, "bicubic")
    np.testing.assert_allclose(pre["mean"], open_clip.OPENAI_DATASET_MEAN)
    assert prov["library_versions"]["open_clip"] == open_clip.__version__
    assert prov["autocast"] is None and "L2" in prov["normalisation"]


def test_random_weights_follow_the_seed():
    batch = images(2)
    a = get_encoder(f"open_clip:{TINY}@random", device="cpu", seed=3).encode(batch)
    b = get_encoder(f"open_clip:{TINY}@random", device="cpu", seed=3).encode(batch)
    c = get_encoder(f"open_clip:{TINY}@random", device="cpu", seed=4).encode(batch)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    state = torch.random.get_rng_state()
    get_encoder(f"open_clip:{TINY}@random", device="cpu", seed=5)
    assert torch.equal(state, torch.random.get_rng_state())  # global RNG untouched


@pytest.mark.parametrize("arch", ["ViT-B-32", TINY])
def test_batched_preprocessing_matches_open_clip_transform(arch, request):
    enc = request.getfixturevalue("vit_b_32") if arch == "ViT-B-32" else None
    enc = enc or get_encoder(f"open_clip:{arch}@random", device="cpu")
    ref = reference_transform(arch)
    for img in list(images(3)) + [np.array(Image.new("RGB", (300, 200), (200, 30, 90)))]:
        ours = enc.transform(torch.from_numpy(img[None]))[0]
        theirs = ref(Image.fromarray(img))
        assert ours.shape == theirs.shape
        diff = (ours - theirs).abs()
        # equal up to rounding of a level or two (1/255/std ~ 0.015 per level)
        assert float(diff.max()) < 0.035 and float(diff.mean()) < 2e-3


def test_image_outputs_match_open_clip_on_its_own_preprocessing():
    model = seeded_model(TINY, 7)
    enc = get_encoder(f"open_clip:{TINY}@random", device="cpu", seed=7)
    batch = images(3)
    ref_in = torch.stack([reference_transform(TINY)(Image.fromarray(i)) for i in batch])
    with torch.no_grad():
        ref = model.encode_image(ref_in).numpy()
    np.testing.assert_allclose(enc.encode(batch), ref, rtol=0, atol=2e-2 * np.abs(ref).max())


def test_text_tower_on_captions():
    enc = get_encoder(f"open_clip-text:{TINY}@random", device="cpu", seed=1)
    assert (enc.modality, enc.dim, enc.input_size) == ("text", 24, None)
    tokens = enc.prepare(CAPTIONS)
    assert tokens.shape == (4, 77) and tokens.dtype == torch.long
    out = enc.embed(tokens)
    assert out.shape == (4, 24) and out.dtype == np.float32 and np.isfinite(out).all()
    model = seeded_model(TINY, 1)
    with torch.no_grad():
        ref = model.encode_text(open_clip.get_tokenizer(TINY)(CAPTIONS)).numpy()
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)
    assert not np.allclose(out[0], out[1])
    np.testing.assert_allclose(enc.encode(CAPTIONS[:1]), out[:1], rtol=1e-5, atol=1e-6)
    prov = enc.provenance()
    assert prov["preprocessing"]["context_length"] == 77 and prov["modality"] == "text"
    with pytest.raises(EncoderError, match="list of strings"):
        enc.prepare("a single string")


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_local_checkpoint_reproduces_the_saved_model(tmp_path, suffix):
    model = seeded_model(TINY, 11)
    path = tmp_path / f"tiny{suffix}"
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, path) if suffix == ".safetensors" else torch.save(state, path)

    loaded = get_encoder(f"open_clip:{TINY}@{path}", device="cpu", seed=0)
    original = get_encoder(f"open_clip:{TINY}@random", device="cpu", seed=11)
    batch = images(3)
    np.testing.assert_array_equal(loaded.encode(batch), original.encode(batch))
    text = get_encoder(f"open_clip-text:{TINY}@{path}", device="cpu")
    with torch.no_grad():
        ref = model.encode_text(open_clip.get_tokenizer(TINY)(CAPTIONS)).numpy()
    np.testing.assert_allclose(text.encode(CAPTIONS), ref, rtol=1e-5, atol=1e-6)

    prov = loaded.provenance()
    assert prov["weights_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert prov["weights_file"] == str(path.resolve())


def test_checkpoint_of_another_architecture_is_refused(tmp_path):
    path = tmp_path / "other.safetensors"
    save_file(
        {k: v.contiguous() for k, v in seeded_model(TINY_OTHER, 0).state_dict().items()}, path
    )
    with pytest.raises(
        EncoderError, match=f"could not be loaded into open_clip architecture {TINY}"
    ):
        get_encoder(f"open_clip:{TINY}@{path}", device="cpu")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(EncoderError, match="could not be loaded"):
        get_encoder(f"open_clip-text:{TINY}@{garbage}", device="cpu")


def test_pretrained_tag_loads_from_the_local_cache(empty_caches, monkeypatch):
    """A tag whose weights sit in the HF cache loads offline, with the tag's preprocessing."""
    from open_clip import pretrained as oc_pretrained

    repo, commit = "speclens/tiny-test", "0123456789abcdef0123456789abcdef01234567"
    monkeypatch.setitem(
        oc_pretrained._PRETRAINED,
        TINY,
        {"cachedtag": oc_pretrained._pcfg(hf_hub=f"{repo}/", mean=(0.5,) * 3, std=(0.5,) * 3)},
    )
    with pytest.raises(EncoderError, match="HF_HUB_OFFLINE is set"):
        get_encoder(f"open_clip:{TINY}@cachedtag", device="cpu")

    snapshot = empty_caches / "hf" / "models--speclens--tiny-test" / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text(commit)
    model = seeded_model(TINY, 21)
    save_file(
        {k: v.contiguous() for k, v in model.state_dict().items()},
        snapshot / "open_clip_model.safetensors",
    )
    enc = get_encoder(f"open_clip:{TINY}@cachedtag", device="cpu")
    assert enc.transform.mean == (0.5, 0.5, 0.5)
    prov = enc.provenance()
    assert prov["weights_source"] == f"hf-hub:{repo}/open_clip_model.safetensors"
    assert len(prov["weights_sha256"]) == 64
    batch = images(2)
    with torch.no_grad():
        ref = model.encode_image(enc.transform(torch.from_numpy(batch))).numpy()
    np.testing.assert_allclose(enc.encode(batch), ref, rtol=1e-5, atol=1e-6)
