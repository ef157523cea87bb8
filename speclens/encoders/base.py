"""What every encoder is: the shared :class:`Encoder` interface, its provenance, and device helpers.

An encoder turns a batch of images (uint8, ``(B, H, W, 3)``) or captions (``list[str]``) into a
float32 ``(B, dim)`` array in two steps, so the embed flow can overlap them:

* ``prepare`` runs in loader threads on the CPU (resize, crop, tokenise) and returns a tensor;
* ``embed`` runs on the device under ``torch.inference_mode`` (autocast only on CUDA).

Outputs are raw features: no encoder L2-normalises; the flow applies and records any
normalisation. Torch is imported lazily so that ``import speclens.encoders`` stays cheap.
"""

from __future__ import annotations

import contextlib
import threading
from importlib import metadata
from typing import Any

import numpy as np

from speclens.errors import EncoderError

from .ids import EncoderSpec

NORMALISATION = "none (raw features; the encoder does not L2-normalise)"


def library_versions() -> dict[str, str | None]:
    """Installed versions of the libraries that shape an embedding (None when absent)."""
    out: dict[str, str | None] = {}
    for key, dist in (
        ("speclens", "speclens"),
        ("torch", "torch"),
        ("torchvision", "torchvision"),
        ("open_clip", "open_clip_torch"),
        ("timm", "timm"),
        ("numpy", "numpy"),
    ):
        try:
            out[key] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[key] = None
    return out


class _NumpyCPU:
    """The CPU without torch: the device of the weight-free encoders' numpy path (its ``type``
    is ``"cpu"``, like ``torch.device("cpu")``'s)."""

    type = "cpu"
    index = None

    def __str__(self) -> str:
        return "cpu"

    def __repr__(self) -> str:
        return "NUMPY_CPU"


NUMPY_CPU = _NumpyCPU()


def cuda_impossible() -> bool:
    """Whether this machine cannot have CUDA, told without importing torch: Linux with no
    NVIDIA driver loaded (no ``/proc/driver/nvidia``) and no WSL GPU (``/dev/dxg``)."""
    import os
    import sys

    if not sys.platform.startswith("linux"):
        return False
    return not (os.path.exists("/proc/driver/nvidia") or os.path.exists("/dev/dxg"))


def numpy_device(device: Any):
    """:data:`NUMPY_CPU` when ``device`` means the CPU for a weight-free encoder ('cpu', or
    'auto' on a machine without CUDA, told without importing torch unless it is loaded),
    else None (the torch device is resolved as for any encoder)."""
    import sys

    if device == "cpu" or (isinstance(device, str) and device.startswith("cpu:")):
        return NUMPY_CPU
    if device is None or device == "auto":
        if "torch" in sys.modules:
            return None if sys.modules["torch"].cuda.is_available() else NUMPY_CPU
        return NUMPY_CPU if cuda_impossible() else None
    return None


def resolve_device(device: Any, encoder_id: str):
    """``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"`` (CUDA when present) as a torch.device."""
    import torch

    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise EncoderError(
            f"{encoder_id}: device {device!r} is not understood; use 'cpu', 'cuda', 'cuda:N' or 'auto'."
        ) from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise EncoderError(
                f"{encoder_id}: device {device!r} was requested but CUDA is not available on this "
                "machine; use device='cpu' or device='auto'."
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise EncoderError(
                f"{encoder_id}: device {device!r} does not exist (this machine has "
                f"{torch.cuda.device_count()} CUDA devices); pick an index below that."
            )
    elif dev.type != "cpu":
        raise EncoderError(
            f"{encoder_id}: device {device!r} is not supported; use 'cpu', 'cuda', 'cuda:N' or 'auto'."
        )
    return dev


def autocast_dtype(device, amp: bool):
    """The autocast dtype for a device: bf16 (or fp16 without bf16 support) on CUDA, else None."""
    if not amp or device.type != "cuda":
        return None
    import torch

    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def conv_dominated(model) -> bool:
    """Whether ``model`` is a convolutional network: its 2-d convolutions hold more of the
    weights than its linear layers (a ViT's only convolution is the patch embedding: 3% of
    ViT-Ti's weights; ResNets, EfficientNets, MobileNets, RegNets, ConvNeXts: all of them;
    open_clip's ModifiedResNet: 62%, the rest is its attention pool).

    This is the rule for :attr:`Encoder.channels_last`: convolutions run faster on NHWC
    activations (oneDNN on the CPU, cuDNN's tensor-core kernels under CUDA autocast), while
    a transformer's activations are (B, tokens, dim) and the format changes nothing but
    the patch embedding's input."""
    import torch

    conv = linear = 0
    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d):
            conv += module.weight.numel()
        elif isinstance(module, torch.nn.Linear):
            linear += module.weight.numel()
    return conv > linear


