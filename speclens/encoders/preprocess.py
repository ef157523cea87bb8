"""Batched image preprocessing on uint8 tensors, equivalent to open_clip's and timm's PIL transforms.

open_clip and timm preprocess one PIL image at a time. For throughput we do the same steps on a
whole ``(B, H, W, 3)`` uint8 batch with torch: resize (same interpolation, antialiased, result
rounded back to uint8 like PIL), centre crop or pad, and only on the device convert to float and
normalise with the model's mean/std. The tests check the result against the libraries' own
transforms.

Resize modes (open_clip's names): ``shortest`` resizes the shorter side to ``resize`` and centre
crops ``size``; ``squash`` resizes both sides to ``resize`` (aspect not kept) and centre crops;
``longest`` resizes the longer side to ``resize`` and centre crops or pads (with ``fill``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

INTERPOLATIONS = ("bicubic", "bilinear", "nearest")


@dataclass(frozen=True)
class ImagePreprocess:
    """Resize + centre crop/pad on uint8 batches, then float normalisation on the device."""

    size: int
    resize: int
    resize_mode: str = "shortest"
    interpolation: str = "bicubic"
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    fill: tuple[int, int, int] = (0, 0, 0)
    source: str = ""

    def __post_init__(self):
        if self.resize_mode not in ("shortest", "squash", "longest"):
            raise ValueError(f"unknown resize_mode {self.resize_mode!r}")
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(
                f"interpolation {self.interpolation!r} is not supported on tensors; "
                f"supported: {', '.join(INTERPOLATIONS)}"
            )

    # --- CPU side: geometry, uint8 in, uint8 out -------------------------------------------
    def resize_crop(self, batch, memory_format=None):
        """uint8 ``(B, H, W, 3)`` tensor -> uint8 ``(B, 3, size, size)`` contiguous tensor
        (in ``memory_format``, e.g. ``torch.channels_last``, when given)."""
        x = batch.permute(0, 3, 1, 2)
        h, w = int(x.shape[-2]), int(x.shape[-1])
        if self.resize_mode == "shortest":
            # the shorter side becomes `resize`, the longer is truncated, as torchvision's int size
            if h <= w:
                new = (self.resize, int(self.resize * w / h))
            else:
                new = (int(self.resize * h / w), self.resize)
        elif self.resize_mode == "squash":
            new = (self.resize, self.resize)
        else:  # longest
            ratio = max(h, w) / self.resize
            new = (round(h / ratio), round(w / ratio))
        x = _resize_like_pil(x, new, self.interpolation)
        x = _center_crop_or_pad(x, self.size, self.fill)
        return (
            x.contiguous() if memory_format is None else x.contiguous(memory_format=memory_format)
        )

    # --- device side: float and normalise ---------------------------------------------------
    def normalize(self, x):
        """uint8 ``(B, 3, S, S)`` on any device -> float32 normalised, same device."""
        import torch

        mean = torch.tensor(self.mean, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
        return (x.float().div_(255.0) - mean) / std

    def __call__(self, batch):
        """Both steps on the CPU: uint8 ``(B, H, W, 3)`` -> normalised float ``(B, 3, S, S)``."""
        return self.normalize(self.resize_crop(batch))

    def describe(self) -> dict[str, Any]:
        return {
            "input": "uint8 RGB (B, H, W, 3)",
            "resize": self.resize,
            "resize_mode": self.resize_mode,
            "crop": self.size,
            "crop_mode": "centre" + (" (pad with fill)" if self.resize_mode == "longest" else ""),
            "fill": list(self.fill),
            "interpolation": self.interpolation,
            "antialias": self.interpolation != "nearest",
            "scale": "1/255",
            "mean": [float(v) for v in self.mean],
            "std": [float(v) for v in self.std],
            "implementation": "torchvision tensor ops on uint8 batches",
            "follows": self.source,
        }


def _resize_like_pil(x, new: tuple[int, int], interpolation: str):
    """Resize a uint8 ``(B, C, H, W)`` batch the way PIL does: width first, then height.

    PIL resamples one axis at a time and rounds to uint8 in between; doing the same (antialiased
    torch kernels, which use PIL's filters) matches PIL to within a level or two, where a single
    two-axis pass differs by up to ~20 levels near clipped overshoots.
    """
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as TF

    mode = InterpolationMode(interpolation)
    antialias = interpolation != "nearest"
    h, w = int(x.shape[-2]), int(x.shape[-1])
    if new[1] != w:
        x = TF.resize(x, [h, new[1]], interpolation=mode, antialias=antialias)
    if new[0] != h:
        x = TF.resize(x, [new[0], new[1]], interpolation=mode, antialias=antialias)
    return x


def _center_crop_or_pad(x, size: int, fill):
    """Centre crop ``x`` (``(B, C, H, W)``) to ``size``; pad first if a side is smaller."""
    import torch

    h, w = int(x.shape[-2]), int(x.shape[-1])
    if h < size or w < size:
        ph, pw = max(size - h, 0), max(size - w, 0)
        out = torch.empty((*x.shape[:-2], h + ph, w + pw), dtype=x.dtype)
        out[:] = torch.tensor(fill, dtype=x.dtype).view(1, -1, 1, 1)
        top, left = ph // 2, pw // 2
        out[..., top : top + h, left : left + w] = x
        x, h, w = out, h + ph, w + pw
    top = int(round((h - size) / 2.0))
    left = int(round((w - size) / 2.0))
    return x[..., top : top + size, left : left + size]


def open_clip_preprocess(cfg: dict[str, Any]) -> ImagePreprocess:
    """From an open_clip preprocess cfg (``size``, ``mean``, ``std``, ``interpolation``, ...)."""
    size = cfg.get("size", 224)
    if isinstance(size, (tuple, list)):
        if len(set(size)) != 1:
            raise ValueError(f"non-square open_clip image size {tuple(size)} is not supported")
        size = size[0]
    interpolation = cfg.get("interpolation") or "bicubic"
    if interpolation == "random":  # open_clip evaluates 'random' as bicubic
        interpolation = "bicubic"
    fill = int(cfg.get("fill_color", 0) or 0)
    return ImagePreprocess(
        size=int(size),
        resize=int(size),
        resize_mode=cfg.get("resize_mode") or "shortest",
        interpolation=interpolation,
        mean=_triple(cfg.get("mean", (0.48145466, 0.4578275, 0.40821073))),
        std=_triple(cfg.get("std", (0.26862954, 0.26130258, 0.27577711))),
        fill=(fill, fill, fill),
        source="open_clip image_transform (eval)",
    )


def timm_preprocess(data_cfg: dict[str, Any]) -> ImagePreprocess:
    """From a timm data config (``resolve_data_config``): input_size, crop_pct, crop_mode, ..."""
    _, h, w = data_cfg["input_size"]
    if h != w:
        raise ValueError(f"non-square timm input size {(h, w)} is not supported")
    crop_pct = data_cfg.get("crop_pct") or 0.875
    crop_mode = data_cfg.get("crop_mode") or "center"
    mode = {"center": "shortest", "squash": "squash", "border": "longest"}.get(crop_mode)
    if mode is None:
        raise ValueError(f"timm crop_mode {crop_mode!r} is not supported")
    mean = _triple(data_cfg.get("mean", (0.485, 0.456, 0.406)))
    fill = tuple(round(255 * v) for v in mean) if mode == "longest" else (0, 0, 0)
    return ImagePreprocess(
        size=int(h),
        resize=int(math.floor(h / crop_pct)),
        resize_mode=mode,
        interpolation=data_cfg.get("interpolation") or "bilinear",
        mean=mean,
        std=_triple(data_cfg.get("std", (0.229, 0.224, 0.225))),
        fill=fill,
        source=f"timm transforms_imagenet_eval (crop_pct={crop_pct}, crop_mode={crop_mode})",
    )


def _triple(v) -> tuple[float, float, float]:
    if isinstance(v, (int, float)):
        return (float(v),) * 3
    v = tuple(float(x) for x in v)
    return v if len(v) == 3 else (v[0],) * 3
