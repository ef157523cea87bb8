"""Fixtures of the encoder tests: empty weight caches with the network forbidden, and few
torch threads for the tiny models."""

from __future__ import annotations

import pytest


@pytest.fixture
def empty_caches(tmp_path, monkeypatch):
    """Every weights cache points at an empty folder; HF_HUB_OFFLINE=1 unless a test unsets it."""
    import huggingface_hub.constants as hf_constants

    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path


@pytest.fixture(scope="module")
def few_threads():
    """Small models: more than two torch threads only add overhead."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(min(2, threads))
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def empty_caches_online(empty_caches, monkeypatch):
    """The same empty caches with HF_HUB_OFFLINE unset: the test decides how the hub answers."""
    import huggingface_hub.constants as hf_constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    return empty_caches
