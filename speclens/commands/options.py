"""Command-line options made from :class:`~speclens.tasks.params.CompareParams`.

``@compare_options()`` gives a command one option per compare parameter (``--rff-dim``,
``--n-modes``, ...), with the parameter's default and meaning as the option's default and
help, and hands them to the command gathered in one ``compare`` dict. Nothing about an
option is written twice: a new field of ``CompareParams`` is a new option of every command
that compares.

``@compare_options(defaults=False)`` leaves every option unset (None) unless given, and the
``compare`` dict holds only the options given: for ``speclens audit``, whose config file's
keys win over the defaults and lose to the flags. ``exclude`` leaves out options a command
sets itself (``speclens align`` has one ``--seed`` for its split and its comparisons).
Values are checked by ``CompareParams`` (one line per problem), not by the option parser.
"""

from __future__ import annotations

import functools
import inspect
import types
import typing
from typing import Annotated, Any

import typer

from speclens.tasks.params import CompareParams


def default(name: str) -> Any:
    """The default of compare parameter ``name`` (for a command's own option of that name)."""
    return CompareParams.model_fields[name].default


def _plain(annotation: Any) -> Any:
    """The option type for a field annotation: Optional and constraints removed."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        annotation = args[0] if len(args) == 1 else annotation
    if typing.get_origin(annotation) is Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation


def _parameters(defaults: bool, exclude: tuple[str, ...]) -> list[inspect.Parameter]:
    out = []
    for name, field in CompareParams.model_fields.items():
        if name in exclude:
            continue
        text = (field.json_schema_extra or {}).get("cli") == "text"
        kind = str if text else _plain(field.annotation)
        flag = "--" + name.replace("_", "-")
        if kind is bool:  # a switch: --uncertainty / --no-uncertainty
            flag = f"{flag}/--no-{flag[2:]}"
        option = typer.Option(flag, help=field.description)
        annotation = Annotated[
            kind if defaults and field.default is not None else kind | None, option
        ]
        default = field.default if defaults else None
        if text and default is not None:
            default = str(default)  # parsed by the field's validator, as typed
        out.append(
            inspect.Parameter(
                name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation
            )
        )
    return out


def compare_options(defaults: bool = True, exclude: tuple[str, ...] = ()):
    """Decorate a command that takes ``compare: dict``; see the module docstring."""
    extra = _parameters(defaults, exclude)
    names = [p.name for p in extra]

    def decorate(command):
        signature = inspect.signature(command)
        hints = typing.get_type_hints(command, include_extras=True)  # "Annotated[...]" strings
        own = [
            p.replace(annotation=hints.get(p.name, p.annotation))
            for p in signature.parameters.values()
            if p.name != "compare"
        ]

        @functools.wraps(command)
        def wrapper(*args, **kwargs):
            given = {name: kwargs.pop(name) for name in names}
            if not defaults:
                given = {k: v for k, v in given.items() if v is not None}
            return command(*args, compare=given, **kwargs)

        wrapper.__signature__ = signature.replace(parameters=own + extra)
        return wrapper

    return decorate
