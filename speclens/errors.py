"""The errors speclens raises on purpose, in one small hierarchy.

A :class:`SpeclensError` is a problem the user caused and can fix: its message is one sentence
that names the input and the fix. The commands print it on stderr and exit with code 2, with no
traceback; inside a flow it is logged as that sentence (see ``speclens.flows.runtime``), and
:func:`speclens.flows.runtime.flow_result` raises it again from the flow's final state. Anything
that is not a ``SpeclensError`` is a bug and keeps its traceback.

:class:`IncompleteRun` is the other expected end of a run: some shards failed after their
retries, the rest is committed, and running the same command again redoes only those (exit 1).

This module imports nothing, so every layer (storage, datasets, encoders, tasks, flows,
commands) can raise these; the math core (``speclens.spec``) raises plain ``ValueError``.
"""

from __future__ import annotations


class SpeclensError(ValueError):
    """A user-fixable problem, said in one sentence naming the input and the fix."""


class InputError(SpeclensError):
    """A problem with something the user passed: a path, a file, a store, an option value."""


class EncoderError(SpeclensError):
    """A problem with an encoder id, its weights or the data given to it."""


class ConfigError(SpeclensError):
    """An audit config (or a deployment's parameters) with problems: ``problems`` holds one
    line per problem, ``key.path: problem; fix``; nothing has run."""

    def __init__(self, problems: list[str], source: str = "audit config"):
        self.problems = list(problems)
        self.source = source
        super().__init__(f"{source}: {len(problems)} problem(s):\n" + "\n".join(problems))


class IncompleteRun(RuntimeError):
    """Some shards failed after their retries; running the same command again redoes only them."""
