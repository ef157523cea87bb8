"""check_encoder: the id, architecture, tag and missing-weights errors of get_encoder, without
building a model or downloading anything; and the one weight-resolution path it shares."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from speclens.encoders import EncoderError, check_encoder, get_encoder, parse_encoder_id
from speclens.encoders import packaged as packaged_mod
from speclens.encoders import weights as weights_mod
from speclens.encoders.weights import ResolvedWeights, resolve_weights

TINY = "speclens-tiny"  # shipped in speclens/encoders/configs


def both_errors(encoder_id: str) -> tuple[str, str]:
    """The messages of check_encoder and get_encoder for an id that both refuse."""
    with pytest.raises(EncoderError) as checked:
        check_encoder(encoder_id)
    with pytest.raises(EncoderError) as built:
        get_encoder(encoder_id, device="cpu")
    return str(checked.value), str(built.value)


# --- every failure get_encoder finds before building, check_encoder finds too -------------------
@pytest.mark.parametrize(
    "encoder_id,match",
    [
        ("clip:ViT-B-32@openai", r"^unknown encoder 'clip:ViT-B-32@openai'; known ids are pixels"),
        ("hue-hist@random", "weight-free encoders take no tag"),
        ("open_clip:ViT-B-32", "has no weights tag"),
        ("packaged:resnet", "unknown packaged model 'resnet'"),
        ("packaged:efficientnet-lite0@final", "takes no @tag"),
    ],
)
def test_bad_ids(encoder_id, match):
    checked, built = both_errors(encoder_id)
    assert checked == built
    with pytest.raises(EncoderError, match=match):
        check_encoder(encoder_id)


@pytest.mark.parametrize(
    "encoder_id,match",
    [
        (
            "open_clip:ViT-B-33@random",
            r"open_clip has no architecture 'ViT-B-33' \(close matches: ",
        ),
        ("open_clip-text:ViT-B-33@random", "close matches: ViT-B-32"),
        ("timm:resnet181@random", r"timm has no model 'resnet181' \(close matches: .*resnet18"),
    ],
)
def test_unknown_architectures_name_close_matches(encoder_id, match):
    pytest.importorskip("open_clip")
    pytest.importorskip("timm")
    checked, built = both_errors(encoder_id)
    assert checked == built
    assert pytest.raises(EncoderError, check_encoder, encoder_id).match(match)


@pytest.mark.parametrize(
    "encoder_id,match",
    [
        ("open_clip:ViT-B-32@nonsense", r"no pretrained tag 'nonsense' .*known tags: openai, "),
        ("timm:resnet18@nonsense", r"tags for resnet18: a1_in1k"),
        ("timm:resnet18.a1_in1k@a2_in1k", "names two timm tags"),
        (
            "timm:resnet18.nonsense@random",
            r"timm has no tag 'nonsense' for resnet18 \(tags: a1_in1k",
        ),
    ],
)
def test_unknown_tags_list_the_known_ones(encoder_id, match):
    pytest.importorskip("open_clip")
    pytest.importorskip("timm")
    checked, built = both_errors(encoder_id)
    assert checked == built
    assert pytest.raises(EncoderError, check_encoder, encoder_id).match(match)


@pytest.mark.parametrize(
    "family,arch", [("open_clip", TINY), ("open_clip-text", TINY), ("timm", "resnet10t")]
)
def test_missing_checkpoint_names_the_path(tmp_path, family, arch):
    missing = tmp_path / "nope.safetensors"
    checked, built = both_errors(f"{family}:{arch}@{missing}")
    assert checked == built
    assert f"checkpoint file {missing} does not exist" in checked


@pytest.mark.parametrize(
    "encoder_id", ["open_clip:ViT-B-32@openai", "timm:vit_small_patch14_dinov2@lvd142m"]
)
def test_uncached_tag_offline_is_the_missing_weights_sentence(empty_caches, encoder_id):
    pytest.importorskip("open_clip")
    pytest.importorskip("timm")
    checked, built = both_errors(encoder_id)
    assert checked == built
    assert "HF_HUB_OFFLINE is set" in checked and str(empty_caches / "hf") in checked
    assert checked.count(". ") == 0 and checked.endswith(".")


def test_uncached_tag_online_passes_without_downloading(empty_caches, monkeypatch):
    """When get_encoder would download, check_encoder returns normally and fetches nothing."""
    pytest.importorskip("open_clip")

    def no_download(*args, **kwargs):
        raise AssertionError("check_encoder must not download")

    import huggingface_hub.constants as hf_constants

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(weights_mod, "reachable", lambda url, timeout=0: True)
    monkeypatch.setattr(weights_mod, "hf_download", no_download)
    monkeypatch.setattr(weights_mod, "_download_url", no_download)
    spec = check_encoder("open_clip:ViT-B-32@openai")
    assert spec == parse_encoder_id("open_clip:ViT-B-32@openai")
    assert not any((empty_caches / "hf").rglob("*.safetensors"))
    with pytest.raises(EncoderError, match="downloads are turned off for this call"):
        check_encoder("open_clip:ViT-B-32@openai", allow_download=False)
    monkeypatch.setattr(weights_mod, "reachable", lambda url, timeout=0: False)
    with pytest.raises(EncoderError, match="cannot be reached"):
        check_encoder("timm:resnet10t@pretrained")


def test_packaged_model_not_installed(monkeypatch):
    monkeypatch.setattr(packaged_mod, "package_dir", lambda module: None)
    for encoder_id in ("packaged:efficientnet-lite0", "packaged:vit-s14-dinov2init@block3"):
        checked, built = both_errors(encoder_id)
        assert checked == built
        assert f"{encoder_id} needs the optional extra 'pretrained'" in checked


# --- where get_encoder succeeds, check_encoder does --------------------------------------------
@pytest.mark.parametrize(
    "encoder_id",
    [
        "hue-hist",
        "hog",
        f"open_clip:{TINY}@random",
        f"open_clip-text:{TINY}@random",
        "timm:resnet10t@random",
    ],
)
def test_random_and_weight_free_ids_pass(encoder_id):
    pytest.importorskip("open_clip")
    pytest.importorskip("timm")
    spec = check_encoder(encoder_id)
    assert spec == parse_encoder_id(encoder_id)
    assert get_encoder(encoder_id, device="cpu").id == str(spec)


def test_a_real_local_checkpoint_passes(tmp_path):
    open_clip = pytest.importorskip("open_clip")
    import torch
    from safetensors.torch import save_file

    from speclens.encoders.openclip import register_configs

    register_configs()
    path = tmp_path / "tiny.safetensors"
    model = open_clip.create_model(TINY, pretrained=None)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, path)
    torch.save(model.state_dict(), tmp_path / "tiny.pt")
    for encoder_id in (f"open_clip:{TINY}@{path}", f"open_clip-text:{TINY}@{tmp_path / 'tiny.pt'}"):
        assert check_encoder(encoder_id).tag_kind == "path"
        assert get_encoder(encoder_id, device="cpu").provenance()["weights_source"] == (
            "local checkpoint"
        )


def test_a_cached_pretrained_tag_passes(empty_caches, monkeypatch):
    open_clip = pytest.importorskip("open_clip")
    from open_clip import pretrained as oc_pretrained
    from safetensors.torch import save_file

    from speclens.encoders.openclip import register_configs

    repo, commit = "speclens/tiny-check", "0123456789abcdef0123456789abcdef01234567"
    monkeypatch.setitem(
        oc_pretrained._PRETRAINED, TINY, {"cached": oc_pretrained._pcfg(hf_hub=f"{repo}/")}
    )
    with pytest.raises(EncoderError, match="HF_HUB_OFFLINE is set"):
        check_encoder(f"open_clip:{TINY}@cached")
    snapshot = empty_caches / "hf" / "models--speclens--tiny-check" / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text(commit)
    register_configs()
    model = open_clip.create_model(TINY, pretrained=None)
    save_file(
        {k: v.contiguous() for k, v in model.state_dict().items()},
        snapshot / "open_clip_model.safetensors",
    )
    assert check_encoder(f"open_clip:{TINY}@cached").tag_kind == "pretrained"
    prov = get_encoder(f"open_clip:{TINY}@cached", device="cpu").provenance()
    assert prov["weights_source"] == f"hf-hub:{repo}/open_clip_model.safetensors"


# --- cheap to import and to check ---------------------------------------------------------------
def test_weight_free_checks_import_no_model_library():
    code = (
        "import sys, json\n"
        "from speclens.encoders import check_encoder, list_encoders\n"
        "specs = [str(check_encoder(i)) for i in ('pixels', 'hue-hist', 'grad-hist', 'hog')]\n"
        "heavy = ('torch', 'open_clip', 'timm', 'onnx', 'onnxruntime', 'huggingface_hub')\n"
        "print(json.dumps([specs, [m for m in heavy if m in sys.modules], list_encoders()]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    specs, heavy, listed = json.loads(out.stdout)
    assert specs == ["pixels", "hue-hist", "grad-hist", "hog"]
    assert heavy == []
    assert listed[:4] == specs


# --- one weight-resolution path -----------------------------------------------------------------
def test_resolve_weights_for_each_kind_of_tag(tmp_path):
    calls = []

    def find():
        calls.append(1)
        return "/cache/model.safetensors", "hf-hub:org/repo/model.safetensors"

    random = resolve_weights(parse_encoder_id("timm:resnet18@random"), 7, find)
    assert random == ResolvedWeights(None, "seeded random init (torch.manual_seed(7))", 7)
    assert random.provenance() == {
        "weights_sha256": "random:7",
        "weights_source": "seeded random init (torch.manual_seed(7))",
    }
    ckpt = tmp_path / "m.safetensors"
    ckpt.write_bytes(b"x")
    local = resolve_weights(parse_encoder_id(f"open_clip:ViT-B-32@{ckpt}"), 7, find)
    assert local.provenance() == {"weights_file": str(ckpt), "weights_source": "local checkpoint"}
    assert local.weights_sha256 is None and local.weights_file == str(ckpt)
    assert calls == []  # the family's lookup runs for pretrained tags only
    tagged = resolve_weights(parse_encoder_id("open_clip:ViT-B-32@openai"), 7, find)
    assert (tagged.path, tagged.weights_source) == find() and len(calls) == 2


def test_open_clip_and_timm_ids_are_checked_from_snapshots_without_importing_them(tmp_path):
    """The snapshots hold what the libraries answer, and with them a check of an open_clip or
    timm id (a typo, a missing tag, missing weights) imports neither library nor torch."""
    import json
    import os
    import subprocess
    import sys

    import open_clip
    import timm

    from speclens.encoders import openclip_catalogue, timm_catalogue

    env = {
        **os.environ,
        "SPECLENS_CACHE_DIR": str(tmp_path),
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_CACHE": str(tmp_path / "hub"),
        "TORCH_HOME": str(tmp_path / "torch"),
    }
    written = subprocess.run(
        [sys.executable, "-m", "speclens.encoders.write_snapshots"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert written.count(str(tmp_path)) == 2
    oc = json.loads(next(tmp_path.glob("open_clip-*.json")).read_text())
    assert set(oc) == {a for a, _ in open_clip.list_pretrained()}
    assert (
        oc["ViT-B-32"]["openai"]["hf_hub"]
        == open_clip.get_pretrained_cfg("ViT-B-32", "openai")["hf_hub"]
    )
    tm = json.loads(next(tmp_path.glob("timm-*.json")).read_text())
    assert tm["models"] == timm.list_models() and len(tm["tags"]) == len(timm.list_pretrained())
    assert timm_catalogue.list_tags("resnet18")[0] == tm["default"]["resnet18"]
    assert openclip_catalogue.tags("ViT-B-32") == open_clip.list_pretrained_tags_by_model(
        "ViT-B-32"
    )
    script = (
        "import sys\nfrom speclens.encoders import check_encoder\n"
        "for i in ['open_clip:ViT-B-32@openai', 'open_clip:ViT-B-3@openai', "
        "'open_clip:ViT-B-32@nope', 'timm:resnet18@a1_in1k', 'timm:resnet181@random']:\n"
        "    try: check_encoder(i)\n    except ValueError as e: print(type(e).__name__)\n"
        "print(sorted(m for m in ('torch', 'open_clip', 'timm') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["EncoderError"] * 5 + ["[]"]
