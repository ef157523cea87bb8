"""Encoder ids, error sentences, and failing fast when weights are not on the machine."""

import re
import subprocess
import sys
import time

import pytest

from speclens.encoders import (
    EncoderError,
    EncoderSpec,
    get_encoder,
    list_encoders,
    parse_encoder_id,
)
from speclens.encoders import weights as weights_mod


def test_list_encoders_names_weight_free_ids_and_templates():
    ids = list_encoders()
    assert ids[:3] == ["pixels", "hue-hist", "grad-hist"]
    assert {"open_clip:<arch>@<tag>", "open_clip-text:<arch>@<tag>", "timm:<model>@<tag>"} <= set(
        ids
    )


@pytest.mark.parametrize(
    "text,spec",
    [
        ("hue-hist", EncoderSpec("hue-hist")),
        (" pixels ", EncoderSpec("pixels")),
        ("open_clip:ViT-B-32@openai", EncoderSpec("open_clip", "ViT-B-32", "openai", "pretrained")),
        ("open_clip:ViT-B-32@random", EncoderSpec("open_clip", "ViT-B-32", "random", "random")),
        (
            "open_clip-text:ViT-B-32@/ckpt/model.safetensors",
            EncoderSpec("open_clip-text", "ViT-B-32", "/ckpt/model.safetensors", "path"),
        ),
        ("timm:resnet18@weights.pt", EncoderSpec("timm", "resnet18", "weights.pt", "path")),
        (
            "timm:vit_small_patch14_dinov2@lvd142m",
            EncoderSpec("timm", "vit_small_patch14_dinov2", "lvd142m", "pretrained"),
        ),
    ],
)
def test_parse_encoder_id(text, spec):
    parsed = parse_encoder_id(text)
    assert parsed == spec
    assert parse_encoder_id(str(parsed)) == parsed  # the canonical id round-trips


@pytest.mark.parametrize(
    "text,match",
    [
        (
            "clip:ViT-B-32@openai",
            r"unknown encoder .*known ids are pixels, hue-hist, grad-hist, hog",
        ),
        ("hue-hist@random", "weight-free encoders take no tag"),
        ("open_clip:ViT-B-32", r"no weights tag; write open_clip:ViT-B-32@<tag>"),
        ("timm:@random", "names no architecture"),
        ("", "non-empty string"),
    ],
)
def test_bad_ids_are_one_sentence_errors(text, match):
    with pytest.raises(EncoderError, match=match) as err:
        parse_encoder_id(text)
    message = str(err.value)
    assert repr(text) in message  # names the bad id as given
    assert re.search(r"known ids are |known: |; write ", message)  # and says what to write instead
    assert message.count(". ") == 0 and message.endswith(".")  # one sentence


def test_the_cli_prints_a_bad_id_as_one_line_and_exits_2(tmp_path):
    """The error reaches the user as one line on stderr, exit code 2, no traceback."""
    out = subprocess.run(
        [sys.executable, "-m", "speclens.cli", "embed", "--dataset", str(tmp_path / "none")]
        + ["--encoder", "hue-hist", "--encoder", "clip:ViT-B-32@openai", "--no-progress"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2
    assert out.stderr.splitlines() == [
        f"error: unknown encoder 'clip:ViT-B-32@openai'; known ids are {', '.join(list_encoders())}."
    ]
    assert "Traceback" not in out.stdout + out.stderr


def test_unknown_architectures_and_tags_list_what_exists():
    pytest.importorskip("open_clip")
    with pytest.raises(EncoderError, match="close matches: ViT-B-32"):
        get_encoder("open_clip:ViT-B-33@random", device="cpu")
    with pytest.raises(EncoderError, match=r"known tags: openai, laion400m_e31"):
        get_encoder("open_clip:ViT-B-32@nonsense", device="cpu")
    with pytest.raises(EncoderError, match="timm has no model 'resnet181'"):
        get_encoder("timm:resnet181@random", device="cpu")
    with pytest.raises(EncoderError, match=r"tags for resnet18: a1_in1k"):
        get_encoder("timm:resnet18@nonsense", device="cpu")


def test_missing_checkpoint_file_names_the_path(tmp_path):
    missing = tmp_path / "nope.safetensors"
    with pytest.raises(EncoderError, match=f"checkpoint file {missing} does not exist"):
        get_encoder(f"open_clip:ViT-B-32@{missing}", device="cpu")
    with pytest.raises(EncoderError, match="does not exist"):
        get_encoder(f"timm:resnet18@{missing}", device="cpu")


def test_unreadable_checkpoint_is_refused(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(EncoderError, match=f"could not read checkpoint {bad}"):
        get_encoder(f"timm:resnet10t@{bad}", device="cpu")


@pytest.mark.parametrize(
    "encoder_id,model,tag",
    [
        ("open_clip:ViT-B-32@openai", "ViT-B-32", "openai"),
        ("open_clip-text:ViT-B-32@laion2b_s34b_b79k", "ViT-B-32", "laion2b_s34b_b79k"),
        ("timm:vit_small_patch14_dinov2@lvd142m", "vit_small_patch14_dinov2", "lvd142m"),
    ],
)
def test_missing_weights_fail_fast_offline(
    empty_caches_online, monkeypatch, encoder_id, model, tag
):
    pytest.importorskip("open_clip")  # imported before the clock starts: only the lookup is timed
    pytest.importorskip("timm")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(EncoderError) as err:
        get_encoder(encoder_id, device="cpu")
    assert time.monotonic() - start < 5.0
    message = str(err.value)
    family, arch = encoder_id.split(":")[0], encoder_id.split(":")[1].split("@")[0]
    for part in (
        model,
        repr(tag),
        "HF_HUB_OFFLINE is set",
        "hf download",
        str(empty_caches_online),
    ):
        assert part in message
    assert f"{family}:{arch}@/path/to/model.safetensors" in message
    assert message.count(". ") == 0 and message.endswith(".")


def test_missing_weights_fail_fast_when_the_hub_is_unreachable(empty_caches_online, monkeypatch):
    """No HF_HUB_OFFLINE, but no network: a 2 s probe, not the libraries' minute of retries."""
    pytest.importorskip("open_clip")
    for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    # a non-routable documentation address: the probe either fails at once or times out
    monkeypatch.setattr(weights_mod, "hub_endpoint", lambda: "https://192.0.2.1")
    weights_mod._probe_cache.clear()
    start = time.monotonic()
    with pytest.raises(EncoderError, match="192.0.2.1 cannot be reached"):
        get_encoder("open_clip:ViT-B-32@openai", device="cpu")
    assert time.monotonic() - start < 5.0
    with pytest.raises(EncoderError, match="downloads are turned off"):
        get_encoder("open_clip:ViT-B-32@openai", device="cpu", allow_download=False)


def test_device_errors():
    import torch

    with pytest.raises(EncoderError, match="not understood"):
        get_encoder("pixels", device="gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(EncoderError, match="CUDA is not available"):
            get_encoder("pixels", device="cuda")
    assert get_encoder("pixels", device="auto").device.type == (
        "cuda" if torch.cuda.is_available() else "cpu"
    )
