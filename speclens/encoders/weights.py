"""Where encoder weights come from: one resolution path for every model family, the local caches.

:func:`resolve_weights` turns an id's tag into :class:`ResolvedWeights` (``@random``, a local
checkpoint file, or a pretrained tag found by the family); :func:`check_weights` finds the same
problems without loading or downloading anything. Also here: checksums and state-dict loading.

Lookup order for a pretrained tag: the Hugging Face hub cache (``HF_HUB_CACHE`` / ``HF_HOME``),
then the library's own URL cache (``~/.cache/clip`` for open_clip, the torch hub checkpoint dir
for timm). Only if nothing is cached, downloads are allowed, ``HF_HUB_OFFLINE`` is not set and the
hub answers a quick connection probe (2 s) is anything downloaded; otherwise the caller gets an
:class:`EncoderError` at once, instead of the libraries' minute-long retries.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from speclens.errors import EncoderError

from .ids import EncoderSpec

PROBE_TIMEOUT_S = 2.0
_sha_cache: dict[tuple[str, int, int], str] = {}
_sha_lock = threading.Lock()
_probe_cache: dict[str, tuple[float, bool]] = {}


# --- checksums and local files -----------------------------------------------------------------
def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, memoised per (real path, size, mtime)."""
    real = os.path.realpath(path)
    st = os.stat(real)
    key = (real, st.st_size, st.st_mtime_ns)
    with _sha_lock:
        if key in _sha_cache:
            return _sha_cache[key]
    h = hashlib.sha256()
    with open(real, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    digest = h.hexdigest()
    with _sha_lock:
        _sha_cache[key] = digest
    return digest


def checkpoint_path(tag: str, encoder_id: str) -> Path:
    """The local checkpoint named by a path tag, or an EncoderError naming the path."""
    path = Path(os.path.expanduser(tag)).resolve()
    if not path.is_file():
        raise EncoderError(
            f"{encoder_id}: checkpoint file {path} does not exist; pass the path of a "
            ".safetensors / .pt / .bin file saved from this architecture."
        )
    return path


def load_state_dict(path: str | os.PathLike, encoder_id: str) -> dict[str, Any]:
    """A state dict from a .safetensors file or a torch pickle (``weights_only=True``).

    Unwraps ``{"state_dict": ...}`` / ``{"model": ...}`` containers and a ``module.`` prefix.
    """
    import torch

    path = str(path)
    try:
        if path.endswith(".safetensors"):
            from safetensors.torch import load_file

            sd = load_file(path, device="cpu")
        else:
            sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any decode failure is the same user problem
        raise EncoderError(
            f"{encoder_id}: could not read checkpoint {path} ({type(exc).__name__}: {exc}); "
            "pass a .safetensors file or a torch state dict saved with torch.save."
        ) from exc
    for key in ("state_dict", "model", "module"):
        if isinstance(sd, dict) and isinstance(sd.get(key), dict):
            sd = sd[key]
            break
    if not isinstance(sd, dict) or not sd:
        raise EncoderError(
            f"{encoder_id}: checkpoint {path} holds no state dict; pass a file saved from "
            "model.state_dict()."
        )
    if all(k.startswith("module.") for k in sd):
        sd = {k[len("module.") :]: v for k, v in sd.items()}
    return sd


# --- caches --------------------------------------------------------------------------------------
def hf_cache_dir() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def hf_cached_file(repo_id: str, filenames: list[str], revision: str | None = None) -> str | None:
    """The first of ``filenames`` present in the local Hugging Face cache for ``repo_id``."""
    from huggingface_hub import try_to_load_from_cache

    cache_dir = hf_cache_dir()
    for name in filenames:
        found = try_to_load_from_cache(repo_id, name, cache_dir=cache_dir, revision=revision)
        if isinstance(found, str) and os.path.isfile(found):
            return found
    return None


def url_cached_file(url: str, cache_dir: str | os.PathLike) -> str | None:
    """``cache_dir/<basename of url>`` when it exists (the libraries' URL download caches)."""
    if not url:
        return None
    candidate = Path(os.path.expanduser(cache_dir)) / os.path.basename(urlparse(url).path)
    return str(candidate) if candidate.is_file() else None


# --- downloads -----------------------------------------------------------------------------------
def offline() -> bool:
    """True when HF_HUB_OFFLINE is set (read now, not only at huggingface_hub import time)."""
    value = os.environ.get("HF_HUB_OFFLINE", "")
    if value.strip().lower() in ("1", "true", "yes", "on"):
        return True
    try:
        from huggingface_hub import constants

        return bool(constants.HF_HUB_OFFLINE)
    except Exception:
        return False


def reachable(url: str, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Whether a TCP connection to ``url``'s host (or its proxy) opens within ``timeout`` s.

    Memoised for 60 s per host; runs in a daemon thread so that a hanging DNS lookup cannot
    block the caller either.
    """
    parts = urlparse(url)
    host = parts.hostname
    if not host:
        return False
    port = parts.port or (443 if parts.scheme == "https" else 80)
    proxy = urllib.request.getproxies().get(parts.scheme)
    if proxy and not urllib.request.proxy_bypass(host):
        # behind a proxy the hub itself is not directly reachable: probe the proxy instead
        proxy_parts = urlparse(proxy if "://" in proxy else f"http://{proxy}")
        host, port = proxy_parts.hostname or host, proxy_parts.port or 8080
    now = time.monotonic()
    cached = _probe_cache.get(host)
    if cached and now - cached[0] < 60:
        return cached[1]
    result = [False]

    def probe():
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result[0] = True
        except OSError:
            pass

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    _probe_cache[host] = (now, result[0])
    return result[0]


def hub_endpoint() -> str:
    from huggingface_hub import constants

    return str(constants.ENDPOINT)


def hf_download(repo_id: str, filenames: list[str], revision: str | None = None) -> str | None:
    """Download the first of ``filenames`` that exists in ``repo_id``; None if none does."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    for name in filenames:
        try:
            return hf_hub_download(repo_id, name, revision=revision)
        except EntryNotFoundError:
            continue
    return None


def missing_weights_error(
    encoder_id: str, model: str, tag: str, looked_in: list[str], hf_repo: str | None, why: str
) -> EncoderError:
    """The one-sentence error for pretrained weights that are not on this machine."""
    family, _, rest = encoder_id.partition(":")
    arch = rest.partition("@")[0]
    fetch = f"`hf download {hf_repo}`" if hf_repo else "the library's download"
    return EncoderError(
        f"{encoder_id}: weights for {family} model {model} with tag {tag!r} were not found in "
        f"the local cache ({', '.join(looked_in)}) and {why}; download them on a machine with "
        f"internet ({fetch}) and copy the cache here, or pass a local checkpoint as "
        f"{family}:{arch}@/path/to/model.safetensors."
    )


# --- pretrained tags -----------------------------------------------------------------------------
@dataclass(frozen=True)
class PretrainedSource:
    """Where a family keeps the weights of one pretrained tag: a Hugging Face hub repo (the
    files tried in order, at a revision) and/or a URL with the library's download cache."""

    encoder_id: str
    model: str
    tag: str
    hf_repo: str | None
    hf_filenames: tuple[str, ...]
    url: str | None
    url_cache_dir: str | None
    hf_revision: str | None = None


def _cached(src: PretrainedSource, looked_in: list[str]) -> tuple[str, str] | None:
    """``(path, source)`` of the tag's file in the local caches; appends each cache looked in."""
    if src.hf_repo:
        looked_in.append(hf_cache_dir())
        found = hf_cached_file(src.hf_repo, list(src.hf_filenames), src.hf_revision)
        if found:
            return found, f"hf-hub:{src.hf_repo}/{os.path.basename(found)}"
    if src.url and src.url_cache_dir:
        looked_in.append(os.path.expanduser(src.url_cache_dir))
        found = url_cached_file(src.url, src.url_cache_dir)
        if found:
            return found, f"url:{src.url}"
    return None


def _no_download(src: PretrainedSource, allow_download: bool) -> str | None:
    """Why no download will be attempted, or None when one will (allowed, online, reachable)."""
    if not allow_download:
        return "downloads are turned off for this call"
    if offline():
        return "HF_HUB_OFFLINE is set"
    target = hub_endpoint() if src.hf_repo else (src.url or "")
    if not reachable(target):
        return f"{urlparse(target).hostname or 'the download host'} cannot be reached"
    return None


def check_pretrained(src: PretrainedSource, allow_download: bool) -> str | None:
    """The cached file of a pretrained tag, or None when it is not cached but a download would
    be attempted; otherwise the missing-weights :class:`EncoderError`. Never downloads."""
    looked_in: list[str] = []
    found = _cached(src, looked_in)
    if found:
        return found[0]
    why = _no_download(src, allow_download)
    if why is None:
        return None
    raise missing_weights_error(
        src.encoder_id, src.model, src.tag, looked_in or ["none"], src.hf_repo, why
    )


def locate_pretrained(src: PretrainedSource, allow_download: bool) -> tuple[str, str]:
    """Find (or, if allowed and online, fetch) a pretrained checkpoint file.

    Returns ``(path, source)`` where source says where it came from (for provenance).
    """
    looked_in: list[str] = []
    found = _cached(src, looked_in)
    if found:
        return found
    why = _no_download(src, allow_download)
    if why is None:
        try:
            if src.hf_repo:
                got = hf_download(src.hf_repo, list(src.hf_filenames), src.hf_revision)
                if got:
                    return got, f"hf-hub:{src.hf_repo}/{os.path.basename(got)}"
            if src.url and src.url_cache_dir:
                return _download_url(src.url, src.url_cache_dir), f"url:{src.url}"
            why = "the download found no weights file"
        except Exception as exc:  # any download failure is reported the same way
            why = f"the download failed ({type(exc).__name__})"
    raise missing_weights_error(
        src.encoder_id, src.model, src.tag, looked_in or ["none"], src.hf_repo, why
    )


# --- every family's weights: random, a local checkpoint, or a pretrained tag ---------------------
@dataclass(frozen=True)
class ResolvedWeights:
    """The weights an id asks for: ``path`` (None for seeded random weights) and ``source``,
    with the provenance fields the encoders record (:meth:`provenance`)."""

    path: str | None
    source: str
    seed: int | None = None  # the seed of random weights

    @property
    def weights_file(self) -> str | None:
        return self.path

    @property
    def weights_sha256(self) -> str | None:
        """``random:<seed>`` for random weights; None for a file (its digest is computed when
        recorded, see :meth:`speclens.encoders.base.Encoder.weights_sha256`)."""
        return f"random:{self.seed}" if self.path is None else None

    @property
    def weights_source(self) -> str:
        return self.source

    def provenance(self) -> dict[str, str]:
        """``weights_sha256`` (random) or ``weights_file`` (a file), then ``weights_source``."""
        if self.path is None:
            return {"weights_sha256": self.weights_sha256, "weights_source": self.source}
        return {"weights_file": self.path, "weights_source": self.source}


def resolve_weights(
    spec: EncoderSpec, seed: int, find_pretrained: Callable[[], tuple[str, str]]
) -> ResolvedWeights:
    """The weights of a model id: ``@random`` (drawn from ``seed``), a local checkpoint (must
    exist), or a pretrained tag, found by the family's ``find_pretrained() -> (path, source)``."""
    if spec.tag_kind == "random":
        return ResolvedWeights(None, f"seeded random init (torch.manual_seed({seed}))", seed)
    if spec.tag_kind == "path":
        return ResolvedWeights(str(checkpoint_path(spec.tag, str(spec))), "local checkpoint")
    path, source = find_pretrained()
    return ResolvedWeights(path, source)


def check_weights(spec: EncoderSpec, check_pretrained_tag: Callable[[], object]) -> None:
    """What :func:`resolve_weights` would refuse, found without loading or downloading: a missing
    checkpoint file, or (through the family's ``check_pretrained_tag()``) a tag that is not on
    this machine and will not be downloaded."""
    if spec.tag_kind == "path":
        checkpoint_path(spec.tag, str(spec))
    elif spec.tag_kind == "pretrained":
        check_pretrained_tag()


def _download_url(url: str, cache_dir: str) -> str:
    import torch.hub

    target = Path(os.path.expanduser(cache_dir)) / os.path.basename(urlparse(url).path)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(target.suffix + ".partial")
    torch.hub.download_url_to_file(url, str(partial), progress=False)
    os.replace(partial, target)
    return str(target)