def as_numpy_batch(images: Any, encoder_id: str) -> np.ndarray:
    """Validate a uint8 ``(B, H, W, 3)`` batch (numpy, or a CPU torch tensor) as a numpy array."""
    if type(images).__module__.startswith("torch"):
        images = images.detach().cpu().numpy()
    if not isinstance(images, np.ndarray):
        raise EncoderError(
            f"{encoder_id}: images must be a uint8 array of shape (B, H, W, 3), got "
            f"{type(images).__name__}."
        )
    if images.dtype != np.uint8:
        raise EncoderError(
            f"{encoder_id}: images must be uint8, got {images.dtype}; pass the raw RGB bytes."
        )
    _check_batch_shape(images.shape, encoder_id)
    return images


def _check_batch_shape(shape: tuple, encoder_id: str) -> None:
    if len(shape) != 4 or shape[-1] != 3 or shape[0] == 0:
        raise EncoderError(
            f"{encoder_id}: images must have shape (B, H, W, 3) with B >= 1, got {tuple(shape)}."
        )


def checked_output(out: np.ndarray, rows: int, dim: int, encoder_id: str) -> np.ndarray:
    """An encoder's output as contiguous float32, after checking it is ``(rows, dim)``."""
    if out.shape != (rows, dim):
        raise RuntimeError(f"{encoder_id}: produced shape {out.shape}, expected ({rows}, {dim})")
    return np.ascontiguousarray(out, dtype=np.float32)


def as_image_batch(images: Any, encoder_id: str):
    """Validate a uint8 ``(B, H, W, 3)`` batch (numpy or torch) and return it as a CPU tensor."""
    import torch

    if isinstance(images, np.ndarray):
        if images.dtype != np.uint8:
            raise EncoderError(
                f"{encoder_id}: images must be uint8, got {images.dtype}; pass the raw RGB bytes."
            )
        if not images.flags.writeable:  # torch wants writable memory; read-only views get a copy
            images = np.array(images)
        tensor = torch.from_numpy(np.ascontiguousarray(images))
    elif isinstance(images, torch.Tensor):
        if images.dtype != torch.uint8:
            raise EncoderError(
                f"{encoder_id}: images must be uint8, got {images.dtype}; pass the raw RGB bytes."
            )
        tensor = images
    else:
        raise EncoderError(
            f"{encoder_id}: images must be a uint8 array of shape (B, H, W, 3), got "
            f"{type(images).__name__}."
        )
    _check_batch_shape(tuple(tensor.shape), encoder_id)
    return tensor


