"""SPEC-align fine-tuning of a tiny @random open_clip model on CPU: three steps write
checkpoints, a resumed run continues exactly like an uninterrupted one, and the checkpoint
loads through the encoder registry."""

import json

import numpy as np
import pytest
import torch

from speclens.datasets import sample
from speclens.encoders import EncoderError, get_encoder
from speclens.encoders.finetune import (
    FinetuneConfig,
    FineTuner,
    finetune,
    latest_checkpoint,
    register_tiny_config,
)

pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def data():
    images, factors, captions = sample.generate(24, seed=5, image_size=32)
    reference = np.eye(4)[factors.colour] + 0.01 * np.random.default_rng(0).standard_normal((24, 4))

    def batches(step):
        rows = np.arange(8) + 8 * (step % 3)
        return images[rows], [captions[i] for i in rows], reference[rows]

    return images, batches


@pytest.fixture(scope="module")
def config():
    return FinetuneConfig(
        encoder_id=f"open_clip:{register_tiny_config()}@random", lr=1e-3, reference_id="hue-hist"
    )


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, config, data):
    folder = tmp_path_factory.mktemp("straight")
    return folder, finetune(config, data[1], 3, folder, checkpoint_every=1, device="cpu")


def test_three_steps_write_checkpoints_with_provenance(uninterrupted, config):
    folder, tuner = uninterrupted
    assert sorted(p.name for p in folder.iterdir()) == ["step-000001", "step-000002", "step-000003"]
    last = latest_checkpoint(folder)
    assert last.name == "step-000003"
    prov = json.loads((last / "provenance.json").read_text())
    assert prov["encoder_id"] == config.encoder_id and prov["step"] == 3
    assert prov["seed"] == 0 and prov["config"]["reference_id"] == "hue-hist"
    assert [h["step"] for h in prov["loss_history"]] == [1, 2, 3]
    assert "text tower frozen" in prov["trained"]
    assert {"model.safetensors", "trainer.pt"} <= {p.name for p in last.iterdir()}
    assert all(np.isfinite(h["loss"]) for h in tuner.history)


def test_resume_continues_exactly(tmp_path, uninterrupted, config, data):
    _, straight = uninterrupted
    finetune(config, data[1], 2, tmp_path, device="cpu")  # "crash" after two steps
    resumed = finetune(config, data[1], 3, tmp_path, device="cpu")
    assert resumed.history == straight.history
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_only_the_image_tower_and_logit_scale_change(tmp_path, config, data):
    tuner = FineTuner(config, tmp_path, device="cpu")
    before = {k: v.clone() for k, v in tuner.model.state_dict().items()}
    tuner.train_step(*data[1](0))
    after = tuner.model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("visual.") or k == "logit_scale" for k in changed)


def test_checkpoint_loads_through_the_registry(uninterrupted, config, data):
    folder, tuner = uninterrupted
    weights = latest_checkpoint(folder) / "model.safetensors"
    enc = get_encoder(f"open_clip:{register_tiny_config()}@{weights}", device="cpu")
    images = data[0][:4]
    np.testing.assert_allclose(enc.encode(images), tuner.encode_images(images), atol=1e-5)


def test_resume_refuses_another_configuration(uninterrupted, config):
    folder, _ = uninterrupted
    other = FinetuneConfig(**{**config.__dict__, "spec_weight": 2.0})
    with pytest.raises(EncoderError, match="different configuration"):
        FineTuner(other, folder, device="cpu")


def test_batch_sizes_must_agree(tmp_path, config, data):
    images, captions, reference = data[1](0)
    tuner = FineTuner(config, tmp_path, device="cpu")
    with pytest.raises(EncoderError, match="as many"):
        tuner.train_step(images, captions[:5], reference)
