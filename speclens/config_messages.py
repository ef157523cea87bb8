"""pydantic errors of a config -> one line per problem: ``key.path: problem; fix``.

Generic: what each key means and how to fix it comes in a :class:`Vocabulary` built by the
model that owns the keys (the audit config in :mod:`speclens.config`, the compare parameters
in :mod:`speclens.tasks.params`). Validators that find several problems raise one
``ValueError`` whose lines read ``<sub-path>\t<problem; fix>``; they are split back into one
line each.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Vocabulary:
    """``fixes``: dotted key path -> what to write instead; ``keys``: parent path -> the keys
    it takes (for "did you mean"); ``kinds``: source kind -> the keys that kind takes."""

    fixes: dict[str, str] = field(default_factory=dict)
    keys: dict[tuple[str, ...], list[str]] = field(default_factory=dict)
    kinds: dict[str, list[str]] = field(default_factory=dict)

    def __or__(self, other: Vocabulary) -> Vocabulary:
        return Vocabulary(
            {**self.fixes, **other.fixes},
            {**self.keys, **other.keys},
            {**self.kinds, **other.kinds},
        )

    def fix(self, path: str) -> str:
        return self.fixes.get(path, "see deployments/audit.yaml")


def _path(loc: list) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _got(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _unknown_key(loc: list, kind: str | None, vocab: Vocabulary) -> str:
    key, parent = str(loc[-1]), loc[:-1]
    if parent == ["source"] and kind:
        takes = ", ".join(vocab.kinds[kind])
        if any(key in keys for keys in vocab.kinds.values()):
            return f"not used by kind {kind!r} (it takes {takes}); remove it"
        known = vocab.kinds[kind]
    else:
        known = vocab.keys.get(tuple(str(p) for p in parent if not isinstance(p, int)), [])
    close = difflib.get_close_matches(key, known, n=1)
    if close:
        return f"unknown key; did you mean {close[0]!r}? rename it"
    return "unknown key; remove it" + (f" (known: {', '.join(known)})" if known else "")


def _one(err: dict, vocab: Vocabulary) -> list[str]:
    loc, kind = list(err["loc"]), None
    if len(loc) >= 2 and loc[0] == "source" and loc[1] in vocab.kinds:
        kind = loc.pop(1)
    path, typ = _path(loc), err["type"]
    fix = vocab.fix(".".join(str(p) for p in loc if not isinstance(p, int)))
    if typ == "missing":
        where = f" (needed by kind {kind!r})" if kind else ""
        return [f"{path}: missing{where}; {fix}"]
    if typ == "extra_forbidden":
        return [f"{path}: {_unknown_key(loc, kind, vocab)}"]
    if typ == "union_tag_not_found":
        return [f"{path}.kind: missing; {vocab.fix('source.kind')}"]
    if typ == "union_tag_invalid":
        got = (err.get("input") or {}).get("kind")
        return [f"{path}.kind: unknown kind {got!r}; {vocab.fix('source.kind')}"]
    if typ == "value_error":
        lines = []
        for line in str(err["ctx"]["error"]).splitlines():
            sub, _, text = line.rpartition("\t")
            lines.append(f"{path}{sub}: {text}" if loc or not sub else f"{sub}: {text}")
        return lines
    if typ == "string_pattern_mismatch":
        return [f"{path}: {_got(err.get('input'))} is not allowed here; {fix}"]
    msg = err["msg"].replace("Input should be", "must be").split(",")[0]
    msg = msg.replace("String should have at least 1 character", "must not be empty")
    return [f"{path}: {msg}, got {_got(err.get('input'))}; {fix}"]


def format_errors(errors: list[dict], vocab: Vocabulary) -> list[str]:
    """One line per problem, in the order pydantic found them."""
    lines: list[str] = []
    for err in errors:
        lines.extend(line for line in _one(err, vocab) if line not in lines)
    return lines
