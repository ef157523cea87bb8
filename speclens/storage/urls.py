"""fsspec helpers: every location in speclens is a URL (local path, file://, s3://, memory://).

Small wrappers so the rest of the code never branches on the file system: join, exists,
read/write bytes and JSON, list, remove. Names with bytes that are not UTF-8 (possible on
local disks) round-trip through ``to_bytes``/``from_bytes`` (surrogate escapes).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import fsspec
from fsspec.spec import AbstractFileSystem


def fs_and_path(url: str) -> tuple[AbstractFileSystem, str]:
    """The file system that serves ``url`` and the path inside it."""
    fs, path = fsspec.core.url_to_fs(str(url))
    return fs, path


def protocol(url: str) -> str:
    """The first protocol of ``url`` ("file" for plain paths)."""
    fs, _ = fs_and_path(url)
    return _protocols(fs)[0]


def is_local(url: str) -> bool:
    return protocol(url) in ("file", "local")


def join(url: str, *parts: str) -> str:
    """``url/part/part``, without doubling slashes."""
    out = str(url).rstrip("/")
    for part in parts:
        out = out + "/" + str(part).strip("/")
    return out


def _protocols(fs: AbstractFileSystem) -> tuple[str, ...]:
    proto = fs.protocol
    return tuple(proto) if isinstance(proto, tuple | list) else (proto,)


def full_url(fs: AbstractFileSystem, path: str) -> str:
    """A path from ``fs`` as a URL: plain for local files, ``proto://path`` otherwise."""
    if "file" in _protocols(fs):
        return path
    return fs.unstrip_protocol(path)


def exists(url: str) -> bool:
    fs, path = fs_and_path(url)
    return fs.exists(path)


def is_dir(url: str) -> bool:
    fs, path = fs_and_path(url)
    return fs.isdir(path)


def read_bytes(url: str) -> bytes:
    fs, path = fs_and_path(url)
    return fs.cat_file(path)


def sha256(url: str) -> str:
    """Hex sha256 of the bytes at ``url``."""
    return hashlib.sha256(read_bytes(url)).hexdigest()


def write_bytes(url: str, data: bytes) -> None:
    """Write ``data`` to ``url``, creating parent folders on local disks."""
    fs, path = fs_and_path(url)
    parent = fs._parent(path)
    if parent and not fs.exists(parent):
        fs.makedirs(parent, exist_ok=True)
    fs.pipe_file(path, data)


def read_json(url: str) -> Any:
    return json.loads(read_bytes(url).decode("utf-8"))


def write_json(url: str, obj: Any) -> None:
    write_bytes(url, json.dumps(obj, indent=1, sort_keys=True).encode("utf-8"))


def list_names(url: str) -> list[str]:
    """Base names of the entries directly under ``url`` (empty when it does not exist)."""
    fs, path = fs_and_path(url)
    if not fs.exists(path):
        return []
    return sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(path, detail=False))


def remove(url: str) -> None:
    """Remove ``url`` and everything under it; no error when it is absent."""
    fs, path = fs_and_path(url)
    if fs.exists(path):
        fs.rm(path, recursive=True)


def to_bytes(name: str) -> bytes:
    """A path as bytes, keeping undecodable bytes of local file names (surrogate escapes)."""
    return name.encode("utf-8", "surrogateescape")


def from_bytes(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def printable(name: str) -> tuple[str, bool]:
    """``name`` as valid UTF-8 text, and whether it had to be escaped.

    Bytes that are not UTF-8 become ``\\xNN``; the flag lets callers record the conversion.
    """
    try:
        name.encode("utf-8")
        return name, False
    except UnicodeEncodeError:
        return to_bytes(name).decode("utf-8", "backslashreplace"), True
