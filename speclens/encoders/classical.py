"""Weight-free encoders that see different image factors: raw pixels, colour, shape, and shape
with position.

They need no downloads, so the embedded default compares genuinely different embeddings on any
machine. All four are vectorised over the whole batch in float32: torch code on a CUDA device, and on
the CPU the same operations in numpy (:mod:`speclens.encoders.classical_numpy`: no torch import,
equal to float32 rounding); ``prepare`` only wraps the uint8 batch without copying.

* ``pixels``: area-downsample to 16x16, flatten in (y, x, channel) order, scale to [0, 1]; 768-d.
* ``hue-hist``: saturation-weighted hue histogram, 12 circular bins with linear (soft) binning,
  normalised to sum 1, square-rooted (so the vector has unit L2 norm, or is all zero for a
  colourless image). Sees colour, not shape or position.
* ``grad-hist``: histogram of *unsigned* gradient orientations (0-180 degrees, 18 bins of 10
  degrees, soft binning) over the whole image (position-invariant), from 3x3 Sobel gradients taken
  per RGB channel keeping the channel with the largest magnitude at each pixel (as HOG does), using
  only the strongest 10% of gradient magnitudes per image (of magnitudes equal to the last one
  kept, those of the lowest pixel index), magnitude-weighted, normalised to sum 1
  and square-rooted. Unsigned orientation and the per-pixel max channel make it see shape, not
  colour: a dark-on-light and a light-on-dark edge fall in the same bin.
* ``hog``: the same strongest gradients as ``grad-hist``, histogrammed per cell of a 4x4 grid
  over the image (18 orientation bins per cell, 288-d), normalised over the whole vector and
  square-rooted: shape *and where it is*, like the cell histograms of HOG (without HOG's
  overlapping block normalisation). Summing the squares of each orientation bin over the 16
  cells gives ``grad-hist`` squared exactly: the position-invariant histogram is a pooling of
  this one, which is what makes the pair a clean test of SPEC-align.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

from .base import NUMPY_CPU, Encoder, as_image_batch, as_numpy_batch, checked_output
from .classical_rules import (
    CELL_GRID,
    EPS,
    HUE_BINS,
    ORIENTATION_BINS,
    PIXEL_GRID,
    TOP_FRACTION,
    best_channel_gradients,
    cell_of,
)
from .ids import EncoderSpec


def _soft_histogram(pos, weight, bins: int, group=None, n_groups: int = 1):
    """Circular linear-binning histogram: ``pos`` in bin units ``[0, bins)``, rows of a batch.

    Bin k is centred at ``k + 0.5``; each value splits its weight between the two nearest bins.
    ``pos`` and ``weight`` are ``(B, P)``; returns ``(B, bins)``, or with ``group`` (``(B, P)``
    ints in ``[0, n_groups)``) one such histogram per group, ``(B, n_groups * bins)``.
    """
    import torch

    shifted = pos - 0.5
    lo = torch.floor(shifted)
    frac = shifted - lo
    lo = lo.long().remainder(bins)
    hi = (lo + 1).remainder(bins)
    if group is not None:
        lo, hi = lo + group * bins, hi + group * bins
    hist = torch.zeros(pos.shape[0], n_groups * bins, dtype=weight.dtype, device=weight.device)
    hist.scatter_add_(1, lo, weight * (1.0 - frac))
    hist.scatter_add_(1, hi, weight * frac)
    return hist


def _hellinger(hist):
    """Normalise rows to sum 1 (zero rows stay zero) and take the square root."""
    total = hist.sum(dim=1, keepdim=True)
    return (hist / total.clamp_min(EPS)).sqrt()


class _WeightFreeEncoder(Encoder):
    """Shared plumbing: uint8 batch in, float32 features out, no weights, no autocast. On the
    numpy CPU device (:data:`~speclens.encoders.base.NUMPY_CPU`) ``prepare`` returns the
    numpy batch and ``embed`` runs :attr:`numpy_forward`; otherwise the torch code."""

    description: dict[str, Any] = {}
    #: the name of this encoder's function in :mod:`speclens.encoders.classical_numpy`
    numpy_forward = ""

    def __init__(self, spec: EncoderSpec, device):
        super().__init__(spec, device, amp=False)

    def prepare(self, inputs):
        if self.device is NUMPY_CPU:
            return as_numpy_batch(inputs, self.id)
        return self._staged(as_image_batch(inputs, self.id))

    def embed(self, prepared) -> np.ndarray:
        if self.device is not NUMPY_CPU:
            return super().embed(prepared)
        from . import classical_numpy

        threads = max(1, min(2, os.cpu_count() or 1))
        out = classical_numpy.in_parts(
            getattr(classical_numpy, self.numpy_forward), prepared, threads
        )
        return checked_output(out, prepared.shape[0], self.dim, self.id)

    def _provenance_extra(self) -> dict[str, Any]:
        return {"backend": "numpy"} if self.device is NUMPY_CPU else {}

    def _images(self, x):
        """uint8 ``(B, H, W, 3)`` -> float ``(B, 3, H, W)`` in [0, 1]."""
        return x.permute(0, 3, 1, 2).float().div_(255.0)

    def preprocessing(self) -> dict[str, Any]:
        return {"input": "uint8 RGB (B, H, W, 3), any size", **self.description}


class PixelsEncoder(_WeightFreeEncoder):
    """Raw pixels, area-downsampled to 16x16x3 and flattened."""

    description = {
        "resize": f"area average to {PIXEL_GRID}x{PIXEL_GRID}",
        "layout": "(y, x, channel) flattened",
        "scale": "1/255 (values in [0, 1])",
    }

    numpy_forward = "pixels"

    def __init__(self, spec, device):
        super().__init__(spec, device)
        self.dim = PIXEL_GRID * PIXEL_GRID * 3

    def _forward(self, x):
        import torch.nn.functional as F

        small = F.adaptive_avg_pool2d(self._images(x), (PIXEL_GRID, PIXEL_GRID))
        return small.permute(0, 2, 3, 1).reshape(x.shape[0], -1)


class HueHistEncoder(_WeightFreeEncoder):
    """Saturation-weighted hue histogram (colour, not shape)."""

    description = {
        "colour_space": "HSV from RGB (hexcone); hue in [0, 1), saturation = (max-min)/max",
        "bins": HUE_BINS,
        "binning": "circular, linear interpolation between the two nearest bin centres",
        "weight": "saturation",
        "normalise": "sum to 1, then square root (Hellinger)",
    }

    numpy_forward = "hue_hist"

    def __init__(self, spec, device):
        super().__init__(spec, device)
        self.dim = HUE_BINS

    def _forward(self, x):
        import torch

        img = self._images(x)
        r, g, b = img[:, 0], img[:, 1], img[:, 2]
        # elementwise max/min over the 3 channels (a strided reduction over dim 1 is slow on CPU)
        vmax = torch.maximum(r, torch.maximum(g, b))
        vmin = torch.minimum(r, torch.minimum(g, b))
        chroma = vmax - vmin
        safe = chroma.clamp_min(EPS)
        hue6 = torch.where(
            r >= vmax,
            ((g - b) / safe).remainder(6.0),
            torch.where(g >= vmax, (b - r) / safe + 2.0, (r - g) / safe + 4.0),
        )
        saturation = torch.where(vmax > 0, chroma / vmax.clamp_min(EPS), torch.zeros_like(vmax))
        pos = (hue6 / 6.0 * HUE_BINS).remainder(HUE_BINS).flatten(1)
        hist = _soft_histogram(pos, saturation.flatten(1), HUE_BINS)
        return _hellinger(hist)


class GradHistEncoder(_WeightFreeEncoder):
    """Position-invariant histogram of the strongest gradient orientations (shape, not colour)."""

    description = {
        "gradients": "3x3 Sobel per RGB channel (valid region), channel of largest magnitude",
        "orientation": "unsigned, 0-180 degrees",
        "bins": ORIENTATION_BINS,
        "binning": "circular, linear interpolation between the two nearest bin centres",
        "pixels": f"strongest {TOP_FRACTION:.0%} of gradient magnitudes per image",
        "weight": "gradient magnitude",
        "normalise": "sum to 1, then square root (Hellinger)",
    }

    numpy_forward = "grad_hist"

    def __init__(self, spec, device):
        super().__init__(spec, device)
        self.dim = ORIENTATION_BINS

    def _forward(self, x):
        import torch

        grads = _strongest_gradients(self._images(x))
        if grads is None:
            return torch.zeros(x.shape[0], ORIENTATION_BINS, device=x.device)
        pos, weight, _ = grads
        return _hellinger(_soft_histogram(pos, weight, ORIENTATION_BINS))


class HogEncoder(_WeightFreeEncoder):
    """Cell-grid histograms of the strongest gradient orientations (shape and position)."""

    description = {
        **GradHistEncoder.description,
        "cells": f"{CELL_GRID}x{CELL_GRID} grid over the gradient image, one histogram each",
        "layout": "(cell row, cell column, orientation bin) flattened",
        "normalise": "whole vector sums to 1, then square root (Hellinger)",
    }

    numpy_forward = "hog"

    def __init__(self, spec, device):
        super().__init__(spec, device)
        self.dim = CELL_GRID * CELL_GRID * ORIENTATION_BINS

    def _forward(self, x):
        import torch

        grads = _strongest_gradients(self._images(x))
        if grads is None:
            return torch.zeros(x.shape[0], self.dim, device=x.device)
        pos, weight, (rows, cols, idx) = grads
        # the grid cell of each kept gradient: one soft histogram per cell, in one pass
        cell = cell_of(idx, rows, cols)
        hist = _soft_histogram(pos, weight, ORIENTATION_BINS, cell, CELL_GRID * CELL_GRID)
        return _hellinger(hist)


def _strongest(mag, k: int):
    """Indices (B, k), ascending, of each row's ``k`` largest values; of values equal to the
    k-th largest, the lowest indices (``topk`` leaves ties to the kernel: the numpy path
    follows this rule too, so both keep the same pixels)."""
    n, p = mag.shape
    kth = mag.kthvalue(p - k + 1, dim=1, keepdim=True).values
    above = mag > kth
    tied = mag == kth
    need = k - above.sum(dim=1, keepdim=True)
    take = above | (tied & (tied.cumsum(dim=1) <= need))
    return take.nonzero()[:, 1].reshape(n, k)


def _strongest_gradients(img):
    """Orientation bin positions, magnitudes and flat indices of the strongest gradients.

    ``img`` is float ``(B, 3, H, W)``. 3x3 Sobel per channel on the valid region, keeping the
    channel of largest magnitude at each pixel (as HOG does); the strongest
    :data:`TOP_FRACTION` of magnitudes per image. Returns ``(pos, magnitude, (rows, cols,
    idx))`` with ``pos`` in orientation-bin units, or None for images under 3x3.
    """
    import torch

    n, _, h, w = img.shape
    if h < 3 or w < 3:
        return None
    best_gx, best_gy, best_m2 = best_channel_gradients(img, torch.where)
    gx, gy = best_gx.flatten(1), best_gy.flatten(1)
    mag = best_m2.flatten(1).sqrt()
    k = max(1, math.ceil(TOP_FRACTION * mag.shape[1]))
    idx = _strongest(mag, k)
    top = mag.gather(1, idx)
    angle = torch.atan2(gy.gather(1, idx), gx.gather(1, idx)).remainder(math.pi)
    pos = (angle / math.pi * ORIENTATION_BINS).remainder(ORIENTATION_BINS)
    return pos, top, (h - 2, w - 2, idx)