class Encoder:
    """The interface the embed flow calls; subclasses set the attributes and the two steps.

    Attributes: ``id`` (canonical id string), ``spec`` (:class:`EncoderSpec`), ``modality``
    (``"image"`` or ``"text"``), ``dim``, ``dtype`` (numpy float32), ``input_size`` (square
    pixel size the model wants, None for any), ``device`` (torch.device).
    """

    modality: str = "image"
    dtype = np.dtype(np.float32)
    input_size: int | None = None
    #: Whether the model's weights and its input batches use ``torch.channels_last`` (NHWC)
    #: memory. Same values to float32 rounding, a different order of the convolutions'
    #: sums; on for convolutional networks (:func:`conv_dominated`, EfficientNet-Lite0
    #: always), off for transformers and text towers. Measured with ``benchmarks/embed.py``
    #: (bare prepare+forward, batch 64, two CPU cores, on vs off): EfficientNet-Lite0 17.8 vs
    #: 10.4 images/s, ResNet-18 36.0 vs 18.9, ViT-Ti/16 37.6 vs 38.7 (no gain: off).
    channels_last: bool = False

    def __init__(self, spec: EncoderSpec, device, amp: bool = True):
        self.spec = spec
        self.id = str(spec)
        self.device = device
        self.autocast = autocast_dtype(device, amp)
        self._lock = threading.Lock()
        self.dim: int = 0

    # --- memory format ---------------------------------------------------------------------
    def _placed(self, model, channels_last: bool):
        """``model`` on the encoder's device, with channels_last weights when asked."""
        self.model = model
        self.set_channels_last(channels_last)
        return self.model.to(self.device)

    def set_channels_last(self, on: bool) -> None:
        """Switch the model's weights (and the batches :meth:`prepare` makes from now on)
        between channels_last and the contiguous NCHW format; the benchmark and the tests
        compare both on one model."""
        import torch

        fmt = torch.channels_last if on else torch.contiguous_format
        self.model = self.model.to(memory_format=fmt)
        self.channels_last = bool(on)

    def _memory_format(self):
        import torch

        return torch.channels_last if self.channels_last else torch.contiguous_format

    # --- the two steps -------------------------------------------------------------------
    def _staged(self, tensor):
        """Pin a prepared CPU tensor when the device is CUDA, so the copy in embed overlaps."""
        if self.device.type == "cuda":
            return tensor.pin_memory()
        return tensor

    def prepare(self, inputs: Any):  # pragma: no cover - abstract
        """CPU-side preprocessing; thread-safe. Returns what :meth:`embed` takes."""
        raise NotImplementedError

    def _forward(self, prepared):  # pragma: no cover - abstract
        """Device-side computation on ``prepared`` already moved to ``self.device``."""
        raise NotImplementedError

    def embed(self, prepared) -> np.ndarray:
        """Embed a prepared batch on the device; float32 numpy ``(B, dim)``."""
        import torch

        with torch.inference_mode():
            x = prepared.to(self.device, non_blocking=True)
            if self.channels_last and x.ndim == 4:
                # a no-op on batches from prepare, which makes them channels_last already
                x = x.contiguous(memory_format=torch.channels_last)
            ctx = (
                torch.autocast(device_type=self.device.type, dtype=self.autocast)
                if self.autocast is not None
                else contextlib.nullcontext()
            )
            with ctx:
                out = self._forward(x)
            out = out.float().cpu().numpy()
        return checked_output(out, x.shape[0], self.dim, self.id)

    def encode(self, inputs: Any) -> np.ndarray:
        """``embed(prepare(inputs))`` in one call."""
        return self.embed(self.prepare(inputs))

    # --- provenance ----------------------------------------------------------------------
    def preprocessing(self) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def weights_sha256(self) -> str:
        """sha256 of the weights file, or the recorded digest (``random:<seed>``); "none" for
        weight-free encoders. Model encoders keep their weight provenance in ``_weights``."""
        weights = getattr(self, "_weights", None)
        if not weights:
            return "none"
        if "weights_file" in weights:
            from .weights import sha256_file

            return sha256_file(weights["weights_file"])
        return weights["weights_sha256"]

    def _provenance_extra(self) -> dict[str, Any]:
        return {}

    def provenance(self) -> dict[str, Any]:
        """JSON-serialisable description of what produced the embedding (encoder side)."""
        out: dict[str, Any] = {
            "encoder_id": self.id,
            "family": self.spec.family,
            "arch": self.spec.arch,
            "tag": self.spec.tag,
            "modality": self.modality,
            "weights_sha256": self.weights_sha256(),
            "preprocessing": self.preprocessing(),
            "output_dim": int(self.dim),
            "dtype": str(self.dtype),
            "normalisation": NORMALISATION,
            "device": str(self.device),
            "autocast": None if self.autocast is None else str(self.autocast).replace("torch.", ""),
            "library_versions": library_versions(),
        }
        if self.channels_last:
            out["memory_format"] = "torch.channels_last (weights and input batches)"
        out.update(self._provenance_extra())
        return out

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id} dim={self.dim} device={self.device}>"
